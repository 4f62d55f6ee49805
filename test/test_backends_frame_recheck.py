"""Re-check on the robot's own frames: an engine that passes the startup photos but fails on the
camera's frames is replaced by fp32, with the reason in diagnostics."""
import threading

import numpy as np
import pytest

from clip_perception.core.backends import create_image_encoder, encoder_diagnostics, int8
from clip_perception.core.backends.base import ImageEncoder
from clip_perception.core.backends.frame_recheck import (PASSED, SWITCHED,
                                                         RecheckingImageEncoder)
from clip_perception.core.backends.torch_backend import TorchImageEncoder
from clip_perception.core.backends.verify import TorchReference
from clip_perception.core.model import load_clip
from clip_perception.core.tiny_model import add_activation_outliers, write_tiny_model


@pytest.fixture(scope="module")
def stress_clip(tmp_path_factory):
    """Tiny stress model (outlier channels, same construction as write_outlier_vit_b_32)."""
    return load_clip(write_tiny_model(tmp_path_factory.mktemp("recheck_outliers"), transform=lambda
                                      m: add_activation_outliers(m, (3, 17, 40), 40.0)))


@pytest.fixture(scope="module")
def reference(stress_clip):
    return TorchReference(stress_clip)


class GlareBreaks(ImageEncoder):
    """Exact on the sample photos; wrong on over-exposed frames (normalised values > 2.5, which
    no photo reaches): like an int8 range that a robot's glare overflows."""

    name, precision = "fake-int8", "int8"

    def __init__(self, clip):
        self.inner = TorchImageEncoder(clip)

    def encode_images(self, batch):
        out = self.inner.encode_images(batch)
        if batch.max() > 2.5:
            out = np.roll(out, 1, axis=1)
        return out


def robot_frames(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return (2.6 + 0.1 * rng.standard_normal((n, 3, size, size))).astype(np.float32)


def test_engine_failing_on_robot_frames_is_replaced_by_fp32(stress_clip, reference):
    engine = GlareBreaks(stress_clip)
    assert reference.verify(engine).ok  # passes the startup verification on photos
    fp32 = TorchImageEncoder(stress_clip)
    enc = RecheckingImageEncoder(engine, reference, lambda: fp32, frames=6, max_batch=4)
    assert enc.precision == "int8" and enc.recheck().state == "collecting frames"
    frames = robot_frames(8, stress_clip.image_size)
    enc.encode_images(frames[:4])
    enc.encode_images(frames[4:])
    assert enc.wait(60) == SWITCHED
    assert enc.precision == "fp32" and enc.describe() == fp32.describe()
    status = enc.recheck()
    assert "on the robot's frames" in status.reason and "fake-int8" in status.reason
    out = enc.encode_images(frames[:2])
    np.testing.assert_allclose(out, fp32.encode_images(frames[:2]), atol=1e-6)


def test_engine_agreeing_on_robot_frames_keeps_serving(stress_clip, reference):
    engine = GlareBreaks(stress_clip)
    enc = RecheckingImageEncoder(engine, reference, lambda: pytest.fail("must not switch"),
                                 frames=4, max_batch=4)
    photos_like = reference.inputs[:4] * 0.9  # never over-exposed
    enc.encode_images(photos_like)
    assert enc.wait(60) == PASSED and enc.precision == "int8"


class SlowUntilReleased(GlareBreaks):
    """Blocks inside encode_images of the check (not of serving) until released; refuses to
    encode once closed, as a closed native session would (there it aborts the process)."""

    def __init__(self, clip):
        super().__init__(clip)
        self.calls, self.closed = 0, False
        self.in_check, self.release = threading.Event(), threading.Event()

    def encode_images(self, batch):
        assert not self.closed, "encode on a closed engine"
        self.calls += 1
        if self.calls > 1:  # the first call serves the camera; later ones are the check's
            self.in_check.set()
            self.release.wait(60)
        assert not self.closed, "engine closed under a running check"
        return super().encode_images(batch)

    def close(self):
        self.closed = True


def test_close_waits_for_a_running_check_before_closing_the_engine(stress_clip, reference):
    engine = SlowUntilReleased(stress_clip)
    enc = RecheckingImageEncoder(engine, reference, lambda: pytest.fail("must not switch"),
                                 frames=4, max_batch=4)
    enc.encode_images(reference.inputs[:4] * 0.9)
    assert engine.in_check.wait(60)  # the check is inside the engine now
    closer = threading.Thread(target=enc.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive() and not engine.closed  # close waits for the check
    engine.release.set()
    closer.join(60)
    assert not closer.is_alive() and engine.closed
    assert enc.recheck().state == PASSED  # the check ran to its end on an open engine


def test_int8_from_selection_is_rechecked_and_reported(stress_clip, reference, tmp_path,
                                                       monkeypatch):
    real = int8.load_or_quantize_int8  # random weights: near-tie decisions (test_backends_int8)
    monkeypatch.setattr(int8, "load_or_quantize_int8",
                        lambda *a, **kw: real(*a, **{**kw, "min_top1": 0.0}))
    enc = create_image_encoder(stress_clip, "onnxruntime", "int8", cache_dir=tmp_path,
                               reference=reference, recheck_frames=3)
    assert isinstance(enc, RecheckingImageEncoder) and enc.selection is not None
    assert encoder_diagnostics(enc)["frame recheck"] == "collecting frames (0/3 frames)"
    no_recheck = create_image_encoder(stress_clip, "onnxruntime", "fp32", cache_dir=tmp_path,
                                      reference=reference)
    assert not isinstance(no_recheck, RecheckingImageEncoder)
