"""One way to open what the node serves (core.encoders): the node, train_adapter, build_memory
and query_memory take the same options with the same defaults and serve the same engine for the
same arguments."""
from __future__ import annotations

import pytest

from clip_perception.cli import build_memory, query_memory, train_adapter
from clip_perception.cli.memory_arguments import encoder_spec as memory_encoder_spec
from clip_perception.cli.memory_arguments import load_encoders
from clip_perception.core.encoders import EncoderSpec, open_encoders
from clip_perception.ros.parameters import PARAMETERS, PARAMETERS_BY_NAME, validate
from clip_perception.ros.parameters import encoder_spec as node_encoder_spec
from clip_perception.training import engine
from clip_perception.cli.training_arguments import model_spec

# Fields that say which engine serves; max_batch / background_build say how a tool feeds it.
ENGINE_FIELDS = ("model", "pretrained", "backend", "precision", "device", "cache_dir",
                 "threads", "preprocess_resize", "text_backend")


def _node_spec(**params) -> EncoderSpec:
    values = {p.name: p.default for p in PARAMETERS}
    values.update(params)
    settings, _ = validate(values)
    return node_encoder_spec(settings).resolved()


def _engine_fields(spec: EncoderSpec) -> dict:
    return {f: getattr(spec.resolved(), f) for f in ENGINE_FIELDS}


def _tool_specs(model_args: list[str]) -> dict[str, EncoderSpec]:
    train = train_adapter.build_parser().parse_args(
        ["--image-folder", "frames", "--output", "head.safetensors"] + model_args)
    build = build_memory.build_parser().parse_args(
        ["--bag", "bag", "--image-topic", "/cam", "--tf"] + model_args)
    query = query_memory.build_parser().parse_args(["--text", "a door"] + model_args)
    return {"train_adapter": model_spec(train).encoder_spec(),
            "build_memory": memory_encoder_spec(build), "query_memory": memory_encoder_spec(query)}


def test_the_spec_defaults_are_the_node_parameter_defaults():
    d = EncoderSpec()
    p = {name: PARAMETERS_BY_NAME[name].default for name in
         ("model", "pretrained", "backend", "precision", "device", "engine_cache_dir",
          "encoder_threads", "max_batch", "preprocess_resize")}
    assert (d.model, d.pretrained or "", d.backend, d.precision, d.device, d.cache_dir or "",
            d.threads, d.max_batch, d.preprocess_resize) == tuple(p.values())


def test_every_tool_resolves_the_node_defaults_alike():
    """No arguments but the model: each tool's spec opens what the node opens by default,
    including ``pretrained`` (the built-in default tag, also for an empty --pretrained)."""
    node = _node_spec()
    for args in (["--model", "ViT-B-32"], ["--model", "ViT-B-32", "--pretrained", ""]):
        for tool, spec in _tool_specs(args).items():
            assert _engine_fields(spec) == _engine_fields(node), tool
    assert node.pretrained == "datacomp_xl_s13b_b90k" and node.precision == "auto"


def test_the_same_arguments_give_the_same_spec(tmp_path):
    args = ["--model", "local-dir:/models/x", "--backend", "onnxruntime", "--precision", "int8",
            "--device", "cpu", "--threads", "1", "--preprocess-resize", "exact",
            "--cache-dir", str(tmp_path)]
    node = _node_spec(model="local-dir:/models/x", backend="onnxruntime", precision="int8",
                      device="cpu", encoder_threads=1, preprocess_resize="exact",
                      engine_cache_dir=str(tmp_path))
    for tool, spec in _tool_specs(args).items():
        assert _engine_fields(spec) == _engine_fields(node), tool
    assert node.pretrained is None  # a local-dir: folder carries its weights


def test_node_train_adapter_and_memory_tools_serve_the_same_engine(tiny_model_id,
                                                                   engine_cache_dir):
    """The real opening paths, default backend and precision (``auto``: verified candidates
    timed, the decision cached per CPU and model in the engine cache), on the tiny model."""
    from node_harness import Harness

    cache = str(engine_cache_dir)
    h = Harness(tiny_model_id, "/encoders_test", backend="auto", precision="auto",
                engine_cache_dir=cache)
    try:
        from lifecycle_msgs.msg import Transition

        assert h.transition(Transition.TRANSITION_CONFIGURE)
        served = {"node": h.node.encoder}
        node_spec = h.node.encoders.spec
    finally:
        h.close()
    args = ["--model", tiny_model_id, "--cache-dir", cache]
    specs = _tool_specs(args)
    train = model_spec(train_adapter.build_parser().parse_args(
        ["--image-folder", "f", "--output", "h.safetensors"] + args))
    clip, _ = engine.load_model(train)
    served["train_adapter"] = engine.create_encoder(train, clip)
    build = build_memory.build_parser().parse_args(["--bag", "b", "--image-topic", "/c", "--tf"]
                                                   + args)
    served["build_memory"] = load_encoders(build).image_encoder
    query = query_memory.build_parser().parse_args(["--text", "a door"] + args)
    served["query_memory"] = load_encoders(query, tiny_model_id, None).image_encoder
    engines = {tool: (enc.name, enc.precision, enc.device) for tool, enc in served.items()}
    assert len(set(engines.values())) == 1, engines
    for tool, spec in specs.items():
        assert _engine_fields(spec) == _engine_fields(node_spec), tool
    for enc in served.values():
        enc.close()


def test_open_encoders_embeds_frames_and_texts_like_its_parts(tiny_model_id, engine_cache_dir,
                                                            tiny_clip):
    import numpy as np

    enc = open_encoders(EncoderSpec(model=tiny_model_id, backend="torch", device="cpu",
                                    cache_dir=str(engine_cache_dir)))
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    images = enc.images([frame])
    assert images.shape == (1, tiny_clip.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(images, enc.image_encoder.encode_images(enc.preprocessor([frame])))
    texts = enc.texts(["a cup"], ["a photo of {}."])
    np.testing.assert_allclose(texts, enc.prompt_cache.ensemble(["a cup"], ["a photo of {}."]))
    enc.close()


def test_an_invalid_option_is_refused_before_loading(tiny_model_id):
    with pytest.raises(ValueError, match="device"):
        EncoderSpec(model=tiny_model_id, device="gpu7").resolved()
