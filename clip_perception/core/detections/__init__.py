"""Open-vocabulary labels for another detector's boxes, and where each object is in 3D.

Pure (no ROS): ``results`` (what comes out), ``boxes`` (input boxes, their checks and crop
geometry), ``pairing`` (arrays and depth matched to frames by exact stamp, bounded),
``depth`` (robust depth inside a box, back-projection with the camera matrix).
"""
from .results import FrameDetections, LabelledBox

__all__ = ["FrameDetections", "LabelledBox"]
