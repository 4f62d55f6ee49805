"""PyTorch image backend: the reference every other backend is checked against."""
from __future__ import annotations

import numpy as np

from ..devices import is_cuda
from ..embeddings import l2_normalize
from .base import ImageEncoder, check_batch


class TorchImageEncoder(ImageEncoder):
    name = "torch"

    def __init__(self, clip, threads: int = 0):
        """``threads`` > 0 on CPU sets torch's intra-op pool, which is process-wide: the node's
        torch text encoder then runs on the same count (it only runs between frames)."""
        import torch

        self._torch = torch
        self.clip = clip
        self.device = clip.device
        self.precision = "fp32"
        if not is_cuda(str(self.device)):
            if threads > 0:
                torch.set_num_threads(threads)
            self.threads = torch.get_num_threads()

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.clip.image_size)
        with self._torch.inference_mode():
            x = self._torch.from_numpy(batch).to(self.device)
            feats = self.clip.model.encode_image(x)
        return l2_normalize(feats.float().cpu().numpy())
