"""Artifact cache keys, invalidation and verification, with fake builders/loaders (no GPU)."""
import dataclasses
import logging

import numpy as np
import pytest

from clip_perception.core.backends.base import BackendUnavailable, ImageEncoder
from clip_perception.core.backends.engine_cache import (ArtifactBuildFailed, ArtifactKey,
                                                        ArtifactRefused, get_or_build,
                                                        read_record)
from clip_perception.core.backends.verify import (Verification, check_agreement,
                                                  compare_embeddings)

KEY = ArtifactKey(kind="tensorrt", model="ViT-B-32/openai", weights_hash="ab" * 32,
                  precision="fp16", input_shape=(3, 224, 224), batch_profile=(1, 1, 8),
                  library="tensorrt 10.3.0", device="NVIDIA Orin sm_87")


class FakeBuilder:
    """Writes a file whose content names the key; counts builds."""

    def __init__(self, payload=b"engine-v1"):
        self.calls = 0
        self.payload = payload

    def __call__(self, path):
        self.calls += 1
        path.write_bytes(self.payload)


class FakeLoader:
    """'Deserialises' a file: refuses anything but the expected payload, like TensorRT would."""

    def __init__(self, expected=b"engine-v1"):
        self.calls = 0
        self.expected = expected

    def __call__(self, path):
        self.calls += 1
        data = path.read_bytes()
        if data != self.expected:
            raise RuntimeError(f"cannot deserialize {len(data)} bytes")
        return {"path": path, "data": data}


def ok_verify(_):
    return Verification(True, 0.9999, 0.999)


@pytest.mark.parametrize("field,value", [
    ("model", "ViT-B-16/openai"), ("weights_hash", "cd" * 32), ("precision", "fp32"),
    ("input_shape", (3, 336, 336)), ("batch_profile", (1, 1, 4)), ("library", "tensorrt 10.4.0"),
    ("device", "NVIDIA GeForce RTX 4090 sm_89"), ("options", (("workspace", 2),)),
])
def test_every_key_field_changes_the_file(field, value):
    changed = dataclasses.replace(KEY, **{field: value})
    assert changed.digest() != KEY.digest()
    assert changed.filename(".engine") != KEY.filename(".engine")


def test_key_digest_is_stable_and_round_trips_json():
    same = ArtifactKey(**{f.name: getattr(KEY, f.name) for f in dataclasses.fields(KEY)})
    assert same.digest() == KEY.digest()
    d = KEY.to_dict()
    assert d["input_shape"] == [3, 224, 224] and d["key_format"] >= 1


def test_same_key_loads_and_never_rebuilds(tmp_path):
    build, load = FakeBuilder(), FakeLoader()
    first = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify)
    assert first.built and build.calls == 1
    assert read_record(first.path)["key"] == KEY.to_dict()
    for _ in range(2):
        again = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify)
        assert not again.built and again.path == first.path
    assert build.calls == 1 and load.calls == 3


def test_changed_key_builds_a_new_file(tmp_path):
    build, load = FakeBuilder(), FakeLoader()
    a = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify)
    b = get_or_build(tmp_path, dataclasses.replace(KEY, library="tensorrt 10.4.0"), ".engine",
                     build, load, ok_verify)
    assert b.built and b.path != a.path and build.calls == 2


def test_corrupt_file_is_rebuilt_with_a_warning(tmp_path, caplog):
    build, load = FakeBuilder(), FakeLoader()
    path = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify).path
    path.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        again = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify)
    assert again.built and build.calls == 2
    assert path.read_bytes() == b"engine-v1"
    assert any("could not be loaded" in r.getMessage() and "rebuilding" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert any("could not be loaded" in e for e in again.events)


@pytest.mark.parametrize("record", [None, '{"key": {"model": "other"}}', "not json"])
def test_file_without_matching_record_is_rebuilt(tmp_path, caplog, record):
    build, load = FakeBuilder(), FakeLoader()
    path = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify).path
    rec = path.with_name(path.name + ".json")
    if record is None:
        rec.unlink()
    else:
        rec.write_text(record)
    with caplog.at_level(logging.WARNING):
        again = get_or_build(tmp_path, KEY, ".engine", build, load, ok_verify)
    assert again.built and build.calls == 2
    assert "no matching key record" in caplog.text


def test_refused_artifact_raises_with_reason_and_is_closed(tmp_path):
    closed = []

    class Closable:
        def close(self):
            closed.append(True)

    bad = Verification(False, 0.98, 0.999, "min cosine to reference 0.98000 < required 0.999")
    with pytest.raises(ArtifactRefused, match="0.98000 < required 0.999") as info:
        get_or_build(tmp_path, KEY, ".engine", FakeBuilder(), lambda p: Closable(),
                     lambda v: bad)
    assert isinstance(info.value, BackendUnavailable)
    assert info.value.verification is bad and closed == [True]


def test_build_failure_leaves_no_file(tmp_path):
    def failing(path):
        path.write_bytes(b"half")
        raise RuntimeError("out of GPU memory")

    with pytest.raises(ArtifactBuildFailed, match="out of GPU memory"):
        get_or_build(tmp_path, KEY, ".engine", failing, FakeLoader(), ok_verify)
    # only the lock file stays (removing it would race with a process waiting on it)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.filename(".engine") + ".lock"]


def test_force_rebuild(tmp_path):
    build = FakeBuilder()
    get_or_build(tmp_path, KEY, ".engine", build, FakeLoader(), ok_verify)
    r = get_or_build(tmp_path, KEY, ".engine", build, FakeLoader(), ok_verify, force_rebuild=True)
    assert r.built and build.calls == 2


# --- verification ------------------------------------------------------------------------

def test_compare_embeddings_thresholds():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 16)).astype(np.float32)
    assert compare_embeddings(ref * 3, ref).ok  # scale does not matter
    noisy = ref + 0.2 * rng.standard_normal(ref.shape).astype(np.float32)
    v = compare_embeddings(noisy, ref, 0.999)
    assert not v.ok and "< required 0.999" in v.reason
    nan = ref.copy()
    nan[1, 2] = np.nan
    assert "non-finite" in compare_embeddings(nan, ref).reason
    assert "shape" in compare_embeddings(ref[:2], ref).reason


def test_verify_encoder_turns_exceptions_into_refusals():
    class Broken(ImageEncoder):
        name = "broken"

        def encode_images(self, batch):
            raise RuntimeError("execute_async_v3 failed")

    v = check_agreement(Broken(), np.zeros((1, 3, 8, 8), np.float32),
                        np.ones((1, 4), np.float32), np.eye(4, dtype=np.float32), max_batch=1)
    assert not v.ok and "execute_async_v3 failed" in v.reason


# --- interrupted builds and concurrent builders ------------------------------------------------

def test_partials_of_an_interrupted_build_are_removed_at_the_next_start(tmp_path, caplog):
    path = tmp_path / KEY.filename(".engine")
    left_file = tmp_path / f"{path.stem}.abc123.engine.partial"
    left_dir = tmp_path / f"{path.stem}.def456.partial"
    unrelated = tmp_path / "other-artifact.xyz.engine.partial"
    left_file.write_bytes(b"half")
    left_dir.mkdir()
    (left_dir / "smoothed_fp32.onnx").write_bytes(b"half")
    unrelated.write_bytes(b"someone else's")
    with caplog.at_level(logging.WARNING):
        r = get_or_build(tmp_path, KEY, ".engine", FakeBuilder(), FakeLoader(), ok_verify)
    assert not left_file.exists() and not left_dir.exists() and unrelated.exists()
    assert any("interrupted build" in e for e in r.events)


def test_two_builders_build_once(tmp_path):
    """The second caller waits on the artifact's lock and loads what the first built (threads
    here; fcntl locks behave the same between processes: each open() is its own lock owner)."""
    import threading
    import time

    started = threading.Event()

    class SlowBuilder(FakeBuilder):
        def __call__(self, path):
            started.set()
            time.sleep(0.5)
            super().__call__(path)

    build = SlowBuilder()
    results = []
    first = threading.Thread(target=lambda: results.append(
        get_or_build(tmp_path, KEY, ".engine", build, FakeLoader(), ok_verify)))
    first.start()
    assert started.wait(10)
    second = get_or_build(tmp_path, KEY, ".engine", build, FakeLoader(), ok_verify)
    first.join()
    assert build.calls == 1
    assert results[0].built and not second.built and second.path == results[0].path
