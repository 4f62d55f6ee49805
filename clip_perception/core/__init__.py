"""Pure logic: model loading, preprocessing, text prompts, scoring, image backends.

Nothing in this package imports rclpy or ROS messages, so it is testable with numpy alone.
"""
