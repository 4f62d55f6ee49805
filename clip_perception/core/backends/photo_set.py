"""Natural photographs for verifying reduced-precision engines, available offline.

Synthetic inputs (blobs, noise) do not produce the activations of camera frames, so an int8 or
bf16 engine is judged on real photographs: scikit-image ships about 15 sample photos inside its
wheel (no download). Each photo gives several views (crops at different places and scales,
mirrored) so the top-1 agreement over a generic label set is measured on enough images for a
99 % threshold to mean something.
"""
from __future__ import annotations

import functools
import logging

import numpy as np

from ..preprocess import PreprocessConfig, Preprocessor

logger = logging.getLogger(__name__)

# Photographs in scikit-image's wheel (checked: these load without a network; `eagle`, `lily`
# and others are fetched on first use, so they are not listed). Grey ones are repeated to RGB.
PHOTO_NAMES = ("astronaut", "chelsea", "cat", "coffee", "rocket", "camera", "clock", "coins",
               "moon", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
               "retina", "page")
# (top, left, size) of square crops as fractions of the shorter side, plus whether mirrored.
VIEWS = ((0.0, 0.0, 1.0, False), (0.0, 0.0, 1.0, True), (0.0, 0.0, 0.6, False),
         (0.4, 0.4, 0.6, True), (0.0, 0.4, 0.6, False), (0.4, 0.0, 0.6, True),
         (0.2, 0.2, 0.5, False), (0.25, 0.25, 0.75, True))
# A generic vocabulary (COCO's 80 object classes plus scenes and materials the photos show), so
# top-1 agreement is about the decisions a user sees, not just the embedding distance.
GENERIC_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "astronaut",
    "rocket", "coffee", "coins", "moon", "brick wall", "grass", "gravel", "galaxy",
    "microscope slide", "eye", "page of text", "door", "staircase", "corridor", "window")
LABEL_TEMPLATE = "a photo of a {}."


class PhotoSetUnavailable(RuntimeError):
    """scikit-image (which carries the photographs) is not importable."""


@functools.lru_cache(maxsize=1)
def load_photos() -> tuple:
    """The sample photographs as (H, W, 3) uint8 RGB arrays, in PHOTO_NAMES order."""
    try:
        import skimage.data
    except ImportError as exc:
        raise PhotoSetUnavailable(f"scikit-image is not importable ({exc}); it carries the "
                                  "natural photographs engines are verified on "
                                  "(pip install scikit-image)") from exc
    photos = []
    for name in PHOTO_NAMES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
    return tuple(photos)


def photo_views(photos=None, views=VIEWS) -> list:
    """Every photo cut into ``views``: a list of (h, w, 3) uint8 crops, photo-major order."""
    out = []
    for img in photos if photos is not None else load_photos():
        h, w = img.shape[:2]
        side = min(h, w)
        for top, left, size, mirror in views:
            s = max(8, int(side * size))
            y = min(int(side * top), h - s)
            x = min(int(side * left), w - s)
            crop = img[y:y + s, x:x + s]
            out.append(np.ascontiguousarray(crop[:, ::-1] if mirror else crop))
    return out


def as_camera_frame(img: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """A photo as a camera would deliver it: the centred width:height cut, resized (Lanczos)
    to width x height, (height, width, 3) uint8."""
    from PIL import Image

    h, w = img.shape[:2]
    if w * height > h * width:
        cw = h * width // height
        img = img[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = w * height // width
        img = img[(h - ch) // 2:(h - ch) // 2 + ch]
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(
        (width, height), Image.Resampling.LANCZOS))


def photo_batch(preprocess: PreprocessConfig, count: int | None = None) -> np.ndarray:
    """(N, 3, S, S) float32: the preprocessed views (all of them, or the first ``count``
    spread over the photos), exactly as the node preprocesses camera frames."""
    views = photo_views()
    if count is not None and count < len(views):
        # Spread the subset over all photos rather than taking the first photo's views.
        step = len(views) / count
        views = [views[int(i * step)] for i in range(count)]
    return Preprocessor(preprocess)(views)
