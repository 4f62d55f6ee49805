"""ROS 2 glue: parameters, message conversions, diagnostics and the node class.

Only this package (and the entry points) import rclpy and ROS messages.
"""
