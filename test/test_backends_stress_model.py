"""The precision decision on the stress model (a ViT-B-32 with trained-CLIP-like activation
outliers), through the call the node makes: ``backend: auto``, ``precision: auto``. (Plain
dynamic int8 failing on outliers is test_backends_int8.py's, on the tiny stress model.)

Which verified candidate is fastest is a timing on this machine (benchmarks/ measure it). What
is tested is accuracy, the same on every CPU: whatever serves passes the natural-photo bars;
int8 (which runs on any x86 CPU) is built and judged, never skipped; its smoothing survives the
outliers (every embedding within cosine 0.999, batch-independent). Whether its top-1 labels
agree on the photos' near-ties depends on the CPU's int8 kernels (VNNI/AMX round differently
from AVX2), so there the test checks the rule's logic: the verdict ``auto`` gave is the
verification's verdict on that engine's own outputs."""
import pytest

from clip_perception.core.backends import create_image_encoder, encoder_diagnostics, int8
from clip_perception.core.backends.onnx_export import ensure_image_onnx
from clip_perception.core.backends.verify import TorchReference

REDUCED = ("int8", "bf16")


def check_bars(reference, encoder):
    v = reference.verify(encoder)
    assert v.ok and v.min_cosine >= 0.999 and v.top1_agreement >= 0.99, v
    assert v.batch_cosine >= 0.99999, v


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("stress_cache")


def test_auto_serves_a_verified_engine_and_judges_int8_by_the_rule_on_the_stress_model(
        outlier_vit_b_32_clip, cache):
    clip = outlier_vit_b_32_clip
    reference = TorchReference(clip)
    enc = create_image_encoder(clip, "auto", "auto", device="cpu", cache_dir=cache,
                               reference=reference)
    try:
        report = encoder_diagnostics(enc)
        attempts = {(a.backend, a.precision): a for a in enc.selection.attempts}
        int8_attempt = attempts[("onnxruntime", "int8")]
        assert int8_attempt.outcome in ("chosen", "slower", "refused"), report
        for (_, precision), attempt in attempts.items():
            if precision in REDUCED and attempt.outcome == "refused":
                assert "refused:" in attempt.reason, report  # a verdict, with its numbers
        assert not enc.selection.unexplained, report  # skips only for a missing capability
        check_bars(reference, enc)
    finally:
        enc.close()
    # the int8 remedy itself, whatever its verdict here (the artifact is cached now)
    int8_enc = int8.load_or_quantize_int8(clip, ensure_image_onnx(clip, cache), cache,
                                          reference=reference, min_cosine=0.0,
                                          min_top1=0.0).value
    try:
        v = reference.verify(int8_enc)
        assert v.min_cosine >= 0.999 and v.batch_cosine >= 0.99999, v
        assert (int8_attempt.outcome == "refused") == (not v.ok), (str(int8_attempt), str(v))
    finally:
        int8_enc.close()
