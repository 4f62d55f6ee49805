"""1 Hz /diagnostics: one status for the pipeline, one per camera.

Levels: the pipeline takes the liveness verdict (``ros.liveness``: WARN when stalled, ERROR when
the worker is dead or the encoder keeps failing) unless the rest is worse; a camera is WARN
while it has received nothing yet (usually a wrong topic name or QoS) or when it rejected
frames within the last ``recent`` seconds; the pipeline is ERROR when the
encoder/scoring/publishing failed within ``recent`` seconds or the last label set failed to
build, WARN while labels are being re-encoded or when a background engine build was refused
(the fallback backend keeps serving), else OK.
"""
from __future__ import annotations

from dataclasses import dataclass
from ..core.pipeline import STAGE_UNITS, STAGES, StatsSnapshot

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes in the message)


@dataclass(frozen=True)
class PipelineInfo:
    model: str
    backend: str
    converter: str
    label_set_version: int
    labels: int
    landmarks: int
    adapter: str
    adapter_blend: float
    max_rate_hz: float
    max_batch: int
    rebuilding: bool
    label_set_error: str
    # core.backends.encoder_diagnostics (what was requested, skipped backends and why, engine
    # build state) and the text backend, as (key, value) pairs.
    backend_details: tuple[tuple[str, str], ...] = ()
    backend_warning: str = ""  # e.g. a refused TensorRT engine
    prepare_ahead: str = ""  # "on (why)" / "off (why)": frames prepared during the encode
    batch_per_call: str = ""  # frames per engine call and why (1: the engine runs them singly)
    liveness_level: int = OK  # ros.liveness verdict
    liveness: str = ""
    lifecycle_state: str = "active"
    debug_images: int = 0  # ~/debug_image frames drawn (only while someone subscribes)
    # LabelSet.scoring_summary: score mode, threshold and what it applies to, negative words
    scoring: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Status:
    name: str
    level: int
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.2f}"


def build_statuses(node_name: str, snap: StatsSnapshot, info: PipelineInfo, now: float,
                   recent: float = 5.0) -> list[Status]:
    """Pure: the statuses to publish (``now`` is time.monotonic(); tests pass their own)."""
    rate = snap.batch_frames / snap.window_seconds if snap.window_seconds > 0 else 0.0
    values = [("model", info.model), ("backend", info.backend), *info.backend_details,
              ("image converter", info.converter),
              ("label set version", str(info.label_set_version)),
              ("labels", str(info.labels)), ("landmarks", str(info.landmarks)),
              ("adapter", info.adapter or "(none)"),
              ("adapter blend", f"{info.adapter_blend:g}"), *info.scoring,
              ("max_rate_hz", f"{info.max_rate_hz:g}"), ("max_batch", str(info.max_batch)),
              ("batch per engine call", info.batch_per_call or "(unknown)"),
              ("processed frames/s", f"{rate:.2f}"),
              ("mean batch size", f"{snap.batch_frames / snap.batches:.2f}" if snap.batches
               else "0"),
              # of the frames processed in this window: how many the preparer thread had
              # decoded + preprocessed just in time, and its work lost to newer frames
              ("prepare ahead", info.prepare_ahead or "(unknown)"),
              ("frames prepared ahead", str(snap.prepared_ahead)),
              ("preparations wasted", str(snap.preparations_wasted)),
              ("pipeline errors", str(snap.errors)), ("last error", snap.last_error or "(none)"),
              ("lifecycle state", info.lifecycle_state),
              ("debug images", str(info.debug_images))]
    for stage in STAGES:
        w = snap.stages[stage]
        values.append((f"{stage} ms mean ({STAGE_UNITS[stage]})", _ms(w.mean)))
        values.append((f"{stage} ms max", _ms(w.maximum)))
    if snap.errors and now - snap.last_error_time < recent:
        level, message = ERROR, snap.last_error
    elif info.label_set_error:
        level, message = ERROR, info.label_set_error
    elif info.rebuilding:
        level, message = WARN, "re-encoding labels; serving the previous label set meanwhile"
    elif info.backend_warning:
        level, message = WARN, info.backend_warning
    else:
        level, message = OK, f"{rate:.1f} frames/s"
    if info.liveness_level > OK and info.liveness_level >= level:  # says more at equal level
        level, message = info.liveness_level, info.liveness
    statuses = [Status(f"{node_name}: pipeline", level, message, info.model, tuple(values))]
    for camera, c in snap.cameras.items():
        values = (("topic", camera), ("frames in", str(c.received)),
                  ("processed", str(c.processed)), ("dropped", str(c.dropped)),
                  ("rejected", str(c.rejected)), ("failed", str(c.failed)),
                  ("last rejection", c.last_error or "(none)"))
        if c.received == 0:
            level, message = WARN, "no frames received yet (check topic name and QoS)"
        elif c.rejected and now - c.last_error_time < recent:
            level, message = WARN, f"rejecting frames: {c.last_error}"
        else:
            level, message = OK, "receiving frames"
        statuses.append(Status(f"{node_name}: camera {camera}", level, message, camera, values))
    return statuses


def lifecycle_status(node_name: str, state: str, reason: str = "") -> Status:
    """The one status of a node that is not active (unconfigured, inactive, finalized)."""
    message = f"{state}: not processing frames" + (f" ({reason})" if reason else "")
    return Status(f"{node_name}: pipeline", OK, message, node_name,
                  (("lifecycle state", state),))


def diagnostic_array(statuses: list[Status], stamp) -> "object":
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    msg = DiagnosticArray()
    msg.header.stamp = stamp
    for s in statuses:
        msg.status.append(DiagnosticStatus(
            level=bytes([s.level]), name=s.name, message=s.message[:500],
            hardware_id=s.hardware_id, values=[KeyValue(key=k, value=v) for k, v in s.values]))
    return msg


def level_of(status) -> int:
    """The int level of a received DiagnosticStatus (the field is a byte)."""
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


__all__ = ["ERROR", "OK", "WARN", "PipelineInfo", "Status", "build_statuses",
           "diagnostic_array", "level_of", "lifecycle_status"]
