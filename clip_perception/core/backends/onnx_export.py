"""Export the image tower (encode + L2-normalise) to ONNX with a dynamic batch axis."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

from ..artifacts import model_artifact_dir
from .base import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable
from .engine_cache import ArtifactKey, ArtifactRefused, get_or_build

logger = logging.getLogger(__name__)
DEFAULT_OPSET = 18


def export_image_tower(clip, path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``clip``'s image tower to ``path`` atomically; returns the path.

    The example batch has 2 images: a batch-1 example lets the exporter specialise the batch
    dimension to 1 even when it is declared dynamic.
    """
    import torch

    class _ImageTower(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            feats = self.model.encode_image(pixel_values)
            return torch.nn.functional.normalize(feats, dim=-1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = clip.image_size
    example = torch.randn(2, 3, size, size, device=clip.device)
    tower = _ImageTower(clip.model).eval()
    # Grad mode on (no inference_mode/no_grad): otherwise nn.MultiheadAttention takes its
    # fused fast path, which has no ONNX symbolic.
    export_onnx(tower, example, path, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME,
                {ONNX_INPUT_NAME: {0: "batch"}, ONNX_OUTPUT_NAME: {0: "batch"}}, opset)
    logger.info("exported image tower of %s to %s", clip.identifier, path)
    return path


def exporter_tag(opset: int = DEFAULT_OPSET) -> str:
    """Names the text tower's export: a torch upgrade or another opset exports anew."""
    import torch

    return re.sub(r"[^A-Za-z0-9.]+", "_", f"torch{torch.__version__}_opset{opset}")


# Every exporter choice that changes the file; part of the image export's cache key.
EXPORT_OPTIONS = (("exporter", "torchscript"), ("opset", DEFAULT_OPSET),
                  ("dynamic_axes", "batch"), ("example_batch", 2), ("normalised_output", True))


def export_onnx(module, example, path: Path, input_name: str, output_name: str,
                dynamic_axes: dict, opset: int = DEFAULT_OPSET) -> None:
    """torch.onnx.export (TorchScript exporter) into a temporary file, then an atomic rename:
    a reader never sees a half-written model, even if the export dies."""
    import torch

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        torch.onnx.export(module, (example,), tmp, input_names=[input_name],
                          output_names=[output_name], opset_version=opset, dynamo=False,
                          dynamic_axes=dynamic_axes)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def image_export_key(clip, options=EXPORT_OPTIONS):
    import torch

    return ArtifactKey(kind="onnx-image", model=clip.identifier, weights_hash=clip.weights_hash,
                       precision="fp32", input_shape=(3, clip.image_size, clip.image_size),
                       batch_profile=(), library=f"torch {torch.__version__}", device="any",
                       options=tuple(options))


def ensure_image_onnx(clip, cache_dir=None, force_rebuild: bool = False) -> Path:
    """The exported fp32 image tower for ``clip``: exported once per key (model, weights,
    torch version, exporter options), recorded with its key, under the cross-process lock."""
    return get_or_build(model_artifact_dir(clip, cache_dir), image_export_key(clip), ".onnx",
                        build=lambda p: export_image_tower(clip, p), load=lambda p: p,
                        force_rebuild=force_rebuild).path


def with_image_onnx(clip, cache_dir, use):
    """``use(path)`` on the cached export (e.g. open and verify a session). If that fails
    because the file is corrupt or its output is refused, the tower is exported again once and
    ``use`` retried; a second failure is raised with its reason."""
    path = ensure_image_onnx(clip, cache_dir)
    try:
        return use(path)
    except BackendUnavailable as exc:
        if not isinstance(exc, ArtifactRefused):
            raise  # a missing library or device: a new export would not help
        why = str(exc)
    except Exception as exc:  # a corrupt file: onnxruntime/openvino raise their own types
        why = f"{type(exc).__name__}: {exc}"
    logger.warning("exported ONNX file %s unusable (%s); exporting it again once", path, why)
    return use(ensure_image_onnx(clip, cache_dir, force_rebuild=True))
