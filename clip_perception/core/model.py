"""Load a CLIP model through open_clip identifiers and describe it.

Accepted identifiers (the same ones open_clip understands):
  * a built-in architecture name (``ViT-B-32``) plus ``pretrained``: an open_clip tag
    (``openai``, ``laion2b_s34b_b79k``) or a checkpoint file path;
  * ``hf-hub:org/repo`` (config + weights from the Hugging Face hub);
  * ``local-dir:/path`` (open_clip's folder format: ``open_clip_config.json`` + weights).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .devices import is_cuda, resolve_device
from .errors import ClipPerceptionError
from .preprocess import PreprocessConfig

logger = logging.getLogger(__name__)

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
DEFAULT_PRETRAINED = "openai"  # what an unset 'pretrained' means for other built-in names
# The weights an unset 'pretrained' loads, where published zero-shot results name a better set
# for the same graph and cost than OpenAI's (open_clip's docs/openclip_results.csv, 38-dataset
# average / ImageNet-1k): ViT-B-32 0.579 / 69.2 vs openai 0.525 / 63.3; ViT-B-16 0.615 / 73.5
# vs 0.563 / 68.3; ViT-L-14 0.663 / 79.2 vs 0.617 / 75.5. DataComp-XL weights are MIT-licensed
# (laion/CLIP-*-DataComp.XL-s13B-b90K); OpenAI's model card puts any deployed use out of scope.
# 'pretrained: openai' stays one parameter away (README, docs/models.md).
DEFAULT_PRETRAINED_BY_MODEL = {
    "ViT-B-32": "datacomp_xl_s13b_b90k",
    "ViT-B-16": "datacomp_xl_s13b_b90k",
    "ViT-L-14": "datacomp_xl_s13b_b90k",
}


def default_pretrained(model_name: str, pretrained: Optional[str]) -> Optional[str]:
    """An unset ``pretrained`` means the model's own default: the best published weights of
    that architecture (``DEFAULT_PRETRAINED_BY_MODEL``), else 'openai' for a built-in name;
    nothing for ``local-dir:``/``hf-hub:`` (their weights come with them)."""
    if pretrained:
        return pretrained
    if model_name.startswith((LOCAL_DIR_PREFIX, HF_HUB_PREFIX)):
        return None
    return DEFAULT_PRETRAINED_BY_MODEL.get(model_name, DEFAULT_PRETRAINED)


class ModelLoadError(ClipPerceptionError, RuntimeError):
    """A model identifier could not be resolved or loaded; the message says why."""


@dataclass
class ClipModel:
    """A loaded open_clip model with what the rest of the package needs to use it."""

    model: Any  # open_clip CLIP module, eval mode
    tokenizer: Callable
    preprocess: PreprocessConfig
    model_name: str
    pretrained: Optional[str]
    device: str
    _weights_hash: Optional[str] = field(default=None, repr=False)

    @property
    def identifier(self) -> str:
        """Human- and cache-readable model identifier, e.g. ``ViT-B-32/openai``."""
        if self.pretrained:
            return f"{self.model_name}/{self.pretrained}"
        return self.model_name

    @property
    def embed_dim(self) -> int:
        return _embed_dim(self.model)

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def weights_hash(self) -> str:
        """sha256 over every parameter and buffer (names, dtypes, shapes, bytes), hex.

        Keys engine caches and adapter compatibility. Computed once, on first use, because it
        reads every weight (~0.5 s for ViT-B-32).
        """
        if self._weights_hash is None:
            self._weights_hash = hash_state_dict(self.model.state_dict())
        return self._weights_hash


def _embed_dim(model) -> int:
    proj = getattr(model, "text_projection", None)
    if proj is not None and hasattr(proj, "shape"):  # nn.Parameter (D_text, D)
        return int(proj.shape[-1])
    if proj is not None and hasattr(proj, "out_features"):  # nn.Linear
        return int(proj.out_features)
    return int(model.visual.output_dim)


def hash_state_dict(state_dict) -> str:
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(str(tuple(tensor.shape)).encode())
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def known_model_names() -> list[str]:
    import open_clip

    return list(open_clip.list_models())


def known_pretrained_tags(model_name: str) -> list[str]:
    import open_clip

    return list(open_clip.list_pretrained_tags_by_model(model_name))


def _check_identifier(model_name: str, pretrained: Optional[str]) -> None:
    """Fail early, with the valid choices, before open_clip tries anything slow."""
    if not model_name:
        raise ModelLoadError("model name is empty; expected e.g. 'ViT-B-32', 'hf-hub:org/repo' "
                             "or 'local-dir:/path/to/folder'")
    if model_name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(os.path.expanduser(model_name[len(LOCAL_DIR_PREFIX):]))
        config = folder / "open_clip_config.json"
        if not folder.is_dir():
            raise ModelLoadError(f"model folder not found: {folder} (from '{model_name}')")
        if not config.is_file():
            raise ModelLoadError(f"model folder {folder} has no open_clip_config.json")
        local_weights_file(folder)  # raises when there is none, or no way to tell which
        return
    if model_name.startswith(HF_HUB_PREFIX):
        if not model_name[len(HF_HUB_PREFIX):].strip():
            raise ModelLoadError("empty repository after 'hf-hub:'")
        return
    names = known_model_names()
    cleaned = model_name.replace("/", "-")
    if cleaned not in names:
        raise ModelLoadError(f"unknown model '{model_name}'. Valid names: {', '.join(names)}; "
                             "or use 'hf-hub:org/repo' or 'local-dir:/path'")
    if not pretrained:
        raise ModelLoadError(
            f"model '{model_name}' needs 'pretrained': a tag ({', '.join(known_pretrained_tags(cleaned))}) "
            "or a checkpoint file path; random weights are never used silently")
    tags = known_pretrained_tags(cleaned)
    if pretrained not in tags:
        looks_like_path = os.sep in pretrained or Path(pretrained).suffix in _CHECKPOINT_SUFFIXES
        if looks_like_path and not os.path.isfile(os.path.expanduser(pretrained)):
            raise ModelLoadError(f"checkpoint file not found: {pretrained}")
        if not looks_like_path:
            raise ModelLoadError(f"unknown pretrained tag '{pretrained}' for {model_name}. "
                                 f"Valid tags: {', '.join(tags) or '(none)'}; or a checkpoint file path")


# open_clip's own preference when a folder holds several files (factory._find_checkpoint_in_dir)
_PREFERRED_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                      "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
                      "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")


def local_weights_file(folder: Path) -> Path:
    """The weights file of a ``local-dir:`` folder. open_clip itself only looks at
    *.safetensors/*.bin/*.pth and silently keeps random weights otherwise (e.g. for a *.pt), so
    the package picks the file and loads it itself (load_clip)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES)
    if not files:
        raise ModelLoadError(
            f"model folder {folder} has no weights file ({', '.join('*' + s for s in _CHECKPOINT_SUFFIXES)}); "
            "open_clip would silently use random weights, so this is refused")
    preferred = [p for p in files if p.name in _PREFERRED_WEIGHTS]
    if preferred:
        return min(preferred, key=lambda p: _PREFERRED_WEIGHTS.index(p.name))
    if len(files) > 1:
        raise ModelLoadError(f"model folder {folder} has several weights files "
                             f"({', '.join(p.name for p in files)}) and none of open_clip's "
                             f"names ({', '.join(_PREFERRED_WEIGHTS)}); keep one or rename it")
    return files[0]


def _load_local_weights(model, folder: Path) -> None:
    """Load the folder's weights strictly: every parameter and persistent buffer of the model
    must come from the file (a missing or extra key is an error, never random weights)."""
    from open_clip.factory import load_state_dict  # safetensors/torch, strips 'module.'

    path = local_weights_file(folder)
    try:
        state = load_state_dict(str(path))
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # torch/safetensors raise RuntimeError, KeyError, pickle errors
        raise ModelLoadError(f"weights file {path} could not be loaded into the model of "
                             f"{folder / 'open_clip_config.json'}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:500]}") from exc


def load_clip(model_name: str, pretrained: Optional[str] = None, device: str = "cpu") -> ClipModel:
    """Load ``model_name`` (+ ``pretrained``) with open_clip, in eval mode on ``device``
    ('auto': cuda when usable, else cpu)."""
    import open_clip
    import torch

    if model_name.startswith((LOCAL_DIR_PREFIX, HF_HUB_PREFIX)) and pretrained:
        raise ModelLoadError(f"'pretrained' must be empty for '{model_name}': the weights come "
                             "from the folder/repository itself")
    _check_identifier(model_name, pretrained)
    if pretrained and os.path.isfile(os.path.expanduser(pretrained)):
        pretrained = os.path.expanduser(pretrained)
    if model_name.startswith(LOCAL_DIR_PREFIX):
        model_name = LOCAL_DIR_PREFIX + os.path.expanduser(model_name[len(LOCAL_DIR_PREFIX):])
    try:
        device = resolve_device(device)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    if is_cuda(device) and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' requested but CUDA is not available")
    try:
        model = open_clip.create_model(model_name, pretrained=pretrained or None, device=device)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError variously
        hint = ""
        if (pretrained and not os.path.isfile(pretrained)) or model_name.startswith(HF_HUB_PREFIX):
            hint = ("; weights named by a tag or hf-hub: are downloaded once into "
                    "~/.cache/huggingface, so the first start needs internet (offline: use a "
                    "'local-dir:' model, see the README; HF_HUB_OFFLINE=1 fails fast)")
        raise ModelLoadError(f"could not load model '{model_name}' (pretrained={pretrained!r}): "
                             f"{exc}{hint}") from exc
    if model_name.startswith(LOCAL_DIR_PREFIX):
        _load_local_weights(model, Path(model_name[len(LOCAL_DIR_PREFIX):]))
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    preprocess = PreprocessConfig.from_open_clip(open_clip.get_model_preprocess_cfg(model))
    logger.info("loaded %s%s on %s (%s)", model_name, f"/{pretrained}" if pretrained else "",
                device, preprocess)
    return ClipModel(model=model, tokenizer=tokenizer, preprocess=preprocess,
                     model_name=model_name, pretrained=pretrained or None, device=device)
