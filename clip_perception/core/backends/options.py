"""The values ``backend`` and ``precision`` may take: the one list, used by the node's parameters
and by encoder selection alike."""
from __future__ import annotations

from ..devices import validate_device

BACKENDS = ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
# "auto": tensorrt fp16 on an NVIDIA GPU; on a CPU, of the engines this machine runs (openvino
# bf16 with AMX/AVX-512 BF16, onnxruntime int8, openvino/onnxruntime fp32) those that pass
# verification on natural photos are timed here and the fastest serves (precision_choice.py).
# Every refusal and timing is recorded on encoder.selection.
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def validate_options(backend: str, precision: str, device: str, max_batch: int) -> None:
    """ValueError naming the bad value and the expected ones."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; expected one of {PRECISIONS}")
    validate_device(device)
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
