"""What the node says about its model, encoders and pipeline (log, /diagnostics): functions of
the objects the node hands over, no node state. (Whether frames are prepared ahead of the
encoder is a pipeline rule: core/pipeline/preparation.py prepare_ahead.)"""
from __future__ import annotations

import time
from typing import Optional

from ..core.backends import encoder_diagnostics
from ..core.backends.swapping import REFUSED
from ..core.pipeline.preparation import prepare_ahead
from . import diagnostics


def backend_details(encoder, text_encoder) -> tuple[tuple[str, str], ...]:
    """Image backend: requested, skipped (with reasons), engine build; text backend."""
    values = [(k, v) for k, v in encoder_diagnostics(encoder).items()
              if k != "image backend"]  # same as the "backend" key
    values.append(("text backend", text_encoder.describe()))
    values += [(f"text skipped {i + 1}", reason)
               for i, reason in enumerate(text_encoder.selection)]
    return tuple(values)


def backend_warning(encoder) -> str:
    status = getattr(encoder, "status", None)
    if not callable(status):
        return ""
    s = status()
    if s.state != REFUSED:
        return ""
    return f"{s.target} refused ({s.reason}); serving with {s.serving}"


def summary(clip, encoder, text_encoder, label_set, converter_name: str, resize: str) -> str:
    """One log line: model, backends, label set, image converter and resize method in use."""
    return (f"model {clip.identifier} ({clip.image_size}px, {clip.embed_dim}-d), backend "
            f"{encoder.describe()}, text {text_encoder.describe()}, {len(label_set.labels)} "
            f"labels, {len(label_set.landmarks)} landmarks, adapter "
            f"{label_set.spec.adapter_path or '(none)'}, images via {converter_name}, "
            f"resize {resize}")


def pipeline_state(*, clip, encoder, text_encoder, converter_name: str, label_sets, stats,
                   liveness, lifecycle_state: str, worker_alive: bool, max_rate_hz: float,
                   max_batch: int, build_failed: bool, debug_images: int,
                   preparation_share: Optional[float] = None):
    """(stats snapshot, PipelineInfo, now) for diagnostics.build_statuses, from what the node
    hands over; updates ``liveness`` while active."""
    current = label_sets.current
    error = ""
    if build_failed:
        error = label_sets.last_error + f"; serving label set v{current.version}"
    ahead, why = prepare_ahead(encoder, preparation_share)
    now = time.monotonic()
    snap = stats.snapshot()
    live = liveness.update(snap, worker_alive, now) if lifecycle_state == "active" else None
    info = diagnostics.PipelineInfo(
        model=clip.identifier, backend=encoder.describe(),
        backend_details=backend_details(encoder, text_encoder),
        backend_warning=backend_warning(encoder),
        converter=converter_name, label_set_version=current.version,
        labels=len(current.labels), landmarks=len(current.landmarks),
        adapter=current.spec.adapter_path, adapter_blend=current.adapter_blend,
        scoring=current.scoring_summary(),
        max_rate_hz=max_rate_hz, max_batch=max_batch,
        rebuilding=label_sets.busy, label_set_error=error,
        prepare_ahead="{} ({})".format("on" if ahead else "off", why),
        batch_per_call=(f"up to {max_batch}" if encoder.batches else
                        "1 (the engine runs frames one at a time; batching would only delay "
                        "results)"),
        liveness_level=live.level if live else diagnostics.OK,
        liveness=live.message if live else "", lifecycle_state=lifecycle_state,
        debug_images=debug_images)
    return snap, info, now
