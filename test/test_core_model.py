import json

import numpy as np

import pytest

from clip_perception.core.model import ModelLoadError, load_clip
from clip_perception.core.tiny_model import write_tiny_model


def test_tiny_model_loads_through_local_dir(tiny_clip, tiny_model_id):
    assert tiny_model_id.startswith("local-dir:")
    assert tiny_clip.embed_dim == 32
    assert tiny_clip.image_size == 64
    assert tiny_clip.preprocess.interpolation == "bicubic"
    assert tiny_clip.identifier == tiny_model_id
    assert not tiny_clip.model.training
    assert tiny_clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)


def test_weights_hash_is_stable_and_tracks_weights(tmp_path, tiny_clip, tiny_model_id):
    again = load_clip(tiny_model_id)
    assert again.weights_hash == tiny_clip.weights_hash
    other = load_clip(write_tiny_model(tmp_path / "other", seed=1))
    assert other.weights_hash != tiny_clip.weights_hash


def test_unknown_model_lists_valid_names():
    with pytest.raises(ModelLoadError, match="unknown model 'ViT-Q-99'.*ViT-B-32"):
        load_clip("ViT-Q-99", "openai")


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ModelLoadError, match="unknown pretrained tag 'nope'.*openai"):
        load_clip("ViT-B-32", "nope")


def test_builtin_model_without_pretrained_is_refused():
    with pytest.raises(ModelLoadError, match="needs 'pretrained'"):
        load_clip("ViT-B-32", "")


def test_missing_checkpoint_file_names_the_path(tmp_path):
    missing = tmp_path / "weights.safetensors"
    with pytest.raises(ModelLoadError, match=str(missing)):
        load_clip("ViT-B-32", str(missing))


def test_missing_local_dir_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        load_clip(f"local-dir:{tmp_path / 'nowhere'}")


def test_local_dir_without_weights_is_refused(tmp_path, tiny_model_id):
    folder = tmp_path / "no_weights"
    folder.mkdir()
    src = tiny_model_id.split(":", 1)[1]
    (folder / "open_clip_config.json").write_text(
        json.dumps(json.loads(open(f"{src}/open_clip_config.json").read())))
    with pytest.raises(ModelLoadError, match="no weights file"):
        load_clip(f"local-dir:{folder}")


def test_builtin_name_with_checkpoint_path_loads(tmp_path, tiny_model_id):
    """The `pretrained=<file>` path: a ViT config name plus a local checkpoint file."""
    import open_clip
    import torch

    # A checkpoint in open_clip's format for a built-in config loads through `pretrained`.
    model = open_clip.create_model("RN50", pretrained=None)
    path = tmp_path / "rn50.pt"
    torch.save(model.state_dict(), path)
    clip = load_clip("RN50", str(path))
    assert clip.embed_dim == 1024
    assert clip.identifier == f"RN50/{path}"


def test_pretrained_with_schema_is_refused(tiny_model_id):
    with pytest.raises(ModelLoadError, match="must be empty"):
        load_clip(tiny_model_id, "openai")


def test_real_tag_without_network_fails_with_the_offline_hint(tmp_path):
    """The real loading path for `ViT-B-32`/`openai`, offline and with an empty hub cache."""
    import os
    import subprocess
    import sys

    code = ("from clip_perception.core.model import load_clip, ModelLoadError\n"
            "try:\n    load_clip('ViT-B-32', 'openai')\n"
            "except ModelLoadError as exc:\n    print('ERROR', exc)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120).stdout
    assert "ERROR could not load model 'ViT-B-32'" in out
    assert "local-dir:" in out and "~/.cache/huggingface" in out


def test_outlier_stress_model_computes_the_same_function(tmp_path, vit_b_32_clip,
                                                         outlier_vit_b_32_clip):
    """Same seed as the plain random ViT-B-32: the rescaling must leave embeddings unchanged,
    while the LayerNorm outputs that feed the MatMuls now carry ~40x outlier channels."""
    import torch

    from clip_perception.core.tiny_model import OUTLIER_CHANNELS

    plain, stress = vit_b_32_clip, outlier_vit_b_32_clip
    assert plain.weights_hash != stress.weights_hash
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype("f4"))
    seen = {}

    def record(_module, _inputs, output):  # returns None: the output is not replaced
        seen["ln_2"] = output.detach().abs().amax(dim=(0, 1))

    hook = stress.model.visual.transformer.resblocks[3].ln_2.register_forward_hook(record)
    with torch.no_grad():
        a = torch.nn.functional.normalize(plain.model.encode_image(x), dim=-1)
        b = torch.nn.functional.normalize(stress.model.encode_image(x), dim=-1)
    hook.remove()
    assert float((a * b).sum(dim=1).min()) > 0.99999
    ranges = seen["ln_2"]
    mask = torch.ones_like(ranges, dtype=torch.bool)
    mask[list(OUTLIER_CHANNELS)] = False
    assert float(ranges[list(OUTLIER_CHANNELS)].min()) > 10 * float(ranges[mask].median())


def test_outlier_channels_out_of_range_are_refused(tiny_clip):
    from clip_perception.core.tiny_model import add_activation_outliers

    with pytest.raises(ValueError, match="out of range for width 64"):
        add_activation_outliers(tiny_clip.model, channels=(131,))


def _folder_with(tmp_path, tiny_model_id, name, state):
    import torch

    src = tiny_model_id.split(":", 1)[1]
    folder = tmp_path / name
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(open(f"{src}/open_clip_config.json").read())
    torch.save(state, folder / "weights.pt")
    return folder


def test_local_dir_with_a_pt_file_loads_those_weights(tmp_path, tiny_clip, tiny_model_id):
    """open_clip ignores *.pt in a folder (random weights); the package loads it itself."""
    folder = _folder_with(tmp_path, tiny_model_id, "pt_only", tiny_clip.model.state_dict())
    clip = load_clip(f"local-dir:{folder}")
    assert clip.weights_hash == tiny_clip.weights_hash


def test_local_dir_weights_missing_a_parameter_are_refused(tmp_path, tiny_clip, tiny_model_id):
    state = dict(tiny_clip.model.state_dict())
    del state["visual.proj"]
    folder = _folder_with(tmp_path, tiny_model_id, "partial", state)
    with pytest.raises(ModelLoadError, match=r"weights\.pt could not be loaded.*visual\.proj"):
        load_clip(f"local-dir:{folder}")


def test_local_dir_with_several_unnamed_weights_is_refused(tmp_path, tiny_clip, tiny_model_id):
    import torch

    folder = _folder_with(tmp_path, tiny_model_id, "two", tiny_clip.model.state_dict())
    torch.save(tiny_clip.model.state_dict(), folder / "other.pth")
    with pytest.raises(ModelLoadError, match="several weights files"):
        load_clip(f"local-dir:{folder}")


def test_default_weights_are_published_open_clip_tags_for_their_architecture():
    """The default of an unset ``pretrained`` (and 'openai', one parameter away) is a tag
    open_clip knows for that architecture, loaded with its own activation (no download here:
    only open_clip's table of pretrained weights is read)."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    from clip_perception.core.model import DEFAULT_PRETRAINED_BY_MODEL, default_pretrained

    known = set(open_clip.list_pretrained())
    for model, tag in DEFAULT_PRETRAINED_BY_MODEL.items():
        assert default_pretrained(model, "") == default_pretrained(model, None) == tag
        assert (model, tag) in known and (model, "openai") in known, model
        assert get_pretrained_cfg(model, tag)["hf_hub"], (model, tag)  # where it downloads from
    assert default_pretrained("ViT-B-32", "openai") == "openai"
    assert get_pretrained_cfg("ViT-B-32", "openai")["quick_gelu"] is True
