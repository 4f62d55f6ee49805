import numpy as np
import pytest

from clip_perception.core.adapter import (AdapterError, load_adapter, metadata_path,
                                          read_adapter_header, save_adapter)
from clip_perception.core.scoring import zero_shot_logits
from clip_perception.core.embeddings import l2_normalize

LABELS = ["cup", "apple", "door"]


def identity_head(class_emb, hidden=8, scale=100.0):
    d = class_emb.shape[1]
    return {"fc1.weight": np.random.default_rng(0).normal(size=(hidden, d)),
            "fc1.bias": np.zeros(hidden), "fc2.weight": np.zeros((d, hidden)),
            "fc2.bias": np.zeros(d), "classifier.weight": class_emb,
            "classifier.bias": np.zeros(len(class_emb)), "logit_scale": np.array(scale)}


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(1)
    classes = l2_normalize(rng.normal(size=(3, 16)))
    meta = {"labels": LABELS, "weights_hash": "abc123", "model_identifier": "local-dir:/m",
            "blend": 0.7}
    path = save_adapter(tmp_path / "head.safetensors", identity_head(classes), meta)
    return path, classes


def test_untrained_head_reproduces_zero_shot(saved):
    path, classes = saved
    head = load_adapter(path)
    images = l2_normalize(np.random.default_rng(2).normal(size=(4, 16)))
    zs = zero_shot_logits(images, classes, 100.0)
    np.testing.assert_allclose(head.head_logits(images), zs, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(head.blended_logits(images, zs, head.default_blend), zs,
                               rtol=1e-5, atol=1e-4)
    assert metadata_path(path).is_file()


def test_reordered_follows_the_given_label_order(saved):
    head = load_adapter(saved[0])
    images = l2_normalize(np.random.default_rng(3).normal(size=(2, 16)))
    swapped = head.reordered(["door", "cup", "apple"])
    np.testing.assert_allclose(swapped.head_logits(images), head.head_logits(images)[:, [2, 0, 1]],
                               rtol=1e-6)
    with pytest.raises(AdapterError, match="trained for labels"):
        head.reordered(["cup", "apple", "pear"])


def test_other_model_is_refused_with_reason(saved):
    head = load_adapter(saved[0])
    head.check_compatible("abc123", 16)
    with pytest.raises(AdapterError, match="trained on model 'local-dir:/m'"):
        head.check_compatible("ffff", 16, "ViT-B-32/openai")
    with pytest.raises(AdapterError, match="expects 16-d embeddings"):
        head.check_compatible("abc123", 512)


@pytest.mark.parametrize("read", [load_adapter, read_adapter_header])
def test_missing_or_broken_files_are_clear_errors(tmp_path, saved, read):
    with pytest.raises(AdapterError, match="not found"):
        read(tmp_path / "nothing.safetensors")
    metadata_path(saved[0]).unlink()
    with pytest.raises(AdapterError, match="metadata not found"):
        read(saved[0])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    metadata_path(broken).write_text('{"format": "clip_perception.adapter/1", "labels": []}')
    with pytest.raises(AdapterError, match="cannot read adapter"):
        read(broken)


def test_header_gives_labels_and_shapes_of_the_saved_head(saved):
    header = read_adapter_header(saved[0])
    assert header.labels == tuple(LABELS) and header.embed_dim == 16
    assert header.shapes["fc1.weight"] == (8, 16) and header.shapes["classifier.weight"] == (3, 16)
    assert header.shapes == load_adapter(saved[0]).header.shapes
