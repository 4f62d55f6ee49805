"""Label sets for tests without a model: a deterministic fake text encoder and spec builders."""
import zlib

import numpy as np

from clip_perception.core.prompts import PromptEmbeddingCache
from clip_perception.core.vocabulary import LabelSetSpec, build_label_set

DIM = 8


def fake_text_encoder():
    """Deterministic prompt -> unit vector, counting calls (no model needed)."""
    calls = []

    def encode(prompts):
        calls.append(list(prompts))
        out = []
        for p in prompts:
            # crc32, not hash(): str hashes change every run (PYTHONHASHSEED)
            rng = np.random.default_rng(zlib.crc32(p.encode()))
            v = rng.normal(size=DIM).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    return encode, calls


def spec(**kw):
    base = dict(labels=["cup", "apple"], prompt_templates=["a photo of a {}."])
    base.update(kw)
    return LabelSetSpec.from_values(**base)


def label_set(s=None, version=1, cache=None, adapter=None):
    cache = cache or PromptEmbeddingCache(fake_text_encoder()[0])
    return build_label_set(s or spec(), cache, 100.0, DIM, version, adapter)



def with_nan_values(adapter_path: str) -> str:
    """Rewrite a saved adapter with a NaN in fc1.weight: same names, shapes and metadata (the
    header check passes), broken values (only loading the tensors shows it)."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(adapter_path)
    tensors["fc1.weight"][0, 0] = np.nan
    save_file(tensors, adapter_path)
    return adapter_path
