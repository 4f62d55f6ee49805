"""clip_perception: open-vocabulary CLIP perception for ROS 2 robots."""

__version__ = "0.1.0"
