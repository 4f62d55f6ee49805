"""Every backend x precision's acceptance logic against what the libraries really return:
OpenVINO's own ``Type`` objects and property values (real, and a Core reporting other CPUs'
capabilities), TensorRT 10/11's BuilderFlag (a faithful fake module: tensorrt is not
installable here), onnxruntime's providers. The outcome of every test is the same on any CPU."""
import re

import openvino
import pytest

from clip_perception.core.backends import BackendUnavailable, create_image_encoder, engines
from clip_perception.core.backends.base import MissingCapability
from clip_perception.core.backends import onnx_export
from clip_perception.core.backends import onnxruntime_backend as ortb
from clip_perception.core.backends import openvino_backend as ovb
from clip_perception.core.backends import tensorrt_backend as trtb

import engine_fakes as fakes


@pytest.fixture(scope="module")
def onnx_path(tiny_clip, engine_cache_dir):
    return onnx_export.ensure_image_onnx(tiny_clip, engine_cache_dir)


# ---- OpenVINO ----------------------------------------------------------------------------

def test_openvino_names_bf16_bfloat16_so_types_are_compared_not_names():
    # The regression of issue 19: OpenVINO's name of the type has no "bf16" in it.
    assert str(openvino.Type.bf16) == "<Type: 'bfloat16'>"
    assert "bf16" not in str(openvino.Type.bf16)
    assert ovb.compiled_as(openvino, openvino.Type.bf16, "bf16")
    assert ovb.compiled_as(openvino, openvino.Type.f32, "fp32")
    assert not ovb.compiled_as(openvino, openvino.Type.f32, "bf16")
    assert not ovb.compiled_as(openvino, openvino.Type.bf16, "fp32")


def test_real_compiled_model_reports_a_type_and_bf16_is_accepted_exactly_when_it_is_bf16(
        tiny_clip, onnx_path):
    """Real OpenVINO on this CPU: a bf16 request is served iff the compiled model says bf16
    (true where OPTIMIZATION_CAPABILITIES lists BF16), refused naming the Type otherwise."""
    core = openvino.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert "FP32" in caps and all(isinstance(c, str) for c in caps)
    compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "bf16"})
    reported = compiled.get_property("INFERENCE_PRECISION_HINT")
    assert isinstance(reported, openvino.Type)
    assert reported in (openvino.Type.bf16, openvino.Type.f32)
    fp32 = ovb.OpenVinoImageEncoder(onnx_path, tiny_clip.image_size, "fp32", threads=1)
    assert fp32.precision == "fp32"
    if "BF16" in caps and reported == openvino.Type.bf16:
        assert ovb.OpenVinoImageEncoder(onnx_path, tiny_clip.image_size, "bf16",
                                        threads=1).precision == "bf16"
    else:
        with pytest.raises(BackendUnavailable):
            ovb.OpenVinoImageEncoder(onnx_path, tiny_clip.image_size, "bf16", threads=1)


@pytest.mark.parametrize("capabilities, accepted", [(fakes.AMX_CAPABILITIES, True),
                                                    (fakes.AVX2_CAPABILITIES, False)])
def test_bf16_follows_the_cpus_reported_capabilities(monkeypatch, tiny_clip, onnx_path,
                                                     capabilities, accepted):
    fakes.use_openvino(monkeypatch, capabilities)
    if accepted:
        ovb.check_capability("bf16")
        enc = ovb.OpenVinoImageEncoder(onnx_path, tiny_clip.image_size, "bf16", threads=1)
        assert enc.describe() == "openvino (bf16, cpu)"
    else:
        with pytest.raises(MissingCapability, match="AMX or AVX-512 BF16.*FP32, INT8") as info:
            ovb.check_capability("bf16")
        assert info.value.lacks == "AMX or AVX-512 BF16"
    ovb.check_capability("fp32")  # fp32 on every CPU


def test_bf16_quietly_compiled_as_f32_is_refused_with_the_reported_type(monkeypatch, tiny_clip,
                                                                        onnx_path):
    fakes.use_openvino(monkeypatch, fakes.AMX_CAPABILITIES, quiet_fallback=True)
    with pytest.raises(BackendUnavailable, match=r"compiled .* for <Type: 'float32'>, not bf16") \
            as info:
        ovb.OpenVinoImageEncoder(onnx_path, tiny_clip.image_size, "bf16", threads=1)
    assert not isinstance(info.value, MissingCapability)  # not the hardware: an error


@pytest.mark.parametrize("backend, precision, device, match", [
    ("openvino", "int8", "cpu", r"not supported by the openvino backend on 'cpu'; expected one "
                                r"of \('bf16', 'fp32'\)"),
    ("openvino", "fp16", "cpu", "not supported by the openvino backend"),
    ("openvino", "fp32", "cuda", "runs on device 'cpu' here, got 'cuda'"),
    ("tensorrt", "int8", "cuda", r"not supported by the tensorrt backend on 'cuda'; expected "
                                 r"one of \('fp16', 'fp32'\)"),
    ("tensorrt", "fp16", "cpu", "needs device 'cuda' or 'cuda:N', got 'cpu'"),
    ("onnxruntime", "int8", "cuda", r"on 'cuda'; expected one of \('fp32',\)"),
    ("onnxruntime", "fp16", "cpu", "not supported by the onnxruntime backend"),
    ("onnxruntime", "bf16", "cpu", "not supported by the onnxruntime backend"),
    ("torch", "int8", "cpu", r"expected one of \('fp32',\)")])
def test_the_table_refuses_what_no_engine_offers(tiny_clip, backend, precision, device, match):
    """No row, no engine: the reason is the table's, the same on every machine, and not a
    missing capability (the node rejects such parameters)."""
    assert re.search(match, engines.request_problem(backend, precision, device))
    with pytest.raises(BackendUnavailable, match=match) as info:
        create_image_encoder(tiny_clip, backend, precision, device=device)
    assert not isinstance(info.value, MissingCapability)


# ---- TensorRT ----------------------------------------------------------------------------

def test_tensorrt_10_builds_fp16_and_fp32_on_a_gpu(monkeypatch):
    fakes.use_tensorrt(monkeypatch, "10.13.0")
    fakes.use_gpu(monkeypatch, "NVIDIA Orin", (8, 7))
    for precision in ("fp16", "fp32"):
        ok, what = trtb.tensorrt_available(precision, "cuda")
        assert ok and what == "tensorrt 10.13.0 on NVIDIA Orin sm_87"


def test_tensorrt_11_without_weak_typing_refuses_fp16_and_keeps_fp32(monkeypatch):
    module = fakes.use_tensorrt(monkeypatch, "11.0.0")
    assert not hasattr(module.BuilderFlag, "FP16")
    fakes.use_gpu(monkeypatch)
    ok, why = trtb.tensorrt_available("fp16", "cuda")
    assert not ok and "no BuilderFlag.FP16" in why
    with pytest.raises(MissingCapability):
        trtb.preflight("fp16", "cuda")
    assert trtb.tensorrt_available("fp32", "cuda")[0]


def test_tensorrt_without_a_gpu_or_beyond_the_gpu_count_says_so(monkeypatch):
    import torch

    fakes.use_tensorrt(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, why = trtb.tensorrt_available("fp16", "cuda")
    assert not ok and "CUDA is not available" in why
    with pytest.raises(MissingCapability) as info:
        trtb.preflight("fp16", "cuda")
    assert info.value.lacks == "a CUDA GPU"
    fakes.use_gpu(monkeypatch, count=1)
    ok, why = trtb.tensorrt_available("fp16", "cuda:1")
    assert not ok and "only 1 CUDA device" in why


# ---- onnxruntime -------------------------------------------------------------------------

def test_onnxruntime_cuda_provider_is_read_from_the_library(monkeypatch):
    real = ortb.import_onnxruntime().get_available_providers()
    assert "CPUExecutionProvider" in real
    assert ortb.cuda_provider_available() == ("CUDAExecutionProvider" in real)
    fakes.use_onnxruntime_providers(monkeypatch, ["CUDAExecutionProvider",
                                                  "CPUExecutionProvider"])
    assert ortb.cuda_provider_available()
    fakes.use_onnxruntime_providers(monkeypatch, ["CPUExecutionProvider"])
    assert not ortb.cuda_provider_available()


def test_onnxruntime_int8_needs_the_cpu_provider_and_the_quantiser(monkeypatch):
    ortb.check_capability("int8", "cpu")  # the real library has both
    fakes.use_onnxruntime_providers(monkeypatch, ["CUDAExecutionProvider"])
    with pytest.raises(MissingCapability, match="CPUExecutionProvider"):
        ortb.check_capability("int8", "cpu")
    fakes.use_onnxruntime_providers(monkeypatch, ["CPUExecutionProvider"])
    with pytest.raises(MissingCapability, match="no CUDAExecutionProvider"):
        ortb.check_capability("fp32", "cuda")
    monkeypatch.setattr(ortb.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingCapability, match="onnxruntime.quantization"):
        ortb.check_capability("int8", "cpu")



# ---- what benchmark rows say about the CPU -------------------------------------------------

@pytest.mark.parametrize("isa, label", [
    (["avx2"], "AVX2, no AVX-512, no AVX-512 BF16, no VNNI, no AMX"),
    (["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"],
     "AVX2, AVX-512, AVX-512 BF16, VNNI, no AMX"),
    (["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"],
     "AVX2, AVX-512, AVX-512 BF16, VNNI, AMX")])
def test_isa_label_names_every_class_present_or_absent(isa, label):
    from clip_perception.core.devices import isa_label

    assert isa_label(isa) == label


@pytest.mark.parametrize("gpu,capability,fast", [("NVIDIA GeForce GTX 1080", (6, 1), False),
                                                 ("NVIDIA Tesla M60", (5, 2), False),
                                                 ("NVIDIA Jetson TX2", (6, 2), True),
                                                 ("NVIDIA Jetson Nano", (5, 3), True),
                                                 ("NVIDIA A100", (8, 0), True)])
def test_tensorrt_fp16_needs_a_gpu_with_fast_fp16(monkeypatch, gpu, capability, fast):
    """On a GPU with 1/64-rate (or no) fp16 an fp16 engine is slower than fp32: fp16 counts as
    missing there, fp32 stays available."""
    fakes.use_tensorrt(monkeypatch, "10.13.0")
    fakes.use_gpu(monkeypatch, gpu, capability)
    ok, why = trtb.tensorrt_available("fp16", "cuda")
    assert ok == fast, why
    if not fast:
        assert f"sm_{capability[0]}{capability[1]}) has no fast fp16" in why
        with pytest.raises(MissingCapability) as info:
            trtb.preflight("fp16", "cuda")
        assert "fast fp16" in info.value.lacks
    assert trtb.tensorrt_available("fp32", "cuda")[0]


@pytest.mark.parametrize("version,gpu,capability,why", [
    ("10.13.0", "NVIDIA GeForce GTX 1080", (6, 1), "has no fast fp16"),
    ("11.0.0", "NVIDIA Orin", (8, 7), "no BuilderFlag.FP16")])
def test_auto_on_a_gpu_without_tensorrt_fp16_takes_tensorrt_fp32(monkeypatch, tiny_clip,
                                                                 engine_cache_dir, version, gpu,
                                                                 capability, why):
    """``precision: auto`` on a GPU tries the table's tensorrt rows in order: where fp16 is
    missing (no fast fp16, or TensorRT 11 without weak typing) it builds fp32, not nothing.
    (The fake TensorRT cannot build: the background build is refused; what is checked is the
    decision, and that a CPU engine serves meanwhile.)"""
    fakes.use_tensorrt(monkeypatch, version)
    fakes.use_gpu(monkeypatch, gpu, capability)
    enc = create_image_encoder(tiny_clip, "auto", "auto", device="cuda",
                               cache_dir=engine_cache_dir)
    try:
        attempts = [(a.backend, a.precision, a.outcome, a.reason) for a in enc.selection.attempts]
        trt = [a for a in attempts if a[0] == "tensorrt"]
        assert trt[0][:3] == ("tensorrt", "fp16", "skipped") and why in trt[0][3], attempts
        assert trt[1][:3] == ("tensorrt", "fp32", "building"), attempts
        assert enc.wait(60) == "refused"  # the fake module has no Builder
    finally:
        enc.close()
