"""The node's per-frame pipeline without ROS.

Threads and what they share:
  * subscription callbacks call ``LatestFrameSlots.put`` (``slots``; O(1), never blocks on
    inference);
  * one ``PerceptionWorker`` thread (``worker``) takes the newest frame of every waiting camera
    (up to ``max_batch``), decodes, preprocesses, encodes them in ONE encoder call, scores and
    publishes;
  * its "preparer" thread decodes + preprocesses the waiting frames just before the running
    encode is predicted to end (``pacing.JustInTimePlanner``), so the next encode need not wait
    for that work. Which frames are encoded does not change: the worker still takes the newest
    frame per camera when it is free and only reuses a preparation made for exactly that frame
    (``preparation.PreparedFrames``); a frame replaced by a newer one is never encoded;
  * the label-set thread (``core.vocabulary``) swaps the immutable ``LabelSet`` by reference;
    the worker reads that reference once per batch, so no message mixes two label sets.
``stats`` counts frames and times stages for diagnostics; ``landmark_smoothing`` is the landmark EMA.
"""
from .pacing import JustInTimePlanner, RateLimiter
from .preparation import PreparedFrame, PreparedFrames
from .slots import LatestFrameSlots, PendingFrame
from .landmark_smoothing import LandmarkSmoother
from .stats import STAGE_UNITS, STAGES, CameraCounters, PipelineStats, StageWindow, StatsSnapshot
from .worker import FrameResult, PerceptionWorker

__all__ = ["CameraCounters", "FrameResult", "JustInTimePlanner", "LandmarkSmoother",
           "LatestFrameSlots", "PendingFrame", "PerceptionWorker", "PipelineStats",
           "PreparedFrame", "PreparedFrames", "RateLimiter", "STAGES", "STAGE_UNITS",
           "StageWindow", "StatsSnapshot"]
