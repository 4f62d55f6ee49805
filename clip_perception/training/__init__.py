"""Offline adapter training (layer 3): frames from rosbags or image folders in takes, labels and
lighting conditions, a three-way split by whole takes, lighting augmentation, a disk feature
cache, the head trainer with selection on validation, evaluation per real and synthetic
condition, the verdict on test and its report.

Reuses ``clip_perception.core``; never imports the node or rclpy.
"""
