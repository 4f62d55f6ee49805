"""The precision decision on the stress model (a ViT-B-32 with trained-CLIP-like activation
outliers), through the call the node makes: ``backend: auto``, ``precision: auto``. (Plain
dynamic int8 failing on outliers is test_backends_int8.py's, on the tiny stress model.)

Which verified candidate is fastest is a timing on this machine (benchmarks/ measure it); what
is tested here is accuracy: a reduced precision survives the outliers and passes the
natural-photo bars, so it is a candidate, and whatever serves passes them too."""
from clip_perception.core.backends import create_image_encoder, encoder_diagnostics
from clip_perception.core.backends.verify import TorchReference

REDUCED = ("int8", "bf16")


def check_bars(reference, encoder):
    v = reference.verify(encoder)
    assert v.ok and v.min_cosine >= 0.999 and v.top1_agreement >= 0.99, v
    assert v.batch_cosine >= 0.99999, v


def test_auto_keeps_a_verified_reduced_precision_on_the_stress_model(outlier_vit_b_32_clip,
                                                                      tmp_path):
    clip = outlier_vit_b_32_clip
    reference = TorchReference(clip)
    enc = create_image_encoder(clip, "auto", "auto", device="cpu", cache_dir=tmp_path,
                               reference=reference)
    try:
        report = encoder_diagnostics(enc)
        attempts = {(a.backend, a.precision): a.outcome for a in enc.selection.attempts}
        # int8 is a candidate on every CPU; bf16 only where AMX / AVX-512 BF16 is present
        assert attempts[("onnxruntime", "int8")] in ("chosen", "slower"), report
        assert all(outcome != "refused" for (_, precision), outcome in attempts.items()
                   if precision in REDUCED), report
        check_bars(reference, enc)
    finally:
        enc.close()
    # the int8 remedy itself, whether or not it won the timing here (artifact is cached now)
    int8_enc = create_image_encoder(clip, "onnxruntime", "int8", device="cpu",
                                    cache_dir=tmp_path, reference=reference)
    try:
        assert int8_enc.precision == "int8"
        check_bars(reference, int8_enc)
    finally:
        int8_enc.close()
