"""ONNX Runtime text tower: same embeddings as the trimmed torch encoder, any batch/length."""
import pytest

from clip_perception.core.backends import BackendUnavailable
from clip_perception.core.backends import onnxruntime_backend as ortb
from clip_perception.core.prompts import DEFAULT_TEMPLATES, PromptEmbeddingCache
from clip_perception.core.backends.text_torch import TorchTextEncoder
from clip_perception.core.backends.text_onnx import OnnxRuntimeTextEncoder, text_onnx_path
from clip_perception.core.backends.text_selection import create_text_encoder


@pytest.fixture(scope="module")
def clip(tiny_clip):
    return tiny_clip  # the session's tiny local-dir model (conftest.py)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache_text")


PROMPTS = [
    "a",  # shortest: trimmed length 3 (sot, token, eot)
    "a photo of a cat.",
    "a very long prompt " + "with many repeated words " * 8,  # longer than the export example
    "a red door",
]


@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS[:1], PROMPTS[1:2] * 7])
def test_onnxruntime_text_matches_torch(clip, cache, prompts):
    ort_enc = OnnxRuntimeTextEncoder(clip, cache)
    ref = TorchTextEncoder(clip).encode(prompts)
    got = ort_enc.encode(prompts)
    assert got.shape == ref.shape == (len(prompts), clip.embed_dim)
    assert (got * ref).sum(axis=1).min() > 0.9999
    assert text_onnx_path(clip, cache).is_file()


def test_onnxruntime_text_batches_and_empty_input(clip, cache):
    enc = OnnxRuntimeTextEncoder(clip, cache, batch_size=3)
    prompts = [t.format(label) for label in ("cup", "apple", "chair") for t in DEFAULT_TEMPLATES]
    ref = TorchTextEncoder(clip).encode(prompts)
    assert (enc.encode(prompts) * ref).sum(axis=1).min() > 0.9999
    assert enc.encode([]).shape == (0, clip.embed_dim)


def test_works_behind_the_prompt_cache(clip, cache):
    enc = create_text_encoder(clip, "onnxruntime", cache_dir=cache)
    a = PromptEmbeddingCache(enc.encode).ensemble(["cup", "apple"], DEFAULT_TEMPLATES)
    b = PromptEmbeddingCache(TorchTextEncoder(clip).encode).ensemble(["cup", "apple"],
                                                                      DEFAULT_TEMPLATES)
    assert (a * b).sum(axis=1).min() > 0.9999


def test_auto_prefers_onnxruntime_on_cpu(clip, cache):
    enc = create_text_encoder(clip, "auto", cache_dir=cache)
    assert isinstance(enc, OnnxRuntimeTextEncoder) and enc.selection == []


def test_auto_falls_back_to_torch_with_reason(clip, cache, monkeypatch, caplog):
    def missing():
        raise BackendUnavailable("onnxruntime is not importable (test)")

    monkeypatch.setattr(ortb, "import_onnxruntime", missing)
    enc = create_text_encoder(clip, "auto", cache_dir=cache)
    assert isinstance(enc, TorchTextEncoder)
    assert "not importable" in enc.selection[0] and "using torch" in caplog.text
    with pytest.raises(BackendUnavailable, match="not importable"):
        create_text_encoder(clip, "onnxruntime", cache_dir=cache)


def test_unknown_text_backend(clip):
    with pytest.raises(ValueError, match="unknown text backend 'tensorrt'"):
        create_text_encoder(clip, "tensorrt")


def test_exclamation_marks_are_not_padding(clip, cache):
    """Token id 0 is '!' as well as the padding: trimming must keep up to the end-of-text token,
    or 'stop!!!' loses its last tokens and its pooled end-of-text feature."""
    from clip_perception.core.backends.text_torch import trimmed_length

    prompts = ["stop!!!", "help! help!", "a"]
    tokens = clip.tokenizer(prompts)
    assert int((tokens[0] == 0).sum()) > 77 - 6, "'!' is expected to be token id 0"
    assert trimmed_length(clip.model, tokens) == int(tokens[1].argmax()) + 1
    full = TorchTextEncoder(clip).encode(prompts, trim=False)
    for enc in (TorchTextEncoder(clip), OnnxRuntimeTextEncoder(clip, cache)):
        got = enc.encode(prompts)
        assert (got * full).sum(axis=1).min() > 0.9999, type(enc).__name__
