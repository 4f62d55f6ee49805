"""The values ``backend`` and ``precision`` may take: the one list, used by the node's parameters
and by encoder selection alike."""
from __future__ import annotations

from ..devices import validate_device

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
# "auto": the fastest precision the chosen backend can deliver *and verify* against torch fp32
# (tensorrt fp16; onnxruntime int8 on CPU, accepted only at cosine >= 0.999, else fp32; torch
# fp32). Every fallback is recorded on encoder.selection like a backend skip.
PRECISIONS = ("auto", "fp32", "fp16", "int8")


def validate_options(backend: str, precision: str, device: str, max_batch: int) -> None:
    """ValueError naming the bad value and the expected ones."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; expected one of {PRECISIONS}")
    validate_device(device)
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
