"""TensorRT 10 image backend: engine build from the exported ONNX, load, run.

Everything TensorRT-specific lives here (caching and verification are generic, see
engine_cache.py and verify.py). API used: named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3`` with torch CUDA tensors as buffers on
``torch.cuda.current_stream()`` (no pycuda).

NOT RUN on our machines (no GPU, TensorRT not installable); the logic around it is tested with
fakes and the tests that need the real thing skip with the reason.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..artifacts import model_artifact_dir
from ..embeddings import l2_normalize
from .base import (ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder,
                   MissingCapability, check_batch)
from .engine_cache import ArtifactKey, get_or_build
from .onnx_export import ensure_image_onnx
from .verify import DEFAULT_MIN_COSINE, TorchReference

logger = logging.getLogger(__name__)

ENGINE_SUFFIX = ".engine"
DEFAULT_WORKSPACE_BYTES = 1 << 30


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingCapability(
            f"TensorRT is not importable ({exc}); install NVIDIA's 'tensorrt' Python package "
            "(JetPack ships it on Jetson)", "the tensorrt library") from exc
    return tensorrt


def cuda_index(device: str = "cuda") -> int:
    """'cuda' -> the current device, 'cuda:N' -> N."""
    if device.startswith("cuda:"):
        return int(device[5:])
    import torch

    return torch.cuda.current_device()


def cuda_device_name(device: str = "cuda") -> str:
    """'<GPU name> sm_<major><minor>' of ``device`` (part of the engine key)."""
    name, (major, minor) = cuda_device(device)
    return f"{name} sm_{major}{minor}"


def cuda_device(device: str = "cuda") -> tuple[str, tuple[int, int]]:
    """(GPU name, compute capability) of ``device``; MissingCapability when it has none."""
    try:
        import torch
    except ImportError as exc:
        raise MissingCapability(f"torch is not importable ({exc}); TensorRT buffers are "
                                "torch CUDA tensors", "torch") from exc
    if not torch.cuda.is_available():
        raise MissingCapability("CUDA is not available to torch (no GPU, no driver, or a "
                                "CPU-only torch build); TensorRT needs a CUDA GPU", "a CUDA GPU")
    index = cuda_index(device)
    if index >= torch.cuda.device_count():
        raise MissingCapability(f"device '{device}' requested but only "
                                f"{torch.cuda.device_count()} CUDA device(s) are present",
                                f"CUDA device {device}")
    return torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index))


# Compute capabilities without fast fp16 arithmetic (CUDA C++ Programming Guide, throughput of
# the arithmetic instructions: none on 5.0/5.2, 1/64 of fp32 on 6.1, e.g. a GTX 1080). An fp16
# engine there runs slower than fp32, so fp16 counts as missing and ``precision: auto`` takes the
# table's fp32 row. (5.3 and 6.2, the Jetson Nano and TX2, have it.)
SLOW_FP16_CAPABILITIES = ((5, 0), (5, 2), (6, 1))


def check_fast_fp16(name: str, capability: tuple[int, int]) -> None:
    """MissingCapability when the GPU (``cuda_device``'s answer) has no fast fp16 arithmetic."""
    if tuple(capability) in SLOW_FP16_CAPABILITIES:
        major, minor = capability
        raise MissingCapability(
            f"{name} (sm_{major}{minor}) has no fast fp16 arithmetic: an fp16 engine would "
            "run slower than fp32 there",
            "a GPU with fast fp16 (sm_53, sm_60, sm_62, sm_70 or newer)")


def preflight(precision: str, device: str = "cuda") -> str:
    """Raise BackendUnavailable unless an engine of ``precision`` can be built on ``device``
    and pays there; returns 'tensorrt <version> on <GPU> sm_XY'."""
    trt = import_tensorrt()
    check_builder(precision, trt)
    name, (major, minor) = cuda_device(device)
    if precision == "fp16":
        check_fast_fp16(name, (major, minor))
    return f"tensorrt {trt.__version__} on {name} sm_{major}{minor}"


def tensorrt_available(precision: str = "fp16", device: str = "cuda") -> tuple[bool, str]:
    """(usable, description or reason): TensorRT importable, precision buildable, CUDA present."""
    try:
        return True, preflight(precision, device)
    except BackendUnavailable as exc:
        return False, str(exc)


def check_builder(precision: str, trt) -> None:
    """MissingCapability when the installed TensorRT cannot build ``precision`` (of the engine
    table's tensorrt rows; int8 has no row: it needs a calibration set, not implemented)."""
    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        # TensorRT 11 removed weak typing: fp16 then needs an fp16-typed ONNX with fp32
        # islands (ModelOpt AutoCast), which this package does not produce.
        raise MissingCapability(f"tensorrt {trt.__version__} has no BuilderFlag.FP16 "
                                "(strongly typed only); use precision fp32 or TensorRT 10",
                                "TensorRT with BuilderFlag.FP16 (10.x)")


# Layers that overflow or lose too much in fp16 in a CLIP ViT: LayerNorm (variance of
# activations in the hundreds), softmax, and the reductions of the final L2 normalisation.
def _keep_fp32(trt, layer) -> bool:
    if layer.type not in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX,
                          trt.LayerType.REDUCE):
        return False
    # Shape arithmetic (int32/int64 tensors) must keep its own type.
    return all(layer.get_output(j).dtype in (trt.float32, trt.float16)
               for j in range(layer.num_outputs))


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, precision: str,
                 image_size: int, max_batch: int, opt_batch: int = 1,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES, device: str = "cuda") -> None:
    """Parse the ONNX image tower and write a serialized engine to ``engine_path``."""
    import torch

    trt = import_tensorrt()
    check_builder(precision, trt)
    with torch.cuda.device(cuda_index(device)):  # TensorRT builds for the current GPU
        _build(trt, onnx_path, engine_path, precision, image_size, max_batch, opt_batch,
               workspace_bytes)


def _build(trt, onnx_path, engine_path, precision, image_size, max_batch, opt_batch,
           workspace_bytes) -> None:
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        # Obey (not just prefer) the per-layer fp32 constraints set below.
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        kept = 0
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if _keep_fp32(trt, layer):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                kept += 1
        logger.info("fp16 engine: %d LayerNorm/softmax/reduce layers kept in fp32", kept)
    shape = (3, image_size, image_size)
    profile = builder.create_optimization_profile()
    opt_batch = min(max(1, opt_batch), max_batch)
    profile.set_shape(ONNX_INPUT_NAME, (1,) + shape, (opt_batch,) + shape, (max_batch,) + shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT build_serialized_network returned None (see the TensorRT "
                           "log above for the failing layer)")
    Path(engine_path).write_bytes(bytes(serialized))


class TensorRTImageEncoder(ImageEncoder):
    """Runs a serialized engine; batches larger than the profile's max are split."""

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, image_size: int, max_batch: int,
                 precision: str, device: str = "cuda"):
        trt = import_tensorrt()
        import torch

        self._torch = torch
        self.image_size = image_size
        self.max_batch = max_batch
        self.precision = precision
        self.device = device
        self._torch_device = torch.device("cuda", cuda_index(device))
        self.engine_path = Path(engine_path)
        with torch.cuda.device(self._torch_device):  # the engine lives on this GPU
            self._load(trt, torch)

    def _load(self, trt, torch) -> None:
        # TensorRT requires the logger to outlive the runtime and engine: keep references.
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._trt_logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:  # corrupt file, or built by another TensorRT version / GPU
            raise RuntimeError(f"TensorRT could not deserialize {self.engine_path}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([ONNX_INPUT_NAME, ONNX_OUTPUT_NAME]):
            raise RuntimeError(f"{self.engine_path}: I/O tensors {names}, expected "
                               f"{[ONNX_INPUT_NAME, ONNX_OUTPUT_NAME]}")
        out_dtype = self.engine.get_tensor_dtype(ONNX_OUTPUT_NAME)
        self._out_dtype = {trt.float32: torch.float32, trt.float16: torch.float16}[out_dtype]
        self.embed_dim = int(self.engine.get_tensor_shape(ONNX_OUTPUT_NAME)[-1])
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (GPU memory?)")
        # One context is not safe to use from two threads at once.
        self._lock = threading.Lock()

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.image_size)
        outs = [self._run(batch[i:i + self.max_batch])
                for i in range(0, batch.shape[0], self.max_batch)]
        out = np.concatenate(outs) if len(outs) > 1 else outs[0]
        # Re-normalise in fp32: an fp16 output tensor carries ~1e-3 relative error in its norm.
        return l2_normalize(out.astype(np.float32, copy=False))

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.cuda.device(self._torch_device):
            if self.context is None:
                raise RuntimeError("TensorRT encoder is closed")
            x = torch.from_numpy(chunk).to(self._torch_device)
            out = torch.empty((chunk.shape[0], self.embed_dim), dtype=self._out_dtype,
                              device=self._torch_device)
            if not self.context.set_input_shape(ONNX_INPUT_NAME, tuple(x.shape)):
                raise ValueError(f"input shape {tuple(x.shape)} is outside the engine's "
                                 f"profile (batch 1..{self.max_batch})")
            self.context.set_tensor_address(ONNX_INPUT_NAME, x.data_ptr())
            self.context.set_tensor_address(ONNX_OUTPUT_NAME, out.data_ptr())
            stream = torch.cuda.current_stream()
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            stream.synchronize()
            return out.float().cpu().numpy()

    def close(self) -> None:
        # Under _run's lock: an encode in flight finishes before its context is released.
        with self._lock:
            self.context = None
            self.engine = None
            self._runtime = None


def engine_key(clip, precision: str, max_batch: int, opt_batch: int = 1, device: str = "cuda"):
    """Cache key of the engine for ``clip`` on ``device``'s GPU with the installed TensorRT."""
    trt = import_tensorrt()
    check_builder(precision, trt)
    return ArtifactKey(kind="tensorrt", model=clip.identifier, weights_hash=clip.weights_hash,
                       precision=precision, input_shape=(3, clip.image_size, clip.image_size),
                       batch_profile=(1, min(max(1, opt_batch), max_batch), max_batch),
                       library=f"tensorrt {trt.__version__}", device=cuda_device_name(device))


def load_or_build_engine(clip, precision: str = "fp16", max_batch: int = 8, cache_dir=None,
                         reference=None, min_cosine: float | None = None, key=None,
                         build=None, load=None, onnx_path=None, force_rebuild: bool = False,
                         device: str = "cuda"):
    """The verified engine for ``clip`` as an engine_cache.CachedArtifact (value: encoder).

    Exports the ONNX tower if needed, builds or loads the engine through the cache and checks
    it against the torch reference. ``key``/``build``/``load`` are injectable so the cache,
    invalidation and verification logic is tested without a GPU.
    Raises BackendUnavailable (TensorRT/CUDA missing), engine_cache.ArtifactBuildFailed or
    engine_cache.ArtifactRefused (below ``min_cosine``).
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    key = key or engine_key(clip, precision, max_batch, device=device)
    if onnx_path is None:
        onnx_path = ensure_image_onnx(clip, cache_dir)
    build = build or (lambda path: build_engine(onnx_path, path, precision, clip.image_size,
                                                max_batch, device=device))
    load = load or (lambda path: TensorRTImageEncoder(path, clip.image_size, max_batch,
                                                      precision, device))
    reference = reference or TorchReference(clip, max_batch=max_batch)
    threshold = DEFAULT_MIN_COSINE if min_cosine is None else min_cosine
    # Natural photos at batch 1 and at the engine's own max batch (its optimisation profile).
    return get_or_build(model_artifact_dir(clip, cache_dir) / "engines", key, ENGINE_SUFFIX,
                        build=build, load=load,
                        verify=lambda enc: reference.verify(enc, threshold,
                                                            max_batch=max_batch),
                        force_rebuild=force_rebuild)
