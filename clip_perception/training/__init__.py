"""Offline adapter training (layer 3): frames from rosbags or image folders, labels, a
time-block split, lighting augmentation, a disk feature cache, the head trainer, evaluation
per lighting condition and its report.

Reuses ``clip_perception.core``; never imports the node or rclpy.
"""
