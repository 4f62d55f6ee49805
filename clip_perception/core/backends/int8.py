"""int8 image tower for onnxruntime on CPU: quantisation of the fp32 export, cached by key and
verified against the torch reference before it serves."""
from __future__ import annotations

import os

from ..artifacts import model_artifact_dir
from .onnxruntime_backend import OnnxRuntimeImageEncoder, import_onnxruntime
from .verify import DEFAULT_MIN_COSINE

# Measured on our 2-core AVX2 machines with a random ViT-B-32 (benchmarks/RESULTS.md): signed
# int8 weights take ORT's fast u8s8 kernels, but on AVX2 without VNNI their int16 pairwise sums
# saturate (cosine ~0.993); reduce_range (7-bit weights) avoids that, and per-channel scales win
# back the lost bit (cosine ~0.9997). u8 weights are accurate but barely faster than fp32.
# MatMul only: the patch-embedding Conv stays fp32 (little time, most sensitive input).
INT8_OPTIONS = (("weight_type", "QInt8"), ("per_channel", True), ("reduce_range", True),
                ("op_types_to_quantize", ("MatMul",)))


def int8_key(clip, options=INT8_OPTIONS):
    from .engine_cache import ArtifactKey

    ort = import_onnxruntime()
    return ArtifactKey(kind="onnxruntime-int8", model=clip.identifier,
                       weights_hash=clip.weights_hash, precision="int8",
                       input_shape=(3, clip.image_size, clip.image_size), batch_profile=(),
                       library=f"onnxruntime {ort.__version__}", device="cpu",
                       options=tuple(options))


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  options=INT8_OPTIONS) -> None:
    """Dynamic (weights-only calibration-free) quantisation of the exported tower."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    opts = dict(options)
    quantize_dynamic(str(fp32_path), str(out_path),
                     weight_type=getattr(QuantType, opts["weight_type"]),
                     per_channel=opts["per_channel"], reduce_range=opts["reduce_range"],
                     op_types_to_quantize=list(opts["op_types_to_quantize"]))


def load_or_quantize_int8(clip, fp32_path, cache_dir=None, threads: int = 0,
                          spinning: bool = False, reference=None,
                          min_cosine: float = DEFAULT_MIN_COSINE, options=INT8_OPTIONS,
                          quantize=quantize_int8, force_rebuild: bool = False):
    """The cached int8 tower (a CachedArtifact whose value is the encoder); raises
    engine_cache.ArtifactRefused when it is not within ``min_cosine`` of the reference."""
    from .engine_cache import get_or_build
    from .verify import TorchReference

    reference = reference or TorchReference(clip)
    return get_or_build(
        model_artifact_dir(clip, cache_dir), int8_key(clip, options), ".onnx",
        build=lambda path: quantize(fp32_path, path, options),
        load=lambda path: OnnxRuntimeImageEncoder(path, clip.image_size, "cpu", threads,
                                                  precision="int8", spinning=spinning),
        verify=lambda enc: reference.verify(enc, min_cosine),
        force_rebuild=force_rebuild)
