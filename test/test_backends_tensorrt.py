"""TensorRT: engine flow with a fake builder/loader (runs here), real engines (skip without GPU)."""
import dataclasses
import logging

import numpy as np
import pytest

from clip_perception.cli import build_engine as build_engine_cli
from clip_perception.core.backends import BackendUnavailable, create_image_encoder
from clip_perception.core.backends import engines
from clip_perception.core.backends import tensorrt_backend as trtb
from clip_perception.core.backends.engine_cache import ArtifactKey, ArtifactRefused
from clip_perception.core.backends.torch_backend import TorchImageEncoder
from clip_perception.core.backends.verify import TorchReference
from clip_perception.core.model import load_clip
from clip_perception.core.tiny_model import write_tiny_model

TRT_OK, TRT_WHY = trtb.tensorrt_available("fp16")
needs_trt = pytest.mark.skipif(not TRT_OK, reason=f"needs TensorRT + CUDA: {TRT_WHY}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(write_tiny_model(tmp_path_factory.mktemp("tiny_trt")))


def fake_key(clip, device="Fake GPU sm_87"):
    return ArtifactKey(kind="tensorrt", model=clip.identifier, weights_hash=clip.weights_hash,
                       precision="fp16", input_shape=(3, clip.image_size, clip.image_size),
                       batch_profile=(1, 1, 8), library="tensorrt 10.fake", device=device)


class FakeEngine(TorchImageEncoder):
    """Stands in for a deserialised engine: torch output plus a chosen error."""

    name = "tensorrt"

    def __init__(self, clip, noise=0.0):
        super().__init__(clip)
        self.precision, self.noise = "fp16", noise

    def encode_images(self, batch):
        out = super().encode_images(batch)
        return out + self.noise * np.random.default_rng(0).standard_normal(out.shape).astype(
            np.float32)


def test_engine_flow_builds_once_then_loads_and_verifies(clip, tmp_path):
    builds, loads = [], []

    def build(path):
        builds.append(path)
        path.write_bytes(b"serialized engine")

    def load(path):
        loads.append(path)
        return FakeEngine(clip, noise=1e-4)

    ref = TorchReference(clip)
    kw = dict(cache_dir=tmp_path, reference=ref, key=fake_key(clip), build=build, load=load,
              onnx_path="unused.onnx")
    first = trtb.load_or_build_engine(clip, "fp16", 8, **kw)
    second = trtb.load_or_build_engine(clip, "fp16", 8, **kw)
    assert first.built and not second.built and len(builds) == 1 and len(loads) == 2
    assert first.verification.ok and first.verification.min_cosine > 0.999
    assert second.path == first.path and first.path.parent.name == "engines"
    assert first.path.is_relative_to(tmp_path)
    # a different GPU is a different key: rebuilt
    third = trtb.load_or_build_engine(clip, "fp16", 8, **{**kw, "key": fake_key(clip, "Other")})
    assert third.built and len(builds) == 2


def test_engine_below_threshold_is_refused(clip, tmp_path, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(ArtifactRefused, match="refused") as info:
        trtb.load_or_build_engine(
            clip, "fp16", 8, cache_dir=tmp_path, key=fake_key(clip),
            build=lambda p: p.write_bytes(b"e"), load=lambda p: FakeEngine(clip, noise=0.05),
            onnx_path="unused.onnx")
    assert info.value.verification.min_cosine < 0.999
    assert "refused" in caplog.text


def test_corrupt_engine_is_rebuilt(clip, tmp_path, caplog):
    def load(path):
        if path.read_bytes() != b"good":
            raise RuntimeError("TensorRT could not deserialize")
        return FakeEngine(clip)

    kw = dict(cache_dir=tmp_path, key=fake_key(clip), build=lambda p: p.write_bytes(b"good"),
              load=load, onnx_path="unused.onnx")
    path = trtb.load_or_build_engine(clip, "fp16", 8, **kw).path
    path.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        again = trtb.load_or_build_engine(clip, "fp16", 8, **kw)
    assert again.built and "could not be loaded" in caplog.text


def test_trt_precision_errors():
    assert "'int8' is not supported by the tensorrt" in engines.request_problem(
        "tensorrt", "int8", "cuda")


@pytest.mark.skipif(TRT_OK, reason="TensorRT is available here; this checks the error without it")
def test_explicit_tensorrt_without_it_names_what_is_missing(clip, tmp_path):
    with pytest.raises(BackendUnavailable, match="TensorRT|CUDA"):
        create_image_encoder(clip, backend="tensorrt", precision="fp16", device="cuda",
                             cache_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match="TensorRT|CUDA"):
        create_image_encoder(clip, backend="tensorrt", precision="fp16", device="cuda:0",
                             cache_dir=tmp_path)


@pytest.mark.skipif(TRT_OK, reason="TensorRT is available here; this checks the error without it")
def test_build_engine_cli_without_tensorrt_exits_nonzero(capsys, tmp_path):
    code = build_engine_cli.main(["--model", "ViT-B-32", "--pretrained", "openai",
                                  "--cache-dir", str(tmp_path)])
    assert code != 0
    err = capsys.readouterr().err
    assert "TensorRT" in err or "CUDA" in err


# --- real TensorRT (not run on our machines: no GPU) --------------------------------------

@needs_trt
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_real_engine_builds_verifies_and_is_reused(clip, tmp_path, precision):
    first = trtb.load_or_build_engine(clip, precision, max_batch=4, cache_dir=tmp_path)
    assert first.built and first.verification.ok
    batch = np.random.default_rng(0).standard_normal((6, 3, clip.image_size, clip.image_size),
                                                     dtype=np.float32)
    out = first.value.encode_images(batch)  # 6 > max_batch 4: split into chunks
    ref = TorchImageEncoder(clip).encode_images(batch)
    assert out.shape == ref.shape and (out * ref).sum(1).min() > 0.999
    second = trtb.load_or_build_engine(clip, precision, max_batch=4, cache_dir=tmp_path)
    assert not second.built


@needs_trt
def test_real_auto_on_cuda_swaps_to_tensorrt(clip, tmp_path):
    enc = create_image_encoder(clip, backend="auto", precision="fp16", device="cuda",
                               cache_dir=tmp_path)
    assert enc.wait(600) == "ready", enc.status()
    assert enc.name == "tensorrt"


def test_engine_key_records_library_and_gpu_when_available(clip):
    if not TRT_OK:
        with pytest.raises(BackendUnavailable):
            trtb.engine_key(clip, "fp16", 8)
        return
    key = trtb.engine_key(clip, "fp16", 8)
    assert key.library.startswith("tensorrt ") and " sm_" in key.device
    assert dataclasses.replace(key, precision="fp32").digest() != key.digest()


def test_close_waits_for_the_encode_that_holds_the_context():
    """close() takes the lock _run holds, so a context is never released mid-encode (runs
    without TensorRT: only the locking is exercised, on an encoder built without __init__)."""
    import threading

    enc = object.__new__(trtb.TensorRTImageEncoder)
    enc._lock = threading.Lock()
    enc.context, enc.engine, enc._runtime = "context", "engine", "runtime"
    enc._lock.acquire()  # an encode in flight
    closer = threading.Thread(target=enc.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive() and enc.context == "context"  # waits for the encode
    enc._lock.release()
    closer.join(5)
    assert not closer.is_alive() and enc.context is None and enc.engine is None
