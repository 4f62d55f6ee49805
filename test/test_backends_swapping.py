"""SwappingImageEncoder: serve with the fallback while building, swap when ready, thread-safe."""
import threading

import numpy as np
import pytest

from clip_perception.core.backends import BackendUnavailable, ImageEncoder, SwappingImageEncoder


class Tagged(ImageEncoder):
    """Returns rows filled with its tag; can block inside encode_images to test in-flight calls."""

    def __init__(self, name, tag, gate=None):
        self.name, self.tag, self.gate = name, tag, gate
        self.closed = False
        self.entered = threading.Event()

    def encode_images(self, batch):
        if self.closed:
            raise RuntimeError(f"{self.name} used after close")
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return np.full((batch.shape[0], 2), self.tag, np.float32)

    def close(self):
        self.closed = True


BATCH = np.zeros((1, 3, 4, 4), np.float32)


def test_serves_fallback_while_building_then_swaps():
    release = threading.Event()
    fallback, fast = Tagged("onnxruntime", 1.0), Tagged("tensorrt", 2.0)

    def build():
        assert release.wait(10)
        return fast

    enc = SwappingImageEncoder(fallback, build, "tensorrt (fp16, cuda)")
    assert enc.state == "building" and enc.name == "onnxruntime"
    assert enc.encode_images(BATCH)[0, 0] == 1.0
    assert "building tensorrt (fp16, cuda)" in enc.describe()
    release.set()
    assert enc.wait(10) == "ready"
    assert enc.encode_images(BATCH)[0, 0] == 2.0
    assert enc.name == "tensorrt" and fallback.closed and not fast.closed
    status = enc.status()
    assert status.state == "ready" and status.reason == "" and status.seconds >= 0
    enc.close()
    assert fast.closed


def test_refused_build_keeps_fallback_with_reason(caplog):
    fallback = Tagged("onnxruntime", 1.0)

    def build():
        raise BackendUnavailable("engine refused: min cosine 0.97 < required 0.999")

    enc = SwappingImageEncoder(fallback, build, "tensorrt (fp16, cuda)")
    assert enc.wait(10) == "refused"
    assert "0.97 < required 0.999" in enc.reason
    assert enc.encode_images(BATCH)[0, 0] == 1.0 and not fallback.closed
    assert "refused" in enc.describe() and "keeps serving" in caplog.text


def test_unexpected_build_error_is_reported_not_raised():
    enc = SwappingImageEncoder(Tagged("torch", 1.0), lambda: 1 / 0, "tensorrt (fp16, cuda)")
    assert enc.wait(10) == "refused" and "ZeroDivisionError" in enc.reason


def test_fallback_in_use_during_swap_is_closed_only_after_its_call_returns():
    gate, release = threading.Event(), threading.Event()
    fallback, fast = Tagged("onnxruntime", 1.0, gate=gate), Tagged("tensorrt", 2.0)
    enc = SwappingImageEncoder(fallback, lambda: (release.wait(10), fast)[1], "trt")
    results = []
    caller = threading.Thread(target=lambda: results.append(enc.encode_images(BATCH)[0, 0]))
    caller.start()
    assert fallback.entered.wait(10)          # the call is inside the fallback now
    release.set()
    assert enc.wait(10) == "ready"
    assert not fallback.closed                 # still in use: must not be closed under it
    assert enc.encode_images(BATCH)[0, 0] == 2.0
    gate.set()
    caller.join(10)
    assert results == [1.0] and fallback.closed


def test_many_threads_during_swap_all_get_answers():
    release = threading.Event()
    enc = SwappingImageEncoder(Tagged("onnxruntime", 1.0), lambda: (release.wait(10),
                               Tagged("tensorrt", 2.0))[1], "trt")
    errors, seen = [], set()

    def worker():
        try:
            for _ in range(200):
                seen.add(float(enc.encode_images(BATCH)[0, 0]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(20)
    assert not errors and enc.wait(10) == "ready"
    assert enc.encode_images(BATCH)[0, 0] == 2.0


def test_closed_encoder_refuses_calls():
    enc = SwappingImageEncoder(Tagged("torch", 1.0), lambda: Tagged("trt", 2.0), "trt")
    enc.wait(10)
    enc.close()
    with pytest.raises(RuntimeError, match="closed"):
        enc.encode_images(BATCH)
