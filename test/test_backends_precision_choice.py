"""precision: auto on a CPU: verified candidates are timed, the fastest serves, the decision is
cached by machine/libraries/model; timings are replaced by fixed numbers, and the CPU's
OpenVINO capabilities by those of an AMX or an AVX2-only CPU (engine_fakes: real OpenVINO
Types and compile), so the outcome is the same on any machine."""
import json

import pytest

from clip_perception.core.backends import create_image_encoder, encoder_diagnostics, int8
from clip_perception.core.backends import precision_choice as pc
from clip_perception.core import devices
from clip_perception.core.backends.verify import TorchReference

import engine_fakes as fakes

SPEEDS = {("openvino", "fp32"): 20.0, ("onnxruntime", "fp32"): 18.0,
          ("onnxruntime", "int8"): 35.0, ("openvino", "bf16"): 50.0}


@pytest.fixture
def timed(monkeypatch):
    """Fixed speeds per engine; returns the list of engines timed."""
    calls = []

    def fake_rate(encoder, image, seconds=pc.TIMING_SECONDS):
        assert image.shape[0] == 1
        calls.append((encoder.name, encoder.precision))
        return SPEEDS[(encoder.name, encoder.precision)]

    monkeypatch.setattr(pc, "images_per_second", fake_rate)
    return calls


@pytest.fixture
def lenient_int8(monkeypatch):
    """Random weights give near-tie labels (see test_backends_int8.py): let int8 pass top-1 so
    the choice between passing candidates is what is tested."""
    real = int8.load_or_quantize_int8
    monkeypatch.setattr(int8, "load_or_quantize_int8",
                        lambda *a, **kw: real(*a, **{**kw, "min_top1": 0.95}))


@pytest.fixture(scope="module")
def reference(tiny_clip):
    return TorchReference(tiny_clip)


@pytest.fixture(autouse=True)
def avx2_cpu(monkeypatch):
    """By default an AVX2-only CPU (no BF16); a test may switch to an AMX one."""
    fakes.use_openvino(monkeypatch, fakes.AVX2_CAPABILITIES)


@pytest.mark.parametrize("cpu", ["amx", "avx2"])
def test_fastest_verified_candidate_serves_and_the_rest_are_reported(
        tiny_clip, reference, tmp_path, timed, lenient_int8, monkeypatch, cpu):
    if cpu == "amx":
        fakes.use_openvino(monkeypatch, fakes.AMX_CAPABILITIES)
    enc = create_image_encoder(tiny_clip, backend="auto", precision="auto", cache_dir=tmp_path,
                               reference=reference)
    attempts = {(a.backend, a.precision): a for a in enc.selection.attempts}
    fastest = ("openvino", "bf16") if cpu == "amx" else ("onnxruntime", "int8")
    assert (enc.name, enc.precision) == fastest
    assert attempts[fastest].outcome == "chosen"
    assert f"{SPEEDS[fastest]} img/s" in attempts[fastest].reason
    assert attempts[("openvino", "fp32")].outcome == "slower"
    assert "20.0 img/s" in attempts[("openvino", "fp32")].reason
    if cpu == "amx":
        assert attempts[("onnxruntime", "int8")].outcome == "slower"
        assert "35.0 img/s" in attempts[("onnxruntime", "int8")].reason
    else:
        assert attempts[("openvino", "bf16")].outcome == "skipped"
        assert attempts[("openvino", "bf16")].lacks == "AMX or AVX-512 BF16"
        assert "AMX or AVX-512 BF16" in attempts[("openvino", "bf16")].reason
    assert not enc.selection.unexplained, enc.selection.summary()
    diag = encoder_diagnostics(enc)
    candidates = [v for k, v in diag.items() if k.startswith("candidate")]
    assert any(f"{fastest[0]} {fastest[1]} on cpu: chosen" in c for c in candidates)
    assert any("openvino fp32 on cpu: slower (20.0 img/s" in c for c in candidates)
    expected = sorted(k for k in SPEEDS if k != ("openvino", "bf16") or cpu == "amx")
    # interleaved rounds: every candidate once per round, so load bursts hit them alike
    n = len(expected)
    assert len(timed) == n * pc.TIMING_ROUNDS
    for r in range(pc.TIMING_ROUNDS):
        assert sorted(timed[r * n:(r + 1) * n]) == expected


def test_decision_is_cached_and_keyed(tiny_clip, reference, tmp_path, timed, lenient_int8):
    first = create_image_encoder(tiny_clip, backend="auto", precision="auto",
                                 cache_dir=tmp_path, reference=reference)
    n = len(timed)
    files = list(tmp_path.rglob("precision-choice-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["chosen"] == ["onnxruntime", "int8", "cpu"]
    assert record["key"]["cpu"]["model"] and "onnxruntime" in record["key"]["libraries"]
    assert record["key"]["weights_hash"] == tiny_clip.weights_hash

    again = create_image_encoder(tiny_clip, backend="auto", precision="auto",
                                 cache_dir=tmp_path, reference=reference)
    assert len(timed) == n, "a cached decision must not re-time the candidates"
    assert (again.name, again.precision) == (first.name, first.precision)
    chosen = [a for a in again.selection.attempts if a.outcome == "chosen"][0]
    assert "re-verified now" in chosen.reason and files[0].name in chosen.reason

    # other thread count: another key, timed again
    create_image_encoder(tiny_clip, backend="auto", precision="auto", cache_dir=tmp_path,
                         reference=reference, threads=1)
    assert len(timed) > n and len(list(tmp_path.rglob("precision-choice-*.json"))) == 2


def test_cached_choice_that_no_longer_verifies_is_measured_again(
        tiny_clip, reference, tmp_path, timed, lenient_int8, monkeypatch):
    create_image_encoder(tiny_clip, backend="auto", precision="auto", cache_dir=tmp_path,
                         reference=reference)
    n = len(timed)
    real = int8.load_or_quantize_int8
    monkeypatch.setattr(int8, "load_or_quantize_int8",
                        lambda *a, **kw: real(*a, **{**kw, "min_cosine": 1.01}))
    enc = create_image_encoder(tiny_clip, backend="auto", precision="auto", cache_dir=tmp_path,
                               reference=reference)
    assert len(timed) > n and (enc.name, enc.precision) == ("openvino", "fp32")
    assert ("onnxruntime", "int8", "refused") in [(a.backend, a.precision, a.outcome)
                                                  for a in enc.selection.attempts]


def test_explicit_backend_with_auto_precision_measures_its_own_candidates(
        tiny_clip, reference, tmp_path, timed, lenient_int8):
    enc = create_image_encoder(tiny_clip, backend="openvino", precision="auto",
                               cache_dir=tmp_path, reference=reference)
    assert enc.name == "openvino" and all(name == "openvino" for name, _ in timed)


def test_a_skip_that_is_not_a_missing_capability_is_a_failure(tiny_clip, reference, tmp_path,
                                                             timed, lenient_int8, monkeypatch):
    """A CPU that says BF16 but whose compiled model is f32 (the shape of issue 19's bug: a
    bf16 engine lost for a reason other than the hardware) is reported as failed, loudly."""
    fakes.use_openvino(monkeypatch, fakes.AMX_CAPABILITIES, quiet_fallback=True)
    enc = create_image_encoder(tiny_clip, backend="auto", precision="auto", cache_dir=tmp_path,
                               reference=reference)
    (bad,) = enc.selection.unexplained
    assert (bad.backend, bad.precision, bad.outcome) == ("openvino", "bf16", "failed")
    assert "<Type: 'float32'>, not bf16" in bad.reason and not bad.lacks
    assert enc.precision == "int8"  # the node still serves the fastest verified engine


def test_cpu_identity_names_model_and_isa():
    ident = devices.cpu_identity()
    assert ident["model"] != "" and set(ident["isa"]) <= set(devices.ISA_FLAGS)


def test_a_load_burst_in_one_round_does_not_decide(monkeypatch):
    """Rounds are interleaved and each candidate keeps its best: a faster engine that was hit
    by a burst of load in one round still wins."""
    rates = {"fast": [12.0, 30.0, 29.0], "slow": [20.0, 20.5, 19.5]}
    seen = []

    def fake_rate(encoder, image, seconds=pc.TIMING_SECONDS):
        seen.append(encoder)
        return rates[encoder][sum(1 for e in seen if e == encoder) - 1]

    monkeypatch.setattr(pc, "images_per_second", fake_rate)
    ranked = pc.rank_by_speed(["slow", "fast"], image=None)
    assert ranked == [(30.0, 1), (20.5, 0)]
    assert seen == ["slow", "fast"] * pc.TIMING_ROUNDS
