"""What a device string means, how many cores this process has and what the CPU offers: the one
definition of each."""
from __future__ import annotations

import os
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
# The ISA flags that decide which engine and precision is fast (and int8-exact) on a CPU.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16",
             "amx_int8")


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


# How benchmark tables name the ISA classes that decide engines: (label, any of these flags).
ISA_CLASSES = (("AVX2", ("avx2",)), ("AVX-512", ("avx512f",)), ("AVX-512 BF16", ("avx512_bf16",)),
               ("VNNI", ("avx512_vnni", "avx_vnni")), ("AMX", ("amx_bf16", "amx_int8")))


def isa_label(isa) -> str:
    """'AVX2, AVX-512, AVX-512 BF16, VNNI, no AMX' from cpu_identity()['isa']: every class
    named, present or absent, so a table row says what the CPU lacks too."""
    have = set(isa)
    return ", ".join(label if have & set(flags) else f"no {label}" for label, flags in ISA_CLASSES)


def cpu_identity() -> dict:
    """CPU model name and which of ISA_FLAGS it has (Linux /proc/cpuinfo; 'unknown' and no
    flags elsewhere)."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "isa": [f for f in ISA_FLAGS if f in flags]}
