"""The ROS 2 node: cameras in, vision_msgs/Classification out, live labels, diagnostics.

The node converts messages and wires core.perception together; all per-frame logic lives
there. Threads: the executor runs subscription callbacks (they only store the newest message
per camera), parameter services and the 1 Hz diagnostics timer; core.perception's worker
thread does decode -> preprocess -> encode -> score -> publish; its label-set thread
re-encodes prompts after a live change.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ..core.adapter import AdapterHead
from ..core.backends import create_image_encoder, encoder_diagnostics
from ..core.devices import cpu_count, is_cuda
from ..core.backends.swapping import REFUSED
from ..core.memory import ModelIdentity
from ..core.model import load_clip
from ..core.pipeline import FrameResult, LatestFrameSlots, PerceptionWorker, PipelineStats
from ..core.vocabulary import (LabelSet, LabelSetManager, LabelSetSpec, SpecError, build_label_set,
                               count_prompts, load_checked_adapter)
from .throttle import WarningThrottle
from ..core.preprocess import Preprocessor
from ..core.prompts import PromptEmbeddingCache
from ..core.backends.text_selection import create_text_encoder
from . import diagnostics, logging_bridge
from .conversions import ImageConverter, classification_message, landmarks_message
from .intake import FrameIntake, IntakeSpinner
from .parameters import (StartupSettings, declare_parameters, empty_arrays_as_string_arrays,
                         validate)
from . import memory as place_memory

NODE_NAME = "clip_perception"
BAD_FRAME_WARNING_PERIOD = 5.0  # seconds between bad-frame warnings, per camera


class ClipPerceptionNode(Node):
    """Raises ParameterError, ModelLoadError, BackendUnavailable or SpecError when it cannot
    start; the message says what was given and what was expected."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._log_handler = logging_bridge.attach(self.get_logger())
        values = declare_parameters(self)
        settings, live = validate(values)
        self.settings: StartupSettings = settings
        log = self.get_logger()

        self.clip = load_clip(settings.model, settings.pretrained or None, settings.device)
        self.encoder = self._create_encoder(settings)
        self.preprocessor = Preprocessor(self.clip.preprocess)
        # Label changes are the slow path on CPU: the ONNX text tower (exported once per model
        # into the engine cache) when it imports and matches torch, else torch (logged).
        self.text_encoder = create_text_encoder(
            self.clip, "auto", cache_dir=settings.engine_cache_dir or None,
            threads=settings.encoder_threads)
        self._prompt_cache = PromptEmbeddingCache(self.text_encoder.encode)
        adapter = self._checked_adapter(live.label_set)
        initial = self._build_label_set(live.label_set, adapter, 1)
        self.label_sets = LabelSetManager(self._build_label_set, initial)
        self._accepted_values: dict[str, Any] = dict(values)  # as validated, incl. pending
        self._accepted_adapter: Optional[AdapterHead] = adapter
        self._accepted_spec: LabelSetSpec = live.label_set
        self._param_lock = threading.Lock()

        cameras = list(settings.image_topics)
        self.stats = PipelineStats(cameras)
        self.slots = LatestFrameSlots(cameras, self.stats)
        self.converter = ImageConverter(scale16=settings.image16_scale,
                                        max_pixels=settings.max_image_pixels)
        self._bad_frame_throttle = WarningThrottle(BAD_FRAME_WARNING_PERIOD)
        self._error_throttle = WarningThrottle(BAD_FRAME_WARNING_PERIOD)

        from vision_msgs.msg import Classification
        from diagnostic_msgs.msg import DiagnosticArray

        results_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.classification_pub = self.create_publisher(Classification, "~/classification",
                                                         results_qos)
        self.landmarks_pub = self.create_publisher(Classification, "~/landmarks", results_qos)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.worker = PerceptionWorker(
            self.slots, self.stats, lambda: self.label_sets.current, self._decode,
            self.preprocessor.resize_crop, self.preprocessor.normalize,
            self.encoder.encode_images, self._publish, max_batch=settings.max_batch,
            max_rate_hz=live.max_rate_hz, on_bad_frame=self._warn_bad_frame,
            on_error=self._warn_pipeline_error,
            prepare_ahead=lambda: self._prepare_ahead()[0])
        self.memory = self._start_memory(settings) if settings.memory.enabled else None

        # Camera subscriptions on their own node and executor thread (ros/intake.py): nothing
        # this node's executor runs (parameters, services, timers) delays frame intake.
        self._intake_spinner = IntakeSpinner(self)
        self.intake = FrameIntake(self._intake_spinner.node, cameras, self.slots,
                                  self.converter, settings.qos_reliability, settings.qos_depth)
        self.add_pre_set_parameters_callback(empty_arrays_as_string_arrays)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(
            1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.worker.start()
        self._intake_spinner.start()
        log.info(f"model {self.clip.identifier} ({self.clip.image_size}px, "
                 f"{self.clip.embed_dim}-d), backend {self.encoder.describe()}, "
                 f"text {self.text_encoder.describe()}, "
                 f"{len(initial.labels)} labels, {len(initial.landmarks)} landmarks, "
                 f"adapter {initial.spec.adapter_path or '(none)'}, images via "
                 f"{self.converter.name}")
        log.info("listening on " + self.intake.describe())

    # ---- construction helpers ----------------------------------------------------------------
    def _create_encoder(self, settings: StartupSettings):
        return create_image_encoder(
            self.clip, backend=settings.backend, precision=settings.precision,
            device=settings.device, cache_dir=settings.engine_cache_dir or None,
            threads=settings.encoder_threads, max_batch=settings.max_batch)

    def _start_memory(self, settings: StartupSettings) -> "place_memory.PlaceMemoryInterface":
        """Issue 12: keyframes of every published batch; queries encoded like landmarks."""
        def texts(t):
            return self._prompt_cache.ensemble(t, self.label_sets.current.spec.landmark_templates)

        def image(msg):
            return self.encoder.encode_images(self.preprocessor([self.converter.image_to_rgb(msg)]))

        return place_memory.PlaceMemoryInterface(
            self, settings.memory, ModelIdentity.of(self.clip), texts, image)

    def _prepare_ahead(self) -> tuple[bool, str]:
        """Whether the worker's preparer may decode + preprocess frames during an encode.

        Asked per preparation: a swapped-in TensorRT engine moves the encoder to the GPU.
        """
        device = str(self.encoder.device)
        if is_cuda(device):
            return True, f"encoder on {device}; CPU preprocessing overlaps it"
        cores = cpu_count()
        threads = self.settings.encoder_threads
        if self.encoder.name == "onnxruntime" and 0 < threads < cores:
            return True, f"encoder uses {threads} of {cores} cores"
        # Measured (benchmarks/NODE_RESULTS.md): preparing alongside an encoder that keeps
        # every core busy only competes with it for the CPU; the serial path is as fast.
        return False, f"encoder on {device} uses all {cores} cores"

    def _checked_adapter(self, spec: LabelSetSpec) -> Optional[AdapterHead]:
        if not spec.adapter_path:
            return None
        return load_checked_adapter(spec.adapter_path, spec.labels,
                                    lambda: self.clip.weights_hash, self.clip.embed_dim,
                                    self.clip.identifier)

    def _build_label_set(self, spec: LabelSetSpec, adapter: Optional[AdapterHead],
                         version: int) -> LabelSet:
        start = time.perf_counter()
        label_set = build_label_set(spec, self._prompt_cache, self.clip.logit_scale,
                                    self.clip.embed_dim, version, adapter)
        self.get_logger().info(
            f"label set v{version} ready: {len(spec.labels)} labels, {len(spec.landmarks)} "
            f"landmarks, {count_prompts(spec)} prompts, "
            f"{(time.perf_counter() - start) * 1000:.0f} ms")
        return label_set

    # ---- parameters ----------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate the whole parameter set as it would be; on success start the new label set.

        Read-only (restart) parameters never get here: rclpy rejects them first.
        """
        changed = {p.name for p in params}
        with self._param_lock:
            candidate = dict(self._accepted_values)
            candidate.update({p.name: p.value for p in params})
            try:
                _, live = validate(candidate)
                spec = live.label_set
                previous = self._accepted_spec
                adapter = self._accepted_adapter
                reload_adapter = "adapter_path" in changed or spec.labels != previous.labels
                if reload_adapter:
                    adapter = self._checked_adapter(spec)
            except SpecError as exc:  # ParameterError is a SpecError
                return SetParametersResult(successful=False, reason=str(exc))
            self._accepted_values = candidate
            self._accepted_adapter = adapter
            self._accepted_spec = spec
            self.worker.max_rate_hz = live.max_rate_hz
            if spec != previous or reload_adapter or self._last_build_failed():
                version = self.label_sets.request(spec, adapter)
                self.get_logger().info(f"parameters {sorted(changed)} accepted; building label "
                                       f"set v{version} in the background")
        return SetParametersResult(successful=True)

    def _last_build_failed(self) -> bool:
        """The newest label-set build failed: the same values set again must retry it."""
        failed = self.label_sets.failed_version
        return failed is not None and failed > self.label_sets.current.version

    # ---- per frame (worker thread) -----------------------------------------------------------
    def _decode(self, camera: str, frame):
        return self.intake.decode(camera, frame)

    def _publish(self, results: list[FrameResult]) -> None:
        for r in results:
            header = self.intake.header(r.frame.payload)
            self.classification_pub.publish(classification_message(r, header))
            if r.landmarks:
                self.landmarks_pub.publish(landmarks_message(r, header))
        if self.memory is not None:
            self.memory.observe(place_memory.observations(results))

    def _warn_bad_frame(self, camera: str, reason: str) -> None:
        if self._bad_frame_throttle.allow(camera):
            suppressed = self._bad_frame_throttle.take_suppressed(camera)
            more = f" ({suppressed} more since the last warning)" if suppressed else ""
            self.get_logger().warning(f"bad frame on {camera}: {reason}{more}")

    def _warn_pipeline_error(self, reason: str) -> None:
        if self._error_throttle.allow("pipeline"):
            suppressed = self._error_throttle.take_suppressed("pipeline")
            more = f" ({suppressed} more since the last error log)" if suppressed else ""
            self.get_logger().error(reason + more)

    # ---- diagnostics -------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        current = self.label_sets.current
        error = ""
        failed = self.label_sets.failed_version
        if failed is not None and failed > current.version:
            error = self.label_sets.last_error + f"; serving label set v{current.version}"
        ahead, why = self._prepare_ahead()
        info = diagnostics.PipelineInfo(
            model=self.clip.identifier, backend=self.encoder.describe(),
            backend_details=self._backend_details(), backend_warning=self._backend_warning(),
            converter=self.converter.name, label_set_version=current.version,
            labels=len(current.labels), landmarks=len(current.landmarks),
            adapter=current.spec.adapter_path, adapter_blend=current.adapter_blend,
            max_rate_hz=self.worker.max_rate_hz, max_batch=self.settings.max_batch,
            rebuilding=self.label_sets.busy, label_set_error=error,
            prepare_ahead="{} ({})".format("on" if ahead else "off", why))
        statuses = diagnostics.build_statuses(self.get_fully_qualified_name(),
                                              self.stats.snapshot(), info, time.monotonic())
        if self.memory is not None:
            statuses.append(self.memory.diagnostic_status(self.get_fully_qualified_name()))
        self.diagnostics_pub.publish(
            diagnostics.diagnostic_array(statuses, self.get_clock().now().to_msg()))

    def _backend_details(self) -> tuple[tuple[str, str], ...]:
        """Image backend: requested, skipped (with reasons), engine build; text backend."""
        values = [(k, v) for k, v in encoder_diagnostics(self.encoder).items()
                  if k != "image backend"]  # same as the "backend" key
        values.append(("text backend", self.text_encoder.describe()))
        values += [(f"text skipped {i + 1}", reason)
                   for i, reason in enumerate(self.text_encoder.selection)]
        return tuple(values)

    def _backend_warning(self) -> str:
        status = getattr(self.encoder, "status", None)
        if not callable(status):
            return ""
        s = status()
        if s.state != REFUSED:
            return ""
        return f"{s.target} refused ({s.reason}); serving with {s.serving}"

    def destroy_node(self):
        if getattr(self, "_intake_spinner", None) is not None:  # absent if __init__ failed early
            self._intake_spinner.close()
        self.worker.stop()
        if getattr(self, "memory", None) is not None:  # absent when the memory refused to start
            self.memory.close()
        self.label_sets.close()
        self.encoder.close()
        logging_bridge.detach(self._log_handler)
        return super().destroy_node()
