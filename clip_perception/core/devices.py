"""What a device string means and how many cores this process has: the one definition of each."""
from __future__ import annotations

import os

DEVICES = ("cpu", "cuda", "cuda:N")


def is_cuda(device: str) -> bool:
    """'cuda' or 'cuda:N' (N a number); anything else, 'cudax' included, is not a CUDA device."""
    device = str(device)
    return device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())


def validate_device(device: str) -> str:
    """``device`` if it is 'cpu', 'cuda' or 'cuda:N'; ValueError with the expected forms if not."""
    if device != "cpu" and not is_cuda(device):
        raise ValueError(f"unknown device '{device}'; expected 'cpu', 'cuda' or 'cuda:N'")
    return device


def same_device(a: str, b: str) -> bool:
    norm = lambda d: "cuda:0" if str(d) == "cuda" else str(d)  # noqa: E731
    return norm(a) == norm(b)


def cpu_count() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
