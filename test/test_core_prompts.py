import numpy as np
import pytest

from clip_perception.core.prompts import (DEFAULT_TEMPLATES, PromptEmbeddingCache,
                                          parse_label_prompts, prompts_for, validate_templates)
from clip_perception.core.backends.text_torch import TorchTextEncoder

STRAWBERRY = "strawberry=a photo of a red strawberry with green stem, a type of fruit"


def test_label_prompt_override_keeps_commas():
    overrides = parse_label_prompts([STRAWBERRY, "cup=a mug|a coffee cup"])
    assert overrides == {
        "strawberry": ("a photo of a red strawberry with green stem, a type of fruit",),
        "cup": ("a mug", "a coffee cup"),
    }
    assert prompts_for("strawberry", DEFAULT_TEMPLATES, overrides) == overrides["strawberry"]
    assert prompts_for("peach", ("a photo of a {}.",), overrides) == ("a photo of a peach.",)


@pytest.mark.parametrize("bad", ["no_equals_sign", "=prompt only", "label=", "label= | "])
def test_malformed_label_prompts_are_rejected(bad):
    with pytest.raises(ValueError, match="label=prompt"):
        parse_label_prompts([bad])


def test_duplicate_override_is_rejected():
    with pytest.raises(ValueError, match="more than one"):
        parse_label_prompts(["cup=a mug", "cup=a cup"])


@pytest.mark.parametrize("bad", [[], ["a photo"], ["{} and {}"]])
def test_templates_need_one_placeholder(bad):
    with pytest.raises(ValueError):
        validate_templates(bad)


def test_trimmed_context_matches_full_context(tiny_clip):
    encoder = TorchTextEncoder(tiny_clip)
    assert encoder.trim_context
    prompts = ["a cat", "a photo of a very large and rather muddy off-road vehicle at dusk.",
               "a red door"]
    trimmed = encoder.encode(prompts)
    full = encoder.encode(prompts, trim=False)
    assert trimmed.shape == (3, tiny_clip.embed_dim)
    np.testing.assert_allclose(trimmed, full, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(trimmed, axis=1), 1.0, atol=1e-5)


def test_trimmed_context_matches_full_context_on_vit_b_32(vit_b_32_clip):
    encoder = TorchTextEncoder(vit_b_32_clip)
    prompts = [t.format(label) for t in DEFAULT_TEMPLATES for label in ("cup", "stop sign")]
    np.testing.assert_allclose(encoder.encode(prompts), encoder.encode(prompts, trim=False),
                               atol=1e-5)


def test_ensemble_matches_open_clip_zero_shot_classifier(tiny_clip):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    labels = ["cup", "apple", "stop sign"]
    templates = ("a photo of a {}.", "a drawing of a {}.", "a {} in the wild.")
    ours = PromptEmbeddingCache(TorchTextEncoder(tiny_clip).encode).ensemble(labels, templates)
    ref = build_zero_shot_classifier(
        tiny_clip.model, tokenizer=tiny_clip.tokenizer, classnames=labels,
        templates=[lambda c, t=t: t.format(c) for t in templates], num_classes_per_batch=None,
        device="cpu", use_tqdm=False)
    np.testing.assert_allclose(ours, ref.numpy().T, atol=1e-5)


def test_cache_encodes_only_the_changed_labels_prompts(tiny_clip):
    cache = PromptEmbeddingCache(TorchTextEncoder(tiny_clip).encode)
    templates = ("a photo of a {}.", "a {}.")
    first = cache.ensemble(["cup", "apple"], templates)
    assert cache.encoded_count == 4
    second = cache.ensemble(["cup", "pear"], templates)
    assert cache.encoded_count == 6  # only pear's two prompts were new
    np.testing.assert_allclose(first[0], second[0])
    overrides = parse_label_prompts(["pear=a ripe pear"])
    cache.ensemble(["cup", "pear"], templates, overrides)
    assert cache.encoded_count == 7
