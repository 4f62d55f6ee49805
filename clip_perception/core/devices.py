"""What a device string means and how many cores this process has: the one definition of each."""
from __future__ import annotations

import os

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def is_cuda(device: str) -> bool:
    """'cuda' or 'cuda:N' (N a number); anything else, 'cudax' included, is not a CUDA device."""
    device = str(device)
    return device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())


def validate_device(device: str) -> str:
    """``device`` if it is 'auto', 'cpu', 'cuda' or 'cuda:N'; ValueError with the expected forms
    if not."""
    if device not in ("auto", "cpu") and not is_cuda(device):
        raise ValueError(f"unknown device '{device}'; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a usable GPU, else 'cpu' (so ``backend: auto`` reaches
    TensorRT on GPU robots without a config change); other values validated and returned."""
    validate_device(device)
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu"


def same_device(a: str, b: str) -> bool:
    norm = lambda d: "cuda:0" if str(d) == "cuda" else str(d)  # noqa: E731
    return norm(a) == norm(b)


def cpu_count() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
