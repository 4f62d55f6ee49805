"""Frame preprocessing that matches open_clip's own transform, done in one fast pass.

open_clip's eval transform is: Resize(shortest side, bicubic, antialiased — PIL's resize is
antialiased), CenterCrop, ToTensor (/255), Normalize. The resize has two implementations
(``RESIZE_METHODS``):

- ``fast`` (default): torch's uint8 antialiased kernel, which implements PIL's algorithm (same
  filter support and coefficients) with SIMD; it differs from PIL by at most 1-2 levels on a few
  tenths of a percent of pixels and is 2-3.5x faster (640x480: 0.8 vs 2.9 ms on one core with
  warm caches, 1.9 vs 4.2 ms inside the node after each int8 encode).
  cv2's resizes are faster still but use other filters (up to 16-35 levels off, embedding cosine
  below 0.9999 on fine textures: docs/results/node.md).
- ``exact``: PIL itself, resampling only the crop region.

/255, normalise and HWC->CHW are fused into one numpy pass.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
SUPPORTED_RESIZE_MODES = ("shortest", "squash")
RESIZE_METHODS = ("fast", "exact")
DEFAULT_RESIZE = "fast"
# Frames are often read-only views over a message buffer; torch warns when wrapping one, but the
# resize only reads it. Scoped to this module (where torch attributes the warning).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        module=__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def __post_init__(self):
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation '{self.interpolation}' not supported; "
                             f"expected one of {sorted(_RESAMPLE)}")
        if self.resize_mode not in SUPPORTED_RESIZE_MODES:
            raise ValueError(f"resize_mode '{self.resize_mode}' not supported; "
                             f"expected one of {SUPPORTED_RESIZE_MODES}")

    @classmethod
    def from_open_clip(cls, cfg: dict) -> "PreprocessConfig":
        size = cfg["size"]
        if isinstance(size, (tuple, list)):
            if size[0] != size[1]:
                raise ValueError(f"non-square model input {size} is not supported")
            size = size[0]
        interpolation = cfg.get("interpolation", "bicubic")
        if interpolation == "random":  # open_clip uses bicubic for inference in this case
            interpolation = "bicubic"
        return cls(image_size=int(size), mean=tuple(float(m) for m in cfg["mean"]),
                   std=tuple(float(s) for s in cfg["std"]), interpolation=interpolation,
                   resize_mode=cfg.get("resize_mode", "shortest"))

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "resize_mode": self.resize_mode}


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after resizing the shortest side to ``size``, truncated like torchvision."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


class Preprocessor:
    """HxWx3 uint8 RGB frames -> (N, 3, S, S) float32 model input; ``resize`` is one of
    ``RESIZE_METHODS``."""

    def __init__(self, config: PreprocessConfig, resize: str = DEFAULT_RESIZE):
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize method '{resize}' not supported; expected one of "
                             f"{', '.join(RESIZE_METHODS)}")
        self.config = config
        self.resize = resize
        std = np.asarray(config.std, dtype=np.float32)
        mean = np.asarray(config.mean, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (mean / std).astype(np.float32)
        self._resample = _RESAMPLE[config.interpolation]

    def crop_geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(resized height, resized width, top, left) of open_clip's resize, then centre crop
        (``squash``: the whole frame resized to SxS)."""
        size = self.config.image_size
        if self.config.resize_mode == "squash":
            return size, size, 0, 0
        new_h, new_w = resized_shape(height, width, size)
        return new_h, new_w, int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))

    def resize_crop(self, rgb: np.ndarray) -> np.ndarray:
        """Resize + center-crop to SxSx3 uint8 as open_clip's PIL path does (``exact``: PIL
        itself; ``fast``: the same filter in torch's uint8 kernel)."""
        _check_frame(rgb)
        size = self.config.image_size
        h, w = rgb.shape[:2]
        new_h, new_w, top, left = self.crop_geometry(h, w)
        if (new_h, new_w) == (h, w):  # nothing to resample: the crop alone
            return np.ascontiguousarray(rgb[top:top + size, left:left + size])
        rgb = np.ascontiguousarray(rgb)
        if self.resize == "fast":
            chw = _torch_resize(rgb, (new_h, new_w), self.config.interpolation)
            return chw[:, top:top + size, left:left + size].permute(1, 2, 0).contiguous().numpy()
        # Resample only the region the center crop keeps: output pixel centres land on the same
        # source coordinates as resize-then-crop, so the result is the same (within float
        # rounding of the box) at ~3/4 of the cost for 4:3 frames.
        sx, sy = w / new_w, h / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return np.asarray(Image.fromarray(rgb, mode="RGB").resize((size, size), self._resample,
                                                                  box=box))

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, 3, S, S) float32: one fused scale/offset/transpose pass."""
        out = np.empty((crops.shape[0], 3) + crops.shape[1:3], dtype=np.float32)
        chw = crops.transpose(0, 3, 1, 2)
        np.multiply(chw, self._scale[None, :, None, None], out=out, dtype=np.float32)
        out -= self._offset[None, :, None, None]
        return out

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        crops = np.stack([self.resize_crop(f) for f in frames])
        return self.normalize(crops)


def _torch_resize(rgb: np.ndarray, out_hw: tuple[int, int], interpolation: str):
    """(H, W, 3) uint8 -> (3, h, w) uint8 tensor, antialiased like PIL."""
    import torch
    from torch.nn.functional import interpolate

    tensor = torch.from_numpy(rgb)
    # HWC memory seen as NCHW is channels-last: the layout torch's uint8 kernel vectorises.
    out = interpolate(tensor.permute(2, 0, 1).unsqueeze(0), size=out_hw, mode=interpolation,
                      antialias=True, align_corners=False)
    return out[0]


def _check_frame(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3:
        got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {got}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty frame {rgb.shape}")
