"""What the node says about its model and encoders (log, /diagnostics), and whether frames may
be prepared ahead of the encoder: functions of the objects, no node state."""
from __future__ import annotations

import time

from ..core.backends import encoder_diagnostics
from ..core.backends.swapping import REFUSED
from ..core.devices import cpu_count, is_cuda
from . import diagnostics


def prepare_ahead(encoder) -> tuple[bool, str]:
    """Whether the worker's preparer may decode + preprocess frames during an encode.

    Asked per preparation: a swapped-in TensorRT engine moves the encoder to the GPU.
    """
    device = str(encoder.device)
    if is_cuda(device):
        return True, f"encoder on {device}; CPU preprocessing overlaps it"
    cores = cpu_count()
    if 0 < encoder.threads < cores:
        return True, f"encoder uses {encoder.threads} of {cores} cores"
    # Measured (docs/results/node.md): preparing alongside an encoder that keeps
    # every core busy only competes with it for the CPU; the serial path is as fast.
    return False, f"encoder on {device} uses all {cores} cores"


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


def pipeline_state(node):
    """(stats snapshot, PipelineInfo, now) of a configured node for diagnostics.build_statuses;
    updates its liveness monitor while active."""
    current = node.label_sets.current
    error = ""
    if node._last_build_failed():
        error = node.label_sets.last_error + f"; serving label set v{current.version}"
    ahead, why = prepare_ahead(node.encoder)
    now = time.monotonic()
    snap = node.stats.snapshot()
    alive = node.worker is None or node.worker.alive
    live = node.liveness.update(snap, alive, now) if node.state == "active" else None
    info = diagnostics.PipelineInfo(
        model=node.clip.identifier, backend=node.encoder.describe(),
        backend_details=backend_details(node.encoder, node.text_encoder),
        backend_warning=backend_warning(node.encoder),
        converter=node.converter.name, label_set_version=current.version,
        labels=len(current.labels), landmarks=len(current.landmarks),
        adapter=current.spec.adapter_path, adapter_blend=current.adapter_blend,
        max_rate_hz=node._max_rate_hz, max_batch=node.settings.max_batch,
        rebuilding=node.label_sets.busy, label_set_error=error,
        prepare_ahead="{} ({})".format("on" if ahead else "off", why),
        batch_per_call=(f"up to {node.settings.max_batch}" if node.encoder.batches else
                        "1 (the engine runs frames one at a time; batching would only delay "
                        "results)"),
        liveness_level=live.level if live else diagnostics.OK,
        liveness=live.message if live else "", lifecycle_state=node.state,
        debug_images=node.outputs.debug.rendered if node.outputs else 0)
    return snap, info, now
