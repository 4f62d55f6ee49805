"""core.vocabulary without ROS: spec validation, label sets, adapters, background swaps."""
import threading
import time

import numpy as np
import pytest

from clip_perception.core.adapter import save_adapter
from clip_perception.core.prompts import PromptEmbeddingCache
from clip_perception.core.scoring import UNKNOWN_LABEL
from clip_perception.core.vocabulary import (ADAPTER_BLEND_FROM_FILE, LabelSetManager, SpecError,
                                             build_label_set, check_adapter_header,
                                             load_checked_adapter)
from label_sets import DIM, fake_text_encoder, label_set, spec, with_nan_values


# ---- spec validation ------------------------------------------------------------------------
@pytest.mark.parametrize("kw, parameter, fragment", [
    (dict(labels=[]), "labels", "empty"),
    (dict(labels=["cup", "cup"]), "labels", "duplicate"),
    (dict(labels=["cup", " "]), "labels", "blank"),
    (dict(top_k=0), "top_k", ">= 1, got 0"),
    (dict(score_threshold=1.5), "score_threshold", "[0, 1], got 1.5"),
    (dict(score_threshold=-0.1), "score_threshold", "[0, 1]"),
    (dict(label_prompts=["pear=a pear"]), "label_prompts", "['pear'] name no label"),
    (dict(label_prompts=["no separator"]), "label_prompts", "label=prompt"),
    (dict(prompt_templates=["no placeholder"]), "prompt_templates", "exactly once"),
    (dict(prompt_templates=[]), "prompt_templates", "empty"),
    (dict(landmark_templates=["{} and {}"]), "landmark_templates", "exactly once"),
    (dict(landmarks=["door", "door"]), "landmarks", "duplicate"),
    (dict(landmark_smoothing=1.0), "landmark_smoothing", "[0, 1)"),
    (dict(adapter_blend=2.0), "adapter_blend", "got 2.0"),
    (dict(adapter_blend=-0.5), "adapter_blend", "got -0.5"),
])
def test_invalid_spec_names_parameter_and_reason(kw, parameter, fragment):
    with pytest.raises(SpecError) as info:
        spec(**kw)
    assert info.value.parameter == parameter
    assert fragment in str(info.value)


def test_spec_accepts_blend_sentinel_and_empty_landmarks():
    s = spec(adapter_blend=ADAPTER_BLEND_FROM_FILE, landmarks=[])
    assert s.landmarks == () and s.adapter_blend == -1.0


# ---- label sets ------------------------------------------------------------------------------
def test_label_set_scores_with_unknown_and_keeps_landmark_order():
    ls = label_set(spec(landmarks=["a stop sign", "a red door", "a tree"], top_k=2,
                        score_threshold=0.99))
    e = ls.classifier.class_embeddings
    emb = (0.495 * e[0] + 0.505 * e[1])[None]  # between cup and apple, nearer apple
    emb /= np.linalg.norm(emb)
    (cls,) = ls.classify(emb)
    # the best probability is under 0.99: 'unknown' first, then the top-2 with apple best
    assert [h.label for h in cls.hypotheses] == [UNKNOWN_LABEL, "apple", "cup"]
    cos = ls.landmark_cosines(emb)
    assert cos.shape == (1, 3)
    assert ls.landmarks == ("a stop sign", "a red door", "a tree")


def test_label_prompt_override_changes_only_that_label():
    cache = PromptEmbeddingCache(fake_text_encoder()[0])
    a = label_set(spec(), cache=cache)
    b = label_set(spec(label_prompts=["apple=a red apple on a table|an apple"]), cache=cache)
    np.testing.assert_array_equal(a.classifier.class_embeddings[0],
                                  b.classifier.class_embeddings[0])
    assert not np.allclose(a.classifier.class_embeddings[1], b.classifier.class_embeddings[1])


def test_rebuild_encodes_only_new_prompts():
    encode, calls = fake_text_encoder()
    cache = PromptEmbeddingCache(encode)
    label_set(spec(), cache=cache)
    label_set(spec(labels=["cup", "apple", "pear"], top_k=3), cache=cache)
    assert calls == [["a photo of a cup.", "a photo of a apple."], ["a photo of a pear."]]


def _adapter(tmp_path, labels, weights_hash="h" * 64, dim=DIM, blend=0.5, bias=None):
    rng = np.random.default_rng(0)
    tensors = {"fc1.weight": rng.normal(size=(4, dim)), "fc1.bias": np.zeros(4),
               "fc2.weight": np.zeros((dim, 4)), "fc2.bias": np.zeros(dim),
               "classifier.weight": rng.normal(size=(len(labels), dim)),
               "classifier.bias": np.asarray(bias if bias is not None else np.zeros(len(labels))),
               "logit_scale": np.asarray([10.0])}
    return str(save_adapter(tmp_path / "head.safetensors", tensors,
                            {"labels": list(labels), "weights_hash": weights_hash,
                             "model_identifier": "tiny", "blend": blend}))


@pytest.mark.parametrize("check", [load_checked_adapter, check_adapter_header])
def test_adapter_checked_against_model_and_labels(tmp_path, check):
    """The header check (parameter callback) and the full load (background build) refuse the
    same mismatches with the same reasons."""
    path = _adapter(tmp_path, ["cup", "apple"])
    head = check(path, ["apple", "cup"], lambda: "h" * 64, DIM, "tiny")
    assert head.embed_dim == DIM
    if check is load_checked_adapter:
        assert head.labels == ("apple", "cup")  # reordered to the node's label order
    with pytest.raises(SpecError, match="trained on model 'tiny'"):
        check(path, ["cup", "apple"], lambda: "x" * 64, DIM, "other")
    with pytest.raises(SpecError, match="expects 8-d embeddings, the model gives 16-d"):
        check(path, ["cup", "apple"], lambda: "h" * 64, 16, "other")
    with pytest.raises(SpecError, match=r"trained for labels \['cup', 'apple'\]"):
        check(path, ["cup", "pear"], lambda: "h" * 64, DIM, "tiny")
    with pytest.raises(SpecError, match="not found"):
        check(str(tmp_path / "missing.safetensors"), ["cup"], lambda: "h", DIM, "tiny")


def test_header_check_reads_no_tensor_data_and_only_the_load_sees_bad_values(tmp_path,
                                                                              monkeypatch):
    path = with_nan_values(_adapter(tmp_path, ["cup", "apple"]))

    def no_data(*args, **kwargs):
        raise AssertionError("the header check read the tensor data")
    monkeypatch.setattr("safetensors.numpy.load_file", no_data)
    check_adapter_header(path, ["cup", "apple"], lambda: "h" * 64, DIM, "tiny")
    monkeypatch.undo()
    with pytest.raises(SpecError, match=r"adapter_path: .*non-finite values \(NaN/inf\)"):
        load_checked_adapter(path, ["cup", "apple"], lambda: "h" * 64, DIM, "tiny")


def test_adapter_blend_from_file_and_override_change_probabilities(tmp_path):
    # A head whose bias strongly prefers 'cup' moves probability towards cup in proportion
    # to the blend.
    path = _adapter(tmp_path, ["cup", "apple"], blend=0.5, bias=[20.0, 0.0])
    head = load_checked_adapter(path, ["cup", "apple"], lambda: "h" * 64, DIM, "tiny")
    cache = PromptEmbeddingCache(fake_text_encoder()[0])
    plain = label_set(spec(), cache=cache)
    from_file = label_set(spec(adapter_path=path), cache=cache, adapter=head)
    full = label_set(spec(adapter_path=path, adapter_blend=1.0), cache=cache, adapter=head)
    assert from_file.adapter_blend == 0.5 and full.adapter_blend == 1.0
    emb = plain.classifier.class_embeddings[1:2]  # looks like 'apple' zero-shot
    p0, p_half, p1 = (s.probabilities(emb)[0, 0] for s in (plain, from_file, full))
    assert p0 < p_half < p1
    logits = (0.5 * plain.classifier.logits(emb) + 0.5 * head.head_logits(emb))
    np.testing.assert_allclose(from_file.probabilities(emb),
                               np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)


def test_manager_swaps_in_background_and_never_mixes_sets():
    release = threading.Event()
    cache = PromptEmbeddingCache(fake_text_encoder()[0])

    def slow_build(s, version):
        release.wait(5)
        return build_label_set(s, cache, 100.0, DIM, version)

    manager = LabelSetManager(slow_build, label_set(cache=cache))
    try:
        v = manager.request(spec(labels=["pear", "plum", "fig"], top_k=3))
        assert v == 2
        time.sleep(0.05)
        # still serving the old set while the new one builds
        assert manager.current.version == 1 and manager.busy
        old = manager.current
        release.set()
        assert manager.wait_for(v, timeout=5)
        new = manager.current
        assert new.labels == ("pear", "plum", "fig") and not manager.busy
        # snapshots are immutable: the old reference still has its own labels and embeddings
        assert old.labels == ("cup", "apple") and old.classifier.class_embeddings.shape[0] == 2
    finally:
        release.set()
        manager.close()


def test_manager_keeps_old_set_when_build_fails():
    def failing_build(s, version):
        raise RuntimeError("text tower exploded")

    manager = LabelSetManager(failing_build, label_set())
    try:
        v = manager.request(spec(labels=["pear"]))
        assert not manager.wait_for(v, timeout=5)
        assert manager.current.version == 1
        assert manager.failed_version == v and "text tower exploded" in manager.last_error
    finally:
        manager.close()


def test_adapter_trained_with_other_prompts_is_reported():
    from clip_perception.core.adapter import AdapterHead
    from clip_perception.core.vocabulary import adapter_prompt_differences

    d, hidden = 4, 3
    tensors = {"fc1.weight": np.zeros((hidden, d)), "fc1.bias": np.zeros(hidden),
               "fc2.weight": np.zeros((d, hidden)), "fc2.bias": np.zeros(d),
               "classifier.weight": np.eye(2, d), "classifier.bias": np.zeros(2),
               "logit_scale": np.array(100.0)}
    head = AdapterHead(tensors, {"labels": ["cup", "apple"], "templates": ["a photo of a {}."],
                                 "label_prompts": {"cup": ["a mug"]}})
    assert adapter_prompt_differences(head, spec(label_prompts=["cup=a mug"])) == ""
    assert adapter_prompt_differences(head, spec()) == "prompts of ['cup']"
    assert adapter_prompt_differences(
        head, spec(prompt_templates=["a {}."], label_prompts=["cup=a mug"])) == \
        "prompts of ['apple']"
