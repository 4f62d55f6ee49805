"""Export the image tower (encode + L2-normalise) to ONNX with a dynamic batch axis."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

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
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        # Grad mode on (no inference_mode/no_grad): otherwise nn.MultiheadAttention takes its
        # fused fast path, which has no ONNX symbolic.
        torch.onnx.export(
            tower, (example,), tmp, input_names=[ONNX_INPUT_NAME],
            output_names=[ONNX_OUTPUT_NAME], opset_version=opset, dynamo=False,
            dynamic_axes={ONNX_INPUT_NAME: {0: "batch"}, ONNX_OUTPUT_NAME: {0: "batch"}})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    logger.info("exported image tower of %s to %s", clip.identifier, path)
    return path
