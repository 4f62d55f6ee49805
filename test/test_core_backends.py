import numpy as np
import pytest

from clip_perception.core.backends import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, create_image_encoder
from clip_perception.core.preprocess import Preprocessor

from conftest import natural_like_image


def frames_batch(clip, n=3):
    frames = [natural_like_image(480, 640, seed=i) for i in range(n)]
    return Preprocessor(clip.preprocess)(frames)


def assert_backends_agree(clip, cache_dir):
    batch = frames_batch(clip)
    ref = create_image_encoder(clip, "torch").encode_images(batch)
    ort = create_image_encoder(clip, "onnxruntime", cache_dir=cache_dir)
    out = ort.encode_images(batch)
    assert out.shape == ref.shape == (3, clip.embed_dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert (out * ref).sum(axis=1).min() >= 0.9999
    # The dynamic batch axis really is dynamic: batch 1 and 4 run on the same session.
    assert ort.encode_images(batch[:1]).shape == (1, clip.embed_dim)
    assert ort.encode_images(np.concatenate([batch, batch[:1]])).shape == (4, clip.embed_dim)
    return ort


def test_onnxruntime_agrees_with_torch_on_tiny_model(tiny_clip, tmp_path):
    ort = assert_backends_agree(tiny_clip, tmp_path)
    import onnx

    graph = onnx.load(str(ort.onnx_path)).graph
    assert [i.name for i in graph.input] == [ONNX_INPUT_NAME]
    assert [o.name for o in graph.output] == [ONNX_OUTPUT_NAME]


def test_onnxruntime_agrees_with_torch_on_random_vit_b_32(vit_b_32_clip, tmp_path):
    assert_backends_agree(vit_b_32_clip, tmp_path)


def test_export_is_cached_per_weights_hash(tiny_clip, tmp_path):
    first = create_image_encoder(tiny_clip, "onnxruntime", cache_dir=tmp_path)
    mtime = first.onnx_path.stat().st_mtime_ns
    second = create_image_encoder(tiny_clip, "onnxruntime", cache_dir=tmp_path)
    assert second.onnx_path == first.onnx_path
    assert second.onnx_path.stat().st_mtime_ns == mtime
    assert tiny_clip.weights_hash[:16] in str(first.onnx_path)


def test_bad_batch_shape_is_rejected(tiny_clip):
    with pytest.raises(ValueError, match=r"expected a \(N, 3, 64, 64\) batch"):
        create_image_encoder(tiny_clip, "torch").encode_images(np.zeros((1, 3, 32, 32), np.float32))


def test_unknown_backend_is_rejected(tiny_clip):
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        create_image_encoder(tiny_clip, "tpu")


def test_export_file_is_keyed_and_recorded(tiny_clip, tmp_path):
    import dataclasses

    import torch

    from clip_perception.core.backends import onnx_export
    from clip_perception.core.backends.engine_cache import read_record

    path = create_image_encoder(tiny_clip, "onnxruntime", cache_dir=tmp_path).onnx_path
    key = onnx_export.image_export_key(tiny_clip)
    assert read_record(path)["key"] == key.to_dict()
    assert key.library == f"torch {torch.__version__}"
    assert ("opset", onnx_export.DEFAULT_OPSET) in key.options
    other = dataclasses.replace(key, options=key.options + (("opset_extra", 1),))
    assert other.filename(".onnx") != path.name  # another exporter option: another file


def test_export_that_disagrees_with_torch_is_exported_again_once(tiny_clip, tmp_path, caplog):
    """A stale/broken ONNX file with a valid record is not trusted: it is checked against the
    torch reference, exported again once, and the fresh export serves."""
    from clip_perception.core.backends.onnx_export import ensure_image_onnx
    from clip_perception.core.backends.verify import TorchReference
    from clip_perception.core.model import load_clip
    from clip_perception.core.tiny_model import write_tiny_model

    other = load_clip(write_tiny_model(tmp_path / "other", seed=7))
    wrong = ensure_image_onnx(other, tmp_path / "o")
    target = ensure_image_onnx(tiny_clip, tmp_path / "c")
    target.write_bytes(wrong.read_bytes())  # record still matches; content is another model's
    with caplog.at_level("WARNING"):
        enc = create_image_encoder(tiny_clip, "onnxruntime", cache_dir=tmp_path / "c",
                                   reference=TorchReference(tiny_clip))
    assert "exporting it again once" in caplog.text
    assert TorchReference(tiny_clip).verify(enc).ok


def test_export_refused_twice_is_refused_with_the_reason(tiny_clip, tmp_path, monkeypatch):
    from clip_perception.core.backends import BackendUnavailable, onnx_export
    from clip_perception.core.backends.verify import TorchReference
    from clip_perception.core.model import load_clip
    from clip_perception.core.tiny_model import write_tiny_model

    other = load_clip(write_tiny_model(tmp_path / "other", seed=7))
    real = onnx_export.export_image_tower
    monkeypatch.setattr(onnx_export, "export_image_tower", lambda clip, p: real(other, p))
    exports = []
    real_ensure = onnx_export.ensure_image_onnx
    monkeypatch.setattr(onnx_export, "ensure_image_onnx",
                        lambda *a, **kw: exports.append(kw) or real_ensure(*a, **kw))
    with pytest.raises(BackendUnavailable, match=r"refused: .*min cosine to reference"):
        create_image_encoder(tiny_clip, "onnxruntime", cache_dir=tmp_path / "c",
                             reference=TorchReference(tiny_clip))
    assert [kw.get("force_rebuild", False) for kw in exports] == [False, True]
    enc = create_image_encoder(tiny_clip, "auto", cache_dir=tmp_path / "c")
    assert enc.name == "torch"  # auto records the refusals and falls through
    assert any(a.outcome == "refused" for a in enc.selection.attempts)


def test_torch_backend_runs_on_the_requested_threads(tiny_clip):
    """encoder_threads reaches the torch backend (it used to be ignored): torch's pool is
    process-wide, so the test restores it."""
    import torch

    before = torch.get_num_threads()
    try:
        enc = create_image_encoder(tiny_clip, "torch", "fp32", threads=1)
        assert enc.threads == 1 and torch.get_num_threads() == 1
        from clip_perception.core.pipeline.preparation import prepare_ahead
        from clip_perception.core.devices import cpu_count

        ahead, why = prepare_ahead(enc)
        assert ahead == (cpu_count() > 1), why
    finally:
        torch.set_num_threads(before)
