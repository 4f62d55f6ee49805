"""SmoothQuant-style migration of activation outliers into the weights, before int8 export.

Trained CLIP has a few LayerNorm output channels tens of times larger than the rest. Dynamic
int8 takes one activation range per tensor, so those channels leave ~1 of 255 steps to all
others, and accuracy collapses (cosine 0.96-0.98 to fp32 on our stress model). Dividing each
channel of a LayerNorm's gain and bias by ``s_j`` and multiplying the consuming MatMul's input
column ``j`` by ``s_j`` keeps the function; choosing ``s_j = max|x_j|**a / max|w_j|**(1 - a)``
(SmoothQuant, Xiao et al. 2022) evens the activation ranges while leaving the weights easy to
quantise per output channel. The ranges ``max|x_j|`` come from natural photographs.
"""
from __future__ import annotations

import copy
import logging

import numpy as np

from ..preprocess import DEFAULT_RESIZE, Preprocessor
from .photo_set import photo_views

logger = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.5
# Views used to measure activation ranges: other crops than verification's VIEWS, so the
# verification does not judge an int8 model on the exact images it was calibrated on.
CALIBRATION_VIEWS = ((0.1, 0.1, 0.8, False), (0.3, 0.0, 0.7, True), (0.0, 0.3, 0.45, True),
                     (0.5, 0.5, 0.5, False))
# The calibration views' resize: the node's default, named so the tag follows it.
CALIBRATION_RESIZE = DEFAULT_RESIZE
# Part of artifact keys: change with the views or their preprocessing (v1 was resized by PIL).
CALIBRATION_TAG = f"skimage-photos-4views-{CALIBRATION_RESIZE}-v2"


def calibration_batch(preprocess) -> np.ndarray:
    """The preprocessed calibration views of the natural photographs."""
    return Preprocessor(preprocess, CALIBRATION_RESIZE)(photo_views(views=CALIBRATION_VIEWS))


def norm_consumer_pairs(visual) -> list:
    """(LayerNorm, [(weight, input axis)]) for every LayerNorm of the ViT image tower whose
    output feeds only matrix multiplies: ln_1 -> attention in-projection, ln_2 -> MLP fc,
    ln_post -> output projection."""
    pairs = []
    for block in visual.transformer.resblocks:
        pairs.append((block.ln_1, [(block.attn.in_proj_weight, 1)]))
        pairs.append((block.ln_2, [(block.mlp.c_fc.weight, 1)]))
    if getattr(visual, "proj", None) is not None:
        pairs.append((visual.ln_post, [(visual.proj, 0)]))
    return pairs


def _check_supported(visual) -> None:
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(visual, "ln_post"):
        raise ValueError(f"outlier smoothing supports open_clip ViT image towers; got "
                         f"{type(visual).__name__}")
    for block in blocks:
        if not hasattr(block.attn, "in_proj_weight") or not hasattr(block.mlp, "c_fc"):
            raise ValueError("outlier smoothing needs nn.MultiheadAttention blocks with an "
                             f"MLP c_fc; got {type(block).__name__}")


def activation_ranges(visual, batch: np.ndarray, chunk: int = 8) -> list:
    """Per-channel max |output| of every norm in ``norm_consumer_pairs`` over ``batch``."""
    import torch

    pairs = norm_consumer_pairs(visual)
    ranges = [None] * len(pairs)
    hooks = []

    def hook_for(i):
        def hook(_module, _inputs, output):
            m = output.detach().abs().reshape(-1, output.shape[-1]).amax(dim=0).float()
            ranges[i] = m if ranges[i] is None else torch.maximum(ranges[i], m)
        return hook

    for i, (norm, _) in enumerate(pairs):
        hooks.append(norm.register_forward_hook(hook_for(i)))
    device = next(visual.parameters()).device
    try:
        with torch.inference_mode():
            for i in range(0, len(batch), chunk):
                visual(torch.from_numpy(batch[i:i + chunk]).to(device))
    finally:
        for h in hooks:
            h.remove()
    return ranges


def smooth_outliers(visual, ranges, alpha: float = DEFAULT_ALPHA) -> None:
    """Migrate activation range into the consuming weights, in place (function unchanged)."""
    import torch

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"smoothing alpha must be in (0, 1), got {alpha}")
    with torch.no_grad():
        for (norm, consumers), act in zip(norm_consumer_pairs(visual), ranges):
            w_max = torch.stack([w.detach().abs().amax(dim=1 - axis) for w, axis in consumers])
            w_max = w_max.amax(dim=0).float().clamp(min=1e-5)
            s = (act.clamp(min=1e-5) ** alpha / w_max ** (1 - alpha)).clamp(min=1e-5)
            s = s.to(norm.weight.dtype)
            norm.weight.div_(s)
            norm.bias.div_(s)
            for w, axis in consumers:
                w.mul_(s[None, :] if axis == 1 else s[:, None])


def smoothed_copy(clip, calibration: np.ndarray, alpha: float = DEFAULT_ALPHA):
    """``clip``'s model with a smoothed deep copy of the image tower (``clip`` untouched; the
    text tower is shared, not copied)."""
    _check_supported(clip.model.visual)
    model = copy.copy(clip.model)
    model._modules = dict(clip.model._modules)  # own module table, so the swap stays local
    model.visual = copy.deepcopy(clip.model.visual).eval()
    ranges = activation_ranges(model.visual, calibration)
    before = max(float(r.max() / r.median()) for r in ranges)
    smooth_outliers(model.visual, ranges, alpha)
    after = max(float(r.max() / r.median())
                for r in activation_ranges(model.visual, calibration[:4]))
    logger.info("outlier smoothing (alpha %.2f): worst channel range / median %.1f -> %.1f",
                alpha, before, after)
    return model
