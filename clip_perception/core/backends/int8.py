"""int8 image tower for onnxruntime on CPU: quantisation of the fp32 export, cached by key and
verified against the torch reference before it serves.

Trained CLIP's activation outlier channels break dynamic per-tensor int8 (cosine 0.96 on the
stress model); by default the outliers are first migrated into the weights (smoothquant.py,
SmoothQuant) on a copy of the model, which is exported and then quantised.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from ..artifacts import model_artifact_dir
from .engine_cache import ArtifactKey, get_or_build
from .onnx_export import export_image_tower
from .onnxruntime_backend import OnnxRuntimeImageEncoder, import_onnxruntime
from .smoothquant import CALIBRATION_TAG, DEFAULT_ALPHA, calibration_batch, smoothed_copy
from .verify import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1, TorchReference

# The MatMul weight format decides both speed and exactness on a CPU (docs/results/engines.md,
# stress model, 128 natural photo views, AMD EPYC AVX2-only, 1 thread):
# - signed int8 weights take ORT's fastest u8s8 kernels, but without VNNI their int16 pairwise
#   sums saturate: full range gives cosine 0.982 to fp32; 7-bit weights (reduce_range) cosine
#   0.9997 yet only 96 % top-1 agreement (2.75x torch eager);
# - unsigned int8 weights (u8u8 kernels, 32-bit sums) cannot saturate on any x86 CPU: cosine
#   0.99988 and 100 % top-1 agreement, at 2.2-2.4x torch eager. The default.
# With VNNI (AVX512-VNNI, AVX-VNNI, AMX) signed full-range weights would be exact and likely
# faster, but no VNNI CPU was available to measure that; where AMX is present OpenVINO bf16 is
# the faster candidate anyway.
# MatMul only: the patch-embedding Conv stays fp32 (little time, most sensitive input).
INT8_WEIGHT_OPTIONS = (("weight_type", "QUInt8"), ("per_channel", True), ("reduce_range", False),
                       ("op_types_to_quantize", ("MatMul",)))
# The first recipe, kept as the benchmark's baseline: no smoothing, 7-bit signed weights.
DYNAMIC_INT8_OPTIONS = (("weight_type", "QInt8"), ("per_channel", True), ("reduce_range", True),
                        ("op_types_to_quantize", ("MatMul",)))
# Smoothing (smoothquant.py): without it min cosine 0.960 on the stress model, with alpha 0.5
# 0.9997-0.9999, as on the random model without outliers.
SMOOTHING_OPTIONS = (("smoothing_alpha", DEFAULT_ALPHA), ("calibration", CALIBRATION_TAG))
INT8_OPTIONS = INT8_WEIGHT_OPTIONS + SMOOTHING_OPTIONS
# The previous default (smoothed, 7-bit signed weights), for the benchmark's comparison.
SMOOTHED_S8_OPTIONS = DYNAMIC_INT8_OPTIONS + SMOOTHING_OPTIONS


def int8_key(clip, options=INT8_OPTIONS):
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
                          quantize=quantize_int8, force_rebuild: bool = False,
                          min_top1: float = DEFAULT_MIN_TOP1):
    """The cached int8 tower (a CachedArtifact whose value is the encoder); raises
    engine_cache.ArtifactRefused when it is not within ``min_cosine`` of the reference."""
    reference = reference or TorchReference(clip)
    return get_or_build(
        model_artifact_dir(clip, cache_dir), int8_key(clip, options), ".onnx",
        build=lambda path: _build(clip, fp32_path, path, options, quantize),
        load=lambda path: OnnxRuntimeImageEncoder(path, clip.image_size, "cpu", threads,
                                                  precision="int8", spinning=spinning),
        verify=lambda enc: reference.verify(enc, min_cosine, min_top1),
        force_rebuild=force_rebuild)


def _build(clip, fp32_path, out_path, options, quantize) -> None:
    alpha = dict(options).get("smoothing_alpha")
    if alpha is None:
        quantize(fp32_path, out_path, options)
        return
    if dict(options).get("calibration") != CALIBRATION_TAG:
        raise ValueError(f"int8 options name calibration {dict(options).get('calibration')!r}; "
                         f"this version calibrates on {CALIBRATION_TAG!r}")
    smoothed = dataclasses.replace(clip, model=smoothed_copy(clip, calibration_batch(
        clip.preprocess), alpha))
    # The smoothed fp32 export is only an intermediate: next to the output, removed after.
    # Named like the artifact's other partials, so an interrupted build's leftovers are removed.
    stem = Path(out_path).name.split(".", 1)[0]
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=stem + ".",
                                     suffix=".partial") as tmp:
        source = export_image_tower(smoothed, Path(tmp) / "smoothed_fp32.onnx")
        quantize(source, out_path, options)
