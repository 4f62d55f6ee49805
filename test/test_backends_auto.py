"""Backend choice: auto order, logged and recorded skips, explicit requests that cannot be met."""
import logging

import numpy as np
import pytest

from clip_perception.core.backends import (BackendUnavailable, SwappingImageEncoder,
                                           create_image_encoder, encoder_diagnostics)
from clip_perception.core.backends import int8
from clip_perception.core.backends.base import MissingCapability
from clip_perception.core.backends import onnxruntime_backend as ortb
from clip_perception.core.backends import openvino_backend as ovb
from clip_perception.core.backends import tensorrt_backend as trtb
from clip_perception.core.backends.engine_cache import CachedArtifact
from clip_perception.core.backends.torch_backend import TorchImageEncoder
from clip_perception.core.backends.verify import TorchReference


@pytest.fixture(scope="module")
def clip(tiny_clip):
    return tiny_clip  # the session's tiny local-dir model (conftest.py)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache_auto")


@pytest.fixture(scope="module")
def reference(clip):
    return TorchReference(clip)


def outcomes(enc):
    return [(a.backend, a.precision, a.outcome) for a in enc.selection.attempts]


def test_auto_on_cpu_picks_openvino_and_logs_the_tensorrt_skip(clip, cache, caplog):
    """The chain: tensorrt -> openvino -> onnxruntime -> torch."""
    with caplog.at_level(logging.INFO, logger="clip_perception.core.backends"):
        enc = create_image_encoder(clip, backend="auto", device="cpu", cache_dir=cache)
    assert enc.name == "openvino" and enc.precision == "fp32" and enc.device == "cpu"
    assert outcomes(enc) == [("tensorrt", "fp32", "skipped"), ("openvino", "fp32", "chosen")]
    assert "needs device 'cuda'" in enc.selection.skipped[0].reason
    assert "tensorrt fp32 on cpu: skipped" in caplog.text
    assert "openvino fp32 on cpu: chosen" in caplog.text
    assert enc.describe() == "openvino (fp32, cpu)"
    diag = encoder_diagnostics(enc)
    assert diag["backend requested"] == "auto (fp32, cpu)"
    assert diag["image backend threads"] == str(enc.threads)
    assert "needs device 'cuda'" in diag["skipped 1"] and "engine build" not in diag
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    ref = TorchImageEncoder(clip).encode_images(x)
    assert (enc.encode_images(x) * ref).sum(1).min() > 0.9999


@pytest.mark.skipif(trtb.tensorrt_available()[0], reason="TensorRT is usable here")
def test_auto_on_cuda_without_gpu_says_why_tensorrt_and_cuda_ep_were_skipped(clip, cache):
    enc = create_image_encoder(clip, backend="auto", device="cuda", cache_dir=cache)
    first = enc.selection.attempts[0]
    assert (first.backend, first.outcome) == ("tensorrt", "skipped")
    assert "TensorRT" in first.reason or "CUDA" in first.reason
    if not ortb.cuda_provider_available():
        assert any("CUDAExecutionProvider" in a.reason for a in enc.selection.skipped)
    assert enc.name == "openvino" and enc.device == "cpu"


def test_auto_falls_back_to_torch_when_onnxruntime_and_openvino_are_missing(clip, cache,
                                                                            monkeypatch):
    def missing(name):
        def fail():
            raise MissingCapability(f"{name} is not importable (No module named '{name}')",
                                    f"the {name} library")
        return fail

    monkeypatch.setattr(ortb, "import_onnxruntime", missing("onnxruntime"))
    monkeypatch.setattr(ovb, "import_openvino", missing("openvino"))
    enc = create_image_encoder(clip, backend="auto", cache_dir=cache)
    assert enc.name == "torch"
    assert outcomes(enc)[1:] == [("openvino", "fp32", "skipped"),
                                 ("onnxruntime", "fp32", "skipped"), ("torch", "fp32", "chosen")]
    assert "No module named 'openvino'" in enc.selection.summary()
    assert not enc.selection.unexplained
    with pytest.raises(BackendUnavailable, match="openvino is not importable"):
        create_image_encoder(clip, backend="openvino", cache_dir=cache)


def test_auto_int8_refused_falls_back_to_fp32_with_reason(clip, cache, monkeypatch, caplog):
    real = int8.load_or_quantize_int8

    def strict(*a, **kw):
        kw["min_cosine"] = 1.01  # no model can pass: forces the refusal path
        return real(*a, **kw)

    monkeypatch.setattr(int8, "load_or_quantize_int8", strict)
    with caplog.at_level(logging.WARNING):
        enc = create_image_encoder(clip, backend="auto", precision="int8", cache_dir=cache)
    assert enc.name == "openvino" and enc.precision == "fp32"
    assert outcomes(enc)[1:] == [("onnxruntime", "int8", "refused"),
                                 ("openvino", "fp32", "chosen")]
    assert "< required 1.01" in enc.selection.attempts[1].reason
    assert "onnxruntime int8 on cpu: refused" in caplog.text


def test_auto_fp16_on_cpu_says_no_cpu_engine_has_fp16(clip, cache):
    enc = create_image_encoder(clip, backend="auto", precision="fp16", cache_dir=cache)
    assert enc.precision == "fp32"
    assert ("openvino/onnxruntime", "fp16", "skipped") in outcomes(enc)


def fake_tensorrt(monkeypatch) -> list:
    """TensorRT 'available', engines 'built' as torch encoders; returns the build log."""
    built = []

    def fake_engine(clip_, precision, max_batch, cache_dir, reference_, device):
        built.append((precision, max_batch, device))
        enc = TorchImageEncoder(clip_)
        enc.name, enc.precision = "tensorrt", precision
        return CachedArtifact(enc, cache_dir, None, True, None)

    monkeypatch.setattr(trtb, "preflight", lambda *a, **kw: "fake trt")
    monkeypatch.setattr(trtb, "load_or_build_engine", fake_engine)
    return built


def test_auto_with_tensorrt_usable_serves_onnxruntime_then_swaps(clip, cache, monkeypatch,
                                                                 reference):
    built = fake_tensorrt(monkeypatch)
    enc = create_image_encoder(clip, backend="auto", precision="int8", device="cuda:1",
                               cache_dir=cache, max_batch=4, reference=reference)
    assert isinstance(enc, SwappingImageEncoder)
    assert enc.wait(30) == "ready" and enc.name == "tensorrt" and built == [("fp16", 4, "cuda:1")]
    assert enc.selection.attempts[-1].device == "cuda:1"
    assert [a.outcome for a in enc.selection.attempts][-2:] == ["serving until swap", "building"]
    enc.close()


def test_auto_with_tensorrt_refused_keeps_serving_and_reports(clip, cache, monkeypatch,
                                                              reference):
    def refused(*a, **kw):
        raise BackendUnavailable("tensorrt fp16 artifact refused: min cosine 0.95 < 0.999")

    monkeypatch.setattr(trtb, "preflight", lambda *a, **kw: "fake trt")
    monkeypatch.setattr(trtb, "load_or_build_engine", refused)
    enc = create_image_encoder(clip, backend="auto", precision="fp16", device="cuda",
                               cache_dir=cache, reference=reference)
    assert enc.wait(30) == "refused" and "0.95" in enc.status().reason
    assert enc.name == "openvino"
    diag = encoder_diagnostics(enc)
    assert diag["engine build"].startswith("refused: ") and "0.95" in diag["engine build"]
    assert "tensorrt (fp16, cuda) refused" in diag["image backend"]
    enc.close()


@pytest.mark.parametrize("backend,precision,device,match", [
    ("torch", "int8", "cpu", "precision 'int8' is not supported by the torch backend"),
    ("torch", "fp32", "cuda", "runs where the model was loaded"),
    ("torch", "fp32", "cuda:1", "runs where the model was loaded"),
    ("tensorrt", "fp16", "cpu", "needs device 'cuda' or 'cuda:N', got 'cpu'"),
    ("onnxruntime", "fp16", "cpu", "precision 'fp16' is not supported by the onnxruntime"),
    ("openvino", "int8", "cpu", "precision 'int8' is not supported by the openvino backend"),
    ("openvino", "fp32", "cuda", "backend 'openvino' runs on device 'cpu' here, got 'cuda'"),
])
def test_explicit_requests_that_cannot_be_met_raise(clip, cache, backend, precision, device,
                                                    match):
    with pytest.raises(BackendUnavailable, match=match):
        create_image_encoder(clip, backend=backend, precision=precision, device=device,
                             cache_dir=cache)


@pytest.mark.parametrize("kwargs,match", [
    (dict(backend="openvino2"), "unknown backend 'openvino2'"),
    (dict(precision="bf15"), "unknown precision 'bf15'"),
    (dict(device="gpu"), "unknown device 'gpu'; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    (dict(device="cuda:x"), "unknown device 'cuda:x'"),
    (dict(max_batch=0), "max_batch must be an integer >= 1"),
])
def test_bad_arguments_say_what_was_expected(clip, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_image_encoder(clip, **kwargs)


def test_explicit_torch_records_its_selection(clip):
    enc = create_image_encoder(clip, backend="torch")
    assert outcomes(enc) == [("torch", "fp32", "chosen")]
    assert enc.describe() == "torch (fp32, cpu)"


# ---- precision "auto": measured choice (test_backends_precision_choice.py has the details) ----
def test_auto_precision_on_cpu_serves_a_verified_timed_candidate(clip, cache, reference):
    enc = create_image_encoder(clip, backend="auto", precision="auto", cache_dir=cache,
                               reference=reference)
    chosen = [a for a in enc.selection.attempts if a.outcome == "chosen"]
    assert len(chosen) == 1 and (enc.name, enc.precision) == (chosen[0].backend,
                                                              chosen[0].precision)
    assert "img/s at batch 1" in chosen[0].reason or "re-verified now" in chosen[0].reason
    assert not enc.selection.unexplained, enc.selection.summary()
    # every candidate this CPU can run is accounted for: timed (chosen / slower) or refused
    int8_outcome = [o for b, p, o in outcomes(enc) if (b, p) == ("onnxruntime", "int8")]
    assert int8_outcome and int8_outcome[0] in ("chosen", "slower", "refused"), outcomes(enc)
    assert reference.verify(enc).ok


def test_auto_precision_serves_another_verified_engine_when_int8_is_refused(
        clip, monkeypatch, reference, tmp_path):
    real = int8.load_or_quantize_int8
    monkeypatch.setattr(int8, "load_or_quantize_int8",
                        lambda *a, **kw: real(*a, **{**kw, "min_cosine": 1.01}))
    for backend in ("auto", "onnxruntime"):
        # its own cache: a decision cached by another test would skip building int8 at all
        enc = create_image_encoder(clip, backend=backend, precision="auto",
                                   cache_dir=tmp_path / backend, reference=reference)
        assert ("onnxruntime", "int8", "refused") in outcomes(enc)
        # the fastest of the others serves: a timing here, so with backend auto it may be
        # openvino bf16 (CPUs with AMX or AVX-512 BF16) or an fp32 engine; onnxruntime has
        # only fp32 left
        chosen = [(b, p) for b, p, o in outcomes(enc) if o == "chosen"]
        assert chosen == [(enc.name, enc.precision)] and enc.precision != "int8", outcomes(enc)
        if backend == "onnxruntime":
            assert enc.precision == "fp32"


def test_auto_precision_is_fp16_on_tensorrt(clip, cache, monkeypatch, reference):
    built = fake_tensorrt(monkeypatch)
    enc = create_image_encoder(clip, backend="auto", precision="auto", device="cuda",
                               cache_dir=cache, reference=reference)
    assert enc.wait(30) == "ready" and [b[0] for b in built] == ["fp16"]
    assert not [a for a in enc.selection.attempts if a.outcome == "skipped"
                and a.backend == "tensorrt"]
    enc.close()


def test_auto_precision_on_torch_is_fp32(clip, cache):
    enc = create_image_encoder(clip, backend="torch", precision="auto", cache_dir=cache)
    assert (enc.name, enc.precision) == ("torch", "fp32")


def test_device_auto_is_cuda_only_where_torch_sees_a_gpu(monkeypatch):
    import torch

    from clip_perception.core.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="expected 'auto', 'cpu'"):
        resolve_device("gpu")


def test_device_auto_on_this_machine_reaches_the_cpu_engines(clip, cache):
    import torch

    enc = create_image_encoder(clip, backend="auto", device="auto", cache_dir=cache)
    assert enc.selection.device == ("cuda" if torch.cuda.is_available() else "cpu")
