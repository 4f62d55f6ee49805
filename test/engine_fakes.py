"""Faithful stand-ins for what a CPU or GPU we lack would report, so every branch of the engine
decision runs on any machine.

- OpenVINO: the real ``openvino.Core`` and ``openvino.Type``, except that the CPU's
  ``OPTIMIZATION_CAPABILITIES`` are the test's; a bf16 model is compiled for f32 (so it runs on
  any CPU, exactly) and reports ``openvino.Type.bf16`` as the real library does on a CPU with
  AMX / AVX-512 BF16, or ``openvino.Type.f32`` with ``quiet_fallback`` (what it does elsewhere).
- TensorRT: a module with TensorRT 10's ``__version__`` and ``BuilderFlag`` members (names and
  values of NvInfer.h's ``BuilderFlag``), or TensorRT 11's without the weak-typing flags.
- onnxruntime: the real module with other ``get_available_providers()``.
"""
from __future__ import annotations

import enum
import types

import openvino

from clip_perception.core.backends import onnxruntime_backend as ortb
from clip_perception.core.backends import openvino_backend as ovb
from clip_perception.core.backends import tensorrt_backend as trtb

AMX_CAPABILITIES = ("FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT")  # an AMX Xeon's answer
AVX2_CAPABILITIES = ("FP32", "INT8", "BIN", "EXPORT_IMPORT")        # an AVX2-only EPYC's

# NvInfer.h BuilderFlag, TensorRT 10.x (value order as declared).
TRT10_BUILDER_FLAGS = (
    "FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
    "SPARSE_WEIGHTS", "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS",
    "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS",
    "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "FP8", "ERROR_ON_TIMING_CACHE_MISS", "BF16",
    "DISABLE_COMPILATION_CACHE", "STRIP_PLAN", "REFIT_IDENTICAL", "WEIGHT_STREAMING", "INT4",
    "REFIT_INDIVIDUAL", "STRICT_NANS", "MONITOR_MEMORY", "FP4", "EDITABLE_TIMING_CACHE")
WEAK_TYPING_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "FP4")  # gone in TensorRT 11


class _ReportingCompiled:
    """A real compiled model that reports ``reported`` as its INFERENCE_PRECISION_HINT."""

    def __init__(self, compiled, reported):
        self._compiled = compiled
        self._reported = reported

    def get_property(self, name):
        if name == "INFERENCE_PRECISION_HINT":
            return self._reported
        return self._compiled.get_property(name)

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def openvino_reporting(capabilities, quiet_fallback: bool = False, name: str = "Fake CPU"):
    """A module like ``openvino`` whose Core reports ``capabilities`` for the CPU."""

    class CapabilityCore:
        def __init__(self):
            self._core = openvino.Core()

        def get_property(self, device, prop):
            if prop == "OPTIMIZATION_CAPABILITIES":
                return list(capabilities)
            if prop == "FULL_DEVICE_NAME":
                return name
            return self._core.get_property(device, prop)

        def read_model(self, path):
            return self._core.read_model(path)

        def compile_model(self, model, device, config):
            hint = config["INFERENCE_PRECISION_HINT"]
            compiled = self._core.compile_model(model, device,
                                                {**config, "INFERENCE_PRECISION_HINT": "f32"})
            reported = openvino.Type.f32 if quiet_fallback else getattr(openvino.Type, hint)
            return _ReportingCompiled(compiled, reported)

    return types.SimpleNamespace(Core=CapabilityCore, Type=openvino.Type,
                                 __version__=openvino.__version__)


def use_openvino(monkeypatch, capabilities, quiet_fallback: bool = False):
    fake = openvino_reporting(capabilities, quiet_fallback)
    monkeypatch.setattr(ovb, "import_openvino", lambda: fake)
    return fake


def tensorrt_module(version: str = "10.13.0"):
    """A module with TensorRT's version and BuilderFlag (10.x, or 11+ without weak typing)."""
    flags = TRT10_BUILDER_FLAGS if int(version.split(".")[0]) < 11 else tuple(
        f for f in TRT10_BUILDER_FLAGS if f not in WEAK_TYPING_FLAGS)
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    module.BuilderFlag = enum.IntEnum("BuilderFlag", {f: TRT10_BUILDER_FLAGS.index(f)
                                                      for f in flags})
    return module


def use_tensorrt(monkeypatch, version: str = "10.13.0"):
    module = tensorrt_module(version)
    monkeypatch.setattr(trtb, "import_tensorrt", lambda: module)
    return module


def use_gpu(monkeypatch, name: str = "NVIDIA Orin", capability=(8, 7), count: int = 1):
    """torch.cuda as on a machine with ``count`` such GPUs."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)


def use_onnxruntime_providers(monkeypatch, providers):
    real = ortb.import_onnxruntime()
    fake = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real)
                                    if not k.startswith("__")})
    fake.__version__ = real.__version__
    fake.get_available_providers = lambda: list(providers)
    monkeypatch.setattr(ortb, "import_onnxruntime", lambda: fake)
    return fake
