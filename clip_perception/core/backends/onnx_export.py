"""Export the image tower (encode + L2-normalise) to ONNX with a dynamic batch axis."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

from ..artifacts import model_artifact_dir
from .base import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME

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
    """Part of every exported file's name: a torch upgrade or another opset exports anew
    instead of reusing a file another exporter wrote (model + weights hash key the folder)."""
    import torch

    return re.sub(r"[^A-Za-z0-9.]+", "_", f"torch{torch.__version__}_opset{opset}")


def export_onnx(module, example, path: Path, input_name: str, output_name: str,
                dynamic_axes: dict, opset: int = DEFAULT_OPSET) -> None:
    """torch.onnx.export (TorchScript exporter) into a temporary file, then an atomic rename:
    a reader never sees a half-written model, even if the export dies."""
    import torch

    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        torch.onnx.export(module, (example,), tmp, input_names=[input_name],
                          output_names=[output_name], opset_version=opset, dynamo=False,
                          dynamic_axes=dynamic_axes)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def image_onnx_path(clip, cache_dir=None) -> Path:
    return model_artifact_dir(clip, cache_dir) / \
        f"image_fp32_{clip.image_size}px_{exporter_tag()}.onnx"


def ensure_image_onnx(clip, cache_dir=None) -> Path:
    """The exported fp32 image tower for ``clip``, exporting it once per weights hash."""
    path = image_onnx_path(clip, cache_dir)
    if not path.is_file():
        export_image_tower(clip, path)
    return path
