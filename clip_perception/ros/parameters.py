"""The node's parameters: one table (type, default, description, constraint, live or not) and
ONE validation function used both at startup and for every live change.

Parameters that need a restart are declared read-only, so ``ros2 param set`` on them is
rejected by rclpy ("Trying to set a read-only parameter") and ``ros2 param describe`` shows it.
Ranges that rclpy can check itself are also declared as descriptor ranges; everything else is
checked by ``validate`` and rejected with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..core.backends.engines import BACKENDS, PRECISIONS, request_problem
from ..core.devices import resolve_device
from ..core.image_decode import DEFAULT_MAX_IMAGE_PIXELS, SCALE16_AUTO, parse_scale16
from ..core.encoders import EncoderSpec
from ..core.model import default_pretrained
from ..core.preprocess import DEFAULT_RESIZE, RESIZE_METHODS
from .liveness import DEFAULT_STALL_TIMEOUT
from ..core.vocabulary import (ADAPTER_BLEND_FROM_FILE, DEFAULT_LANDMARK_TEMPLATES, LabelSetSpec,
                               SpecError, name_list_problem)
from ..core.memory.settings import MemorySettings, MemorySettingsError
from ..core.prompts import DEFAULT_TEMPLATES
from ..core.scoring import DEFAULT_SCORE_MODE, SCORE_MODES
from ..core.detections.settings import DetectionSettings
from .detection_parameters import detection_parameters, validate_detections, validate_live

RELIABILITY_CHOICES = ("best_effort", "reliable")

STRING, STRING_ARRAY, INTEGER, DOUBLE, BOOL = "string", "string[]", "integer", "double", "bool"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    default: Any
    description: str
    live: bool  # False: read-only, needs a restart
    constraints: str = ""
    int_range: Optional[tuple[int, int]] = None
    float_range: Optional[tuple[float, float]] = None


PARAMETERS: tuple[ParamSpec, ...] = (
    # ---- lifecycle (restart) ------------------------------------------------------------------
    ParamSpec("autostart", BOOL, True,
              "Configure and activate at start (an unmanaged node, as `ros2 launch` starts it); "
              "false: stay unconfigured until a lifecycle manager (or `ros2 lifecycle set`) "
              "drives ~/change_state.", False),
    # ---- model and backend (restart) --------------------------------------------------------
    ParamSpec("model", STRING, "ViT-B-32",
              "open_clip model: architecture name (ViT-B-32), 'hf-hub:org/repo' or "
              "'local-dir:/path' (open_clip folder format).", False, "non-empty"),
    ParamSpec("pretrained", STRING, "",
              "open_clip pretrained tag (datacomp_xl_s13b_b90k, openai, ...) or checkpoint file; "
              "empty = the model's own default (datacomp_xl_s13b_b90k for ViT-B-32/B-16/L-14, "
              "the best published zero-shot results; openai for other architecture names; none "
              "for hf-hub:/local-dir: models, whose weights come with them).", False),
    ParamSpec("backend", STRING, "auto", "Image encoder backend.", False,
              "one of " + ", ".join(BACKENDS)),
    ParamSpec("precision", STRING, "auto",
              "Image encoder precision. 'auto': tensorrt fp16 on a GPU; on a CPU the fastest, "
              "timed here, of the engines that pass verification on natural photos against "
              "torch fp32 (openvino bf16, onnxruntime int8, openvino/onnxruntime fp32).",
              False, "one of " + ", ".join(PRECISIONS)),
    ParamSpec("device", STRING, "auto", "Torch/ONNX device: 'auto' (cuda when a GPU is usable, "
              "else cpu), 'cpu', 'cuda' or 'cuda:N'.", False, "auto, cpu, cuda or cuda:N"),
    ParamSpec("engine_cache_dir", STRING, "",
              "Folder for exported ONNX files and TensorRT engines; empty = "
              "$CLIP_PERCEPTION_CACHE_DIR, else ~/.cache/clip_perception.", False),
    ParamSpec("encoder_threads", INTEGER, 0,
              "CPU threads for the onnxruntime image and text encoders; 0 = every core this "
              "process may use.", False, ">= 0",
              int_range=(0, 256)),
    ParamSpec("preprocess_resize", STRING, DEFAULT_RESIZE,
              "Frame resize before the encoder: 'fast' = torch's uint8 kernel for open_clip's "
              "antialiased bicubic (1-2 levels off PIL on a few pixels, 2-3.5x faster); 'exact' "
              "= PIL, as open_clip's own transform.", False, "fast or exact"),
    ParamSpec("max_batch", INTEGER, 8,
              "Most frames (one per camera) encoded in one encoder call.", False, "1..64",
              int_range=(1, 64)),
    # ---- inputs (restart) --------------------------------------------------------------------
    ParamSpec("image_topics", STRING_ARRAY, ["/camera/image_raw"],
              "Camera topics. A topic ending in '/compressed' is sensor_msgs/CompressedImage "
              "(JPEG/PNG), any other sensor_msgs/Image.", False, "non-empty, no duplicates"),
    ParamSpec("qos_reliability", STRING, "best_effort",
              "Reliability of the image subscriptions (best_effort = sensor data).", False,
              "best_effort or reliable"),
    ParamSpec("qos_depth", INTEGER, 5, "History depth of the image subscriptions.", False,
              "1..100", int_range=(1, 100)),
    ParamSpec("image16_scale", STRING, SCALE16_AUTO,
              "16-bit images (mono16, 16UC1, bayer_*16, rgb16): 'auto' shows each frame's own "
              "maximum as white; a number is the value shown as white (4095 for a 12-bit "
              "sensor, 65535 for the full range).", False, "'auto' or 1..65535"),
    ParamSpec("max_image_pixels", INTEGER, DEFAULT_MAX_IMAGE_PIXELS,
              "Compressed images (JPEG/PNG) larger than this many pixels are refused before "
              "decoding (a small PNG can decompress to gigabytes).", False, "1..1e9",
              int_range=(1, 1_000_000_000)),
    # ---- another detector's boxes (topics: restart; crop_padding, max_detections: live) ----
    *detection_parameters(ParamSpec, STRING_ARRAY, DOUBLE, INTEGER),
    # ---- label set (live) --------------------------------------------------------------------
    ParamSpec("labels", STRING_ARRAY, ["person", "chair", "door"],
              "Labels for ~/classification.", True, "non-empty, no blanks or duplicates"),
    ParamSpec("prompt_templates", STRING_ARRAY, list(DEFAULT_TEMPLATES),
              "Prompt templates; a label's embedding is the mean over its prompts.", True,
              "non-empty, each with '{}' exactly once"),
    ParamSpec("label_prompts", STRING_ARRAY, [],
              "Per-label prompt overrides 'label=prompt|prompt2' (replace the templates for "
              "that label).", True, "each names a label in 'labels'"),
    ParamSpec("top_k", INTEGER, 5, "Labels published per frame, best first.", True, ">= 1",
              int_range=(1, 1000)),
    ParamSpec("score_threshold", DOUBLE, 0.0,
              "If the frame's score (see score_mode) is below this, 'unknown' is published "
              "first, scored with that score.", True, "0..1", float_range=(0.0, 1.0)),
    ParamSpec("score_mode", STRING, DEFAULT_SCORE_MODE,
              "What score_threshold is compared with and what the scores are. 'softmax': "
              "probabilities over the labels, threshold on the best (its floor is 1/K, so a "
              "threshold means less as labels are added); 'neglabel': each label's probability "
              "against the negative words alone, threshold on the best (other labels do not "
              "enter it: the same meaning for 3 or 30 labels).", True,
              "one of " + ", ".join(SCORE_MODES)),
    ParamSpec("negative_labels", STRING_ARRAY, [],
              "score_mode 'neglabel': the bank of negative words, ideally words for what the "
              "camera may see that is none of the labels (each label's own name and synonyms "
              "are left out of its negatives); empty = the built-in bank of everyday nouns.",
              True,
              "no blanks/duplicates"),
    ParamSpec("landmarks", STRING_ARRAY, [],
              "Natural-language landmarks for ~/landmarks (published in this order, score = "
              "raw cosine). Empty: ~/landmarks is not published.", True, "no blanks/duplicates"),
    ParamSpec("landmark_templates", STRING_ARRAY, list(DEFAULT_LANDMARK_TEMPLATES),
              "Prompt templates for landmarks.", True, "non-empty, each with '{}' exactly once"),
    ParamSpec("landmark_smoothing", DOUBLE, 0.0,
              "EMA weight of the previous landmark score per camera (0 = none).", True, "[0, 1)",
              float_range=(0.0, 1.0)),
    ParamSpec("adapter_path", STRING, "",
              "Adapter head (.safetensors from train_adapter); empty = zero-shot only. Must be "
              "trained on this model and on exactly the current labels.", True,
              "existing adapter for this model and labels"),
    ParamSpec("adapter_blend", DOUBLE, ADAPTER_BLEND_FROM_FILE,
              "logits = (1-blend)*zero_shot + blend*adapter; -1 = the blend stored with the "
              "adapter.", True, "-1 or 0..1", float_range=(-1.0, 1.0)),
    # ---- work rate (live) --------------------------------------------------------------------
    ParamSpec("max_rate_hz", DOUBLE, 0.0,
              "Most encoder batches per second (each camera at most this often); 0 = as fast as "
              "possible.", True, ">= 0", float_range=(0.0, 1000.0)),
    # ---- place memory (restart); checks in core.memory.settings -----------------------------
    *(ParamSpec("memory." + name, kind, getattr(MemorySettings, name), text, False, rule)
      for name, kind, text, rule in (
          ("enabled", BOOL, "Store keyframes (embedding, pose at the image stamp, thumbnail) and "
           "serve ~/query_places, ~/clear_memory, ~/places/markers; with labelled boxes also "
           "objects: ~/query_objects, ~/objects/markers.", ""),
          ("uri", STRING, "Memory folder (Milvus Lite file <folder>/places.db), a '.db' file, or "
           "a Milvus server URI (http://host:19530; token from $MILVUS_TOKEN).", ""),
          ("collection", STRING, "Collection in the store (one per model and map).",
           "letters, digits, '_'"),
          ("fixed_frame", STRING, "Frame of the stored poses.", "non-empty"),
          ("pose_source", STRING, "'tf': tf2 lookup of the image's frame_id at its stamp; "
           "'topic': memory.pose_topic, interpolated at the stamp.", "tf or topic"),
          ("pose_topic", STRING, "Pose topic (in fixed_frame) when pose_source is 'topic'.", ""),
          ("pose_type", STRING, "Type of memory.pose_topic.",
           "odometry, pose_stamped or pose_with_covariance"),
          ("max_pose_gap", DOUBLE, "Largest gap (s) between the two poses bracketing an image "
           "stamp; a frame not bracketed is not stored and is counted.", "> 0"),
          ("tf_timeout", DOUBLE, "How long (s) a tf2 lookup may wait.", "> 0"),
          ("min_distance", DOUBLE, "New keyframe after moving this far (m).", ">= 0"),
          ("min_angle", DOUBLE, "New keyframe after turning this much (rad).", "0..pi"),
          ("novelty", DOUBLE, "New keyframe when the cosine to the camera's last keyframe is "
           "below this; 0 = off.", "0..1"),
          ("min_separation", DOUBLE, "Default grouping distance (m) of ~/query_places.", ">= 0"),
          ("thumbnail_size", INTEGER, "Longer side (px) of the stored JPEG thumbnail; 0 = none.",
           "0..1024"),
          ("object_merge_distance", DOUBLE, "A labelled box joins an object closer than this "
           "(m; without depth: seen from a pose this close) ...", ">= 0"),
          ("object_merge_similarity", DOUBLE, "... and more alike than this (cosine of the crop "
           "embedding to the object's mean); else it is a new object.", "-1..1"))),
    # ---- liveness (live) ---------------------------------------------------------------------
    ParamSpec("stall_timeout", DOUBLE, DEFAULT_STALL_TIMEOUT,
              "/diagnostics turns WARN when frames are waiting but none was processed for this "
              "many seconds.", True, "0.5..3600", float_range=(0.5, 3600.0)),
)
PARAMETERS_BY_NAME = {p.name: p for p in PARAMETERS}
LIVE_PARAMETERS = tuple(p.name for p in PARAMETERS if p.live)
RESTART_PARAMETERS = tuple(p.name for p in PARAMETERS if not p.live)


class ParameterError(SpecError):
    """A parameter value the node cannot honour; ``parameter`` names it, ``reason`` says why.

    The same shape as core's SpecError (a label-set setting is a parameter too), so callers
    can catch either.
    """


@dataclass(frozen=True)
class StartupSettings:
    """The restart-only parameters, validated."""

    model: str
    pretrained: str
    backend: str
    precision: str
    device: str
    engine_cache_dir: str
    encoder_threads: int
    preprocess_resize: str
    max_batch: int
    image_topics: tuple[str, ...]
    qos_reliability: str
    qos_depth: int
    autostart: bool
    image16_scale: Optional[float]  # None: each frame's own maximum
    max_image_pixels: int
    memory: MemorySettings = MemorySettings()
    detections: DetectionSettings = DetectionSettings()


@dataclass(frozen=True)
class LiveSettings:
    label_set: LabelSetSpec
    max_rate_hz: float
    stall_timeout: float
    crop_padding: float = DetectionSettings.crop_padding
    max_detections_per_frame: int = DetectionSettings.max_detections_per_frame


def _choice(name: str, value: str, choices) -> str:
    if value not in choices:
        raise ParameterError(name, f"got '{value}', expected one of {', '.join(choices)}")
    return value


def _range(name: str, value, low=None, high=None):
    """The descriptor ranges, re-checked so params files given at startup are covered too."""
    if (low is not None and value < low) or (high is not None and value > high):
        raise ParameterError(name, f"got {value}, expected {low if low is not None else '-inf'}"
                                   f"..{high if high is not None else 'inf'}")
    return value


def _memory(values: Mapping[str, Any]) -> MemorySettings:
    try:
        return MemorySettings.from_values(values)
    except MemorySettingsError as exc:
        raise ParameterError(exc.parameter, exc.reason) from None


def validate(values: Mapping[str, Any]) -> tuple[StartupSettings, LiveSettings]:
    """THE validation of all parameters. ``values``: name -> value for every declared parameter.

    Raises ParameterError(parameter, reason). Adapter compatibility with the model is checked by
    the node (it needs the loaded model); everything else is here.
    """
    missing = [p.name for p in PARAMETERS if p.name not in values]
    if missing:
        raise ParameterError(missing[0], "not set")
    v = values
    if not str(v["model"]).strip():
        raise ParameterError("model", "is empty; expected e.g. 'ViT-B-32' or 'local-dir:/path'")
    try:
        device = resolve_device(v["device"])
    except ValueError as exc:
        raise ParameterError("device", str(exc)) from None
    topics = tuple(v["image_topics"])
    if not topics:
        raise ParameterError("image_topics", "is empty; expected at least one camera topic")
    problem = name_list_problem(topics, allow_empty=False)
    if problem:
        raise ParameterError("image_topics", problem)
    try:
        scale16 = parse_scale16(v["image16_scale"])
    except ValueError as exc:
        raise ParameterError("image16_scale", str(exc)) from None
    model = v["model"].strip()
    startup = StartupSettings(
        model=model, pretrained=default_pretrained(model, v["pretrained"].strip()) or "",
        backend=_choice("backend", v["backend"], BACKENDS),
        precision=_choice("precision", v["precision"], PRECISIONS), device=device,
        engine_cache_dir=v["engine_cache_dir"],
        encoder_threads=_range("encoder_threads", int(v["encoder_threads"]), 0),
        preprocess_resize=_choice("preprocess_resize", v["preprocess_resize"], RESIZE_METHODS),
        max_batch=_range("max_batch", int(v["max_batch"]), 1, 64), image_topics=topics,
        qos_reliability=_choice("qos_reliability", v["qos_reliability"], RELIABILITY_CHOICES),
        qos_depth=_range("qos_depth", int(v["qos_depth"]), 1, 100), image16_scale=scale16,
        autostart=bool(v["autostart"]),
        max_image_pixels=_range("max_image_pixels", int(v["max_image_pixels"]), 1,
                                1_000_000_000), memory=_memory(v),
        detections=validate_detections(v, topics, ParameterError))
    problem = request_problem(startup.backend, startup.precision, startup.device)
    if problem:  # a backend x precision no engine of the table offers (engines.py)
        raise ParameterError("precision", problem)
    max_rate = _range("max_rate_hz", float(v["max_rate_hz"]), 0.0, 1000.0)
    try:
        spec = LabelSetSpec.from_values(
            labels=v["labels"], prompt_templates=v["prompt_templates"],
            label_prompts=v["label_prompts"], top_k=int(v["top_k"]),
            score_threshold=float(v["score_threshold"]), landmarks=v["landmarks"],
            landmark_templates=v["landmark_templates"],
            landmark_smoothing=float(v["landmark_smoothing"]),
            adapter_path=v["adapter_path"].strip(), adapter_blend=float(v["adapter_blend"]),
            score_mode=v["score_mode"], negative_labels=v["negative_labels"])
    except SpecError as exc:
        raise ParameterError(exc.parameter, exc.reason) from None
    stall = _range("stall_timeout", float(v["stall_timeout"]), 0.5, 3600.0)
    padding, max_detections = validate_live(v, ParameterError)
    return startup, LiveSettings(label_set=spec, max_rate_hz=max_rate, stall_timeout=stall,
                                 crop_padding=padding, max_detections_per_frame=max_detections)


def empty_arrays_as_string_arrays(params: list) -> list:
    """For a pre-set-parameters callback: an empty array of any type becomes an empty string
    array for string-array parameters. ``ros2 param set /node landmarks "[]"`` sends an empty
    *bool* array (YAML ``[]`` has no element type), which rclpy would refuse as the wrong type;
    whether the parameter may be empty is then ``validate``'s decision, with its reason."""
    from rclpy.parameter import Parameter

    array_types = (Parameter.Type.BYTE_ARRAY, Parameter.Type.BOOL_ARRAY,
                   Parameter.Type.INTEGER_ARRAY, Parameter.Type.DOUBLE_ARRAY)
    out = []
    for p in params:
        spec = PARAMETERS_BY_NAME.get(p.name)
        if spec is not None and spec.type == STRING_ARRAY and p.type_ in array_types \
                and len(p.value) == 0:
            p = Parameter(p.name, Parameter.Type.STRING_ARRAY, [])
        out.append(p)
    return out


def declare_parameters(node) -> dict[str, Any]:
    """Declare every parameter on ``node`` (descriptions, ranges, read-only); returns the values.

    Empty string-array defaults need care: rclpy infers the type of ``[]`` as a byte array, so
    those are declared by type and, when no override was given, set to a typed empty array; a
    read-only one (detection_topics, ...) is declared writable, set, then made read-only.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.parameter import Parameter

    types = {STRING: Parameter.Type.STRING, STRING_ARRAY: Parameter.Type.STRING_ARRAY,
             INTEGER: Parameter.Type.INTEGER, DOUBLE: Parameter.Type.DOUBLE,
             BOOL: Parameter.Type.BOOL}
    unset_arrays, read_only_later = [], {}
    for p in PARAMETERS:
        restart = "" if p.live else " Read-only: restart the node to change it."
        descriptor = ParameterDescriptor(
            name=p.name, type=types[p.type].value, description=p.description + restart,
            additional_constraints=p.constraints, read_only=not p.live)
        if p.int_range:
            descriptor.integer_range = [IntegerRange(from_value=p.int_range[0],
                                                     to_value=p.int_range[1], step=0)]
        if p.float_range:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=p.float_range[0], to_value=p.float_range[1], step=0.0)]
        if p.type == STRING_ARRAY and not p.default:
            if not p.live:
                read_only_later[p.name] = descriptor
                descriptor = ParameterDescriptor(
                    name=p.name, type=descriptor.type, description=descriptor.description,
                    additional_constraints=descriptor.additional_constraints)
            node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, descriptor)
            if node.get_parameter_or(p.name).type_ == Parameter.Type.NOT_SET:
                unset_arrays.append(p.name)
        else:
            node.declare_parameter(p.name, p.default, descriptor)
    for name in unset_arrays:
        node.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, [])])
    for name, descriptor in read_only_later.items():
        node.set_descriptor(name, descriptor)
    return {p.name: node.get_parameter(p.name).value for p in PARAMETERS}


def encoder_spec(settings: StartupSettings) -> EncoderSpec:
    """The node's engine parameters as the core spec every tool opens its engines with."""
    return EncoderSpec(model=settings.model, pretrained=settings.pretrained or None,
                       backend=settings.backend, precision=settings.precision,
                       device=settings.device, cache_dir=settings.engine_cache_dir or None,
                       threads=settings.encoder_threads, max_batch=settings.max_batch,
                       preprocess_resize=settings.preprocess_resize)
