"""ros.parameters.validate and ros.diagnostics.build_statuses: pure functions, no DDS."""
import pytest

from clip_perception.core.pipeline import CameraCounters, StageWindow, StatsSnapshot, STAGES
from clip_perception.ros import diagnostics
from clip_perception.ros.parameters import (LIVE_PARAMETERS, PARAMETERS, RESTART_PARAMETERS,
                                            ParameterError, validate)


def defaults(**overrides):
    values = {p.name: p.default for p in PARAMETERS}
    values.update(overrides)
    return values


def test_defaults_are_valid():
    startup, live = validate(defaults())
    assert startup.backend == "auto" and startup.image_topics == ("/camera/image_raw",)
    assert live.label_set.labels == ("person", "chair", "door") and live.max_rate_hz == 0.0


def test_every_parameter_is_described_and_classified():
    for p in PARAMETERS:
        assert p.description.strip(), p.name
    assert set(LIVE_PARAMETERS) == {
        "labels", "prompt_templates", "label_prompts", "top_k", "score_threshold", "landmarks",
        "landmark_templates", "landmark_smoothing", "adapter_path", "adapter_blend",
        "score_mode", "negative_labels", "max_rate_hz", "stall_timeout", "crop_padding",
        "max_detections_per_frame"}
    assert {"autostart", "model", "pretrained", "backend", "precision", "device", "engine_cache_dir",
            "image_topics", "qos_reliability", "qos_depth", "max_batch",
            "preprocess_resize"} <= set(RESTART_PARAMETERS)


@pytest.mark.parametrize("overrides, parameter, fragment", [
    (dict(score_mode="mcm"), "score_mode", "got 'mcm', expected one of softmax, neglabel"),
    (dict(negative_labels=["cat", "cat"]), "negative_labels", "duplicate"),
    (dict(backend="openvino2"), "backend", "got 'openvino2', expected one of auto, tensorrt, openvino"),
    (dict(precision="fp8"), "precision", "got 'fp8'"),
    (dict(device="gpu"), "device", "'cpu', 'cuda' or 'cuda:N'"),
    (dict(image_topics=[]), "image_topics", "empty"),
    (dict(image_topics=["/a", "/a"]), "image_topics", "duplicate"),
    (dict(qos_reliability="sometimes"), "qos_reliability", "best_effort, reliable"),
    (dict(max_batch=0), "max_batch", "got 0, expected 1..64"),
    (dict(preprocess_resize="cv2"), "preprocess_resize", "got 'cv2', expected one of fast, exact"),
    (dict(model=" "), "model", "empty"),
    (dict(labels=[]), "labels", "empty"),
    (dict(top_k=0), "top_k", ">= 1"),
    (dict(score_threshold=2.0), "score_threshold", "[0, 1]"),
    (dict(label_prompts=["pear=a pear"]), "label_prompts", "name no label"),
    (dict(max_rate_hz=-1.0), "max_rate_hz", "got -1.0"),
    (dict(image16_scale="12bit"), "image16_scale", "expected 'auto' or a number in 1..65535"),
    (dict(max_image_pixels=0), "max_image_pixels", "got 0"),
])
def test_invalid_values_are_rejected_with_parameter_and_reason(overrides, parameter, fragment):
    with pytest.raises(ParameterError) as info:
        validate(defaults(**overrides))
    assert info.value.parameter == parameter
    assert fragment in str(info.value)


@pytest.mark.parametrize("model, pretrained, expected", [
    ("ViT-B-32", "", "datacomp_xl_s13b_b90k"), ("ViT-B-32", "openai", "openai"),
    ("ViT-B-32", "laion2b_s34b_b79k", "laion2b_s34b_b79k"), ("RN50", "", "openai"),
    ("local-dir:/models/tiny", "", ""), ("hf-hub:org/repo", "", "")])
def test_empty_pretrained_is_the_models_own_default(model, pretrained, expected):
    startup, _ = validate(defaults(model=model, pretrained=pretrained))
    assert startup.pretrained == expected


def test_image16_scale_and_pixel_limit_reach_the_settings():
    startup, _ = validate(defaults(image16_scale="4095", max_image_pixels=1000))
    assert (startup.image16_scale, startup.max_image_pixels) == (4095.0, 1000)
    assert validate(defaults())[0].image16_scale is None  # "auto"


def test_preprocess_resize_defaults_to_fast_and_exact_stays_selectable():
    assert validate(defaults())[0].preprocess_resize == "fast"
    assert validate(defaults(preprocess_resize="exact"))[0].preprocess_resize == "exact"


def test_empty_arrays_of_any_type_become_string_arrays():
    from rclpy.parameter import Parameter

    from clip_perception.ros.parameters import empty_arrays_as_string_arrays

    out = empty_arrays_as_string_arrays([
        Parameter("landmarks", Parameter.Type.BOOL_ARRAY, []),
        Parameter("label_prompts", Parameter.Type.DOUBLE_ARRAY, []),
        Parameter("labels", Parameter.Type.INTEGER_ARRAY, [1]),  # not empty: left to rclpy
        Parameter("top_k", Parameter.Type.INTEGER, 3)])
    assert [(p.name, p.type_, p.value) for p in out] == [
        ("landmarks", Parameter.Type.STRING_ARRAY, []),
        ("label_prompts", Parameter.Type.STRING_ARRAY, []),
        ("labels", Parameter.Type.INTEGER_ARRAY, [1]), ("top_k", Parameter.Type.INTEGER, 3)]


def _snapshot(cameras, errors=0, last_error="", last_error_time=0.0):
    return StatsSnapshot(cameras=cameras, stages={s: StageWindow() for s in STAGES},
                         batches=2, batch_frames=4, window_seconds=1.0, errors=errors,
                         last_error=last_error, last_error_time=last_error_time)


def _info(**kw):
    base = dict(model="tiny", backend="torch (fp32, cpu)", converter="numpy",
                label_set_version=1, labels=2, landmarks=0, adapter="", adapter_blend=0.0,
                max_rate_hz=0.0, max_batch=8, rebuilding=False, label_set_error="")
    base.update(kw)
    return diagnostics.PipelineInfo(**base)


def test_statuses_levels():
    cams = {"/ok": CameraCounters(received=5, processed=4, dropped=1),
            "/silent": CameraCounters(),
            "/bad": CameraCounters(received=3, rejected=2, last_error="truncated image",
                                   last_error_time=99.0)}
    statuses = diagnostics.build_statuses("/clip", _snapshot(cams), _info(), now=100.0)
    by_name = {s.name: s for s in statuses}
    assert by_name["/clip: pipeline"].level == diagnostics.OK
    assert "4.0 frames/s" in by_name["/clip: pipeline"].message
    assert by_name["/clip: camera /ok"].level == diagnostics.OK
    assert dict(by_name["/clip: camera /ok"].values)["dropped"] == "1"
    assert by_name["/clip: camera /silent"].level == diagnostics.WARN
    assert by_name["/clip: camera /bad"].level == diagnostics.WARN
    assert "truncated image" in by_name["/clip: camera /bad"].message
    # an old rejection no longer warns
    later = diagnostics.build_statuses("/clip", _snapshot(cams), _info(), now=200.0)
    assert {s.name: s for s in later}["/clip: camera /bad"].level == diagnostics.OK


def test_pipeline_status_error_and_rebuilding():
    cams = {"/a": CameraCounters(received=1)}
    err = diagnostics.build_statuses("/n", _snapshot(cams, 1, "inference failed", 99.5),
                                     _info(), now=100.0)[0]
    assert err.level == diagnostics.ERROR and err.message == "inference failed"
    busy = diagnostics.build_statuses("/n", _snapshot(cams), _info(rebuilding=True), 100.0)[0]
    assert busy.level == diagnostics.WARN and "re-encoding" in busy.message
    failed = diagnostics.build_statuses("/n", _snapshot(cams),
                                        _info(label_set_error="v3 failed"), 100.0)[0]
    assert failed.level == diagnostics.ERROR


def test_pipeline_status_carries_backend_details_and_warns_on_refused_engine():
    cams = {"/a": CameraCounters(received=1)}
    details = (("backend requested", "auto (fp16, cuda)"),
               ("skipped 1", "onnxruntime fp16 on cuda: skipped (no CUDAExecutionProvider)"),
               ("engine build", "refused: cosine 0.97 < 0.999"))
    refused = diagnostics.build_statuses(
        "/n", _snapshot(cams), _info(backend_details=details,
                                     backend_warning="tensorrt (fp16, cuda) refused"), 100.0)[0]
    values = dict(refused.values)
    assert values["engine build"] == "refused: cosine 0.97 < 0.999"
    assert values["skipped 1"].startswith("onnxruntime fp16 on cuda: skipped")
    assert refused.level == diagnostics.WARN and "refused" in refused.message
    ok = diagnostics.build_statuses("/n", _snapshot(cams), _info(backend_details=details),
                                    100.0)[0]
    assert ok.level == diagnostics.OK


def test_pipeline_status_says_the_score_mode_and_the_negative_words_in_use():
    from clip_perception.core.prompts import PromptEmbeddingCache
    from label_sets import fake_text_encoder, label_set, spec

    cams = {"/a": CameraCounters(received=1)}
    bank = [f"word{i}" for i in range(10)]
    neg = label_set(spec(score_mode="neglabel", negative_labels=bank, score_threshold=0.3),
                    cache=PromptEmbeddingCache(fake_text_encoder()[0]))
    values = dict(diagnostics.build_statuses(
        "/n", _snapshot(cams), _info(scoring=neg.scoring_summary()), 100.0)[0].values)
    assert values["score mode"] == "neglabel" and values["score threshold"] == "0.3"
    assert "against the negative words" in values["threshold applies to"]
    per_label = neg.negative_mask.sum(axis=1)
    assert values["negative words"] == (f"a bank of 10 (negative_labels); {per_label.min()}-"
                                        f"{per_label.max()} per label, without the label and "
                                        "its synonyms")
    softmax = label_set(spec()).scoring_summary()
    soft = dict(diagnostics.build_statuses(
        "/n", _snapshot(cams), _info(scoring=softmax), 100.0)[0].values)
    assert soft["score mode"] == "softmax" and "best label" in soft["threshold applies to"]
    assert "negative words" not in soft
    builtin = label_set(spec(score_mode="neglabel")).scoring_summary()
    assert "(built-in)" in dict(builtin)["negative words"]
