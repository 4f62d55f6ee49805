"""The ROS 2 node: cameras in, vision_msgs/Classification out, live labels, diagnostics.

A managed (lifecycle) node, each transition a few named steps (ros2/demos lifecycle_py):
configure loads the model, engines and text embeddings and creates the outputs; activate
starts the worker and the camera subscriptions; deactivate stops exactly those (nothing is
unloaded); cleanup releases what configure made. ``autostart`` (default) runs configure +
activate at start, so an unmanaged ``ros2 launch`` works as before.

The node converts messages and wires core.pipeline together (all per-frame logic is there).
Threads: the executor (subscriptions store the newest message per camera; parameter and
lifecycle services; the 1 Hz diagnostics timer); the worker (decode -> preprocess -> encode ->
score -> publish); the label-set builder; the debug-image renderer while someone watches.
"""
from __future__ import annotations

import functools
import threading
import traceback
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..core.backends import BackendUnavailable
from ..core.encoders import Encoders, open_encoders
from ..core.memory import PlaceMemoryError
from ..core.model import ModelLoadError
from ..core.pipeline import LatestFrameSlots, PerceptionWorker, PipelineStats
from ..core.vocabulary import LabelSetBuilder, LabelSetManager, LabelSetSpec, SpecError
from .throttle import WarningThrottle
from . import diagnostics, logging_bridge
from .conversions import ImageConverter
from .intake import FrameIntake, IntakeSpinner
from .liveness import LivenessMonitor
from .outputs import NodeOutputs
from ..core.pipeline.preparation import prepare_ahead
from .reporting import pipeline_state, summary
from . import memory as place_memory
from .detections import DetectionInterface, detection_statuses, encode_in_chunks
from .parameters import (StartupSettings, declare_parameters, empty_arrays_as_string_arrays,
                         encoder_spec, validate)

NODE_NAME = "clip_perception"
BAD_FRAME_WARNING_PERIOD = 5.0  # seconds between bad-frame warnings, per camera
# Deactivate/shutdown wait this long for an encode in flight, then abandon it: its results are
# dropped (the node is no longer active), the daemon thread ends when the call returns.
STOP_TIMEOUT = 3.0
CONFIGURE_ERRORS = (ModelLoadError, BackendUnavailable, SpecError, PlaceMemoryError)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def _transition(callback):
    """Under the transition lock; logs an unexpected exception's traceback (rclpy logs none)."""
    @functools.wraps(callback)
    def run(self, state):
        with self._transition_lock:
            try:
                return callback(self, state)
            except Exception:
                if not self.context.ok():  # SIGINT shut the middleware down mid-transition
                    raise
                self.last_failure = traceback.format_exc(limit=3).strip().splitlines()[-1]
                self.get_logger().error(f"{callback.__name__} raised:\n"
                                        + traceback.format_exc())
                raise
    return run


class ClipPerceptionNode(LifecycleNode):
    """Raises ParameterError when its parameters are invalid; configure failures (model,
    backend, adapter) return FAILURE with the reason logged and kept in ``last_failure``."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._param_lock = threading.Lock()
        # Held by every transition; the diagnostics timer never waits for it (configure takes
        # seconds) and skips a tick instead.
        self._transition_lock = threading.RLock()
        self.state, self.last_failure = "unconfigured", ""
        # Made by configure (None before and after cleanup) ...
        self.clip = self.encoder = self.preprocessor = self.text_encoder = None
        self.encoders: Optional[Encoders] = None
        self.label_sets: Optional[LabelSetManager] = None
        self._label_set_builder: Optional[LabelSetBuilder] = None
        self.stats: Optional[PipelineStats] = None
        self.outputs: Optional[NodeOutputs] = None
        self.memory: Optional[place_memory.PlaceMemoryInterface] = None
        self.detections: Optional[DetectionInterface] = None  # with detection_topics
        # ... and by activate (None while inactive). Set first: rclpy destroys half-built nodes.
        self.slots: Optional[LatestFrameSlots] = None
        self.worker: Optional[PerceptionWorker] = None
        self.intake: Optional[FrameIntake] = None
        self._intake_spinner: Optional[IntakeSpinner] = None
        self._diagnostics_timer = None
        self._log_handler = logging_bridge.attach(self.get_logger())
        values = declare_parameters(self)
        settings, live = validate(values)
        self.settings: StartupSettings = settings
        self._accepted_values: dict[str, Any] = dict(values)  # as validated, incl. pending
        self._accepted_spec: LabelSetSpec = live.label_set
        self._max_rate_hz = live.max_rate_hz

        cameras = list(settings.image_topics)
        self.converter = ImageConverter(scale16=settings.image16_scale,
                                        max_pixels=settings.max_image_pixels)
        self._decoders = {topic: self.converter.for_topic(topic) for topic in cameras}
        self._bad_frame_throttle = WarningThrottle(BAD_FRAME_WARNING_PERIOD)
        self._error_throttle = WarningThrottle(BAD_FRAME_WARNING_PERIOD)
        self.liveness = LivenessMonitor(live.stall_timeout)

        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_pre_set_parameters_callback(empty_arrays_as_string_arrays)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(
            1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    def autostart(self) -> bool:
        """configure + activate, as an unmanaged node; False (reason in last_failure) if not."""
        return (self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS)

    # ---- lifecycle transitions: each calls named steps, nothing inline -------------------------
    @_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_models()
            self._start_label_sets()
            self._create_outputs()
            self.detections = DetectionInterface.for_node(self)  # None: no detection_topics
            self._start_memory()
        except CONFIGURE_ERRORS as exc:
            self.last_failure = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return FAILURE
        self.state = "inactive"
        self.get_logger().info("configured: " + summary(
            self.clip, self.encoder, self.text_encoder, self.label_sets.current,
            self.converter.name, self.preprocessor.resize))
        return SUCCESS

    @_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._start_worker()
        self._start_intake()
        self.state = "active"
        self.get_logger().info("active: listening on " + self.intake.describe())
        return SUCCESS

    @_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.state = "inactive"  # first: results still in flight are dropped, not published
        self._stop_intake()
        self._stop_worker()
        self.get_logger().info("deactivated: intake and publishing stopped, model kept")
        return SUCCESS

    @_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state = "unconfigured"
        self.get_logger().info("cleaned up: model, engines and outputs released")
        return SUCCESS

    @_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._shut_down()

    @_transition
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.context.ok():
            self.get_logger().error(f"error during a transition from {state.label}; releasing")
        return self._shut_down("unconfigured")  # SUCCESS: ready to configure again

    def _shut_down(self, final_state: str = "finalized") -> TransitionCallbackReturn:
        self.state = final_state
        self._stop_intake()
        self._stop_worker()
        self._release()
        return SUCCESS

    def _release(self) -> None:
        self._stop_memory()
        self.detections = DetectionInterface.release(self.detections)
        self._release_outputs()
        self._stop_label_sets()
        self._release_models()

    # ---- configure / cleanup steps ---------------------------------------------------------
    def _load_models(self) -> None:
        # core.encoders: the same engines train_adapter and the memory tools open for the same
        # options. Label changes use the ONNX text tower when it imports and matches torch.
        opened = open_encoders(encoder_spec(self.settings))
        self.encoders = opened
        self.clip, self.encoder = opened.clip, opened.image_encoder
        self.preprocessor, self.text_encoder = opened.preprocessor, opened.text_encoder
        self._prompt_cache = opened.prompt_cache

    def _release_models(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
        self.clip = self.encoder = self.preprocessor = self.text_encoder = None
        self.encoders = None

    def _start_label_sets(self) -> None:
        # Builds use the model of this configure, even one abandoned by cleanup/shutdown. The
        # first one runs here, so a bad adapter fails configure with its reason.
        builder = LabelSetBuilder(self.clip, self._prompt_cache)
        with self._param_lock:  # the values accepted so far, also while unconfigured
            self.label_sets = LabelSetManager(builder.build,
                                              builder.build(self._accepted_spec, 1))
            self._label_set_builder = builder
        self.stats = PipelineStats(list(self.settings.image_topics))

    def _stop_label_sets(self) -> None:
        with self._param_lock:
            manager, self.label_sets = self.label_sets, None
            self._label_set_builder = None
        if manager is not None:
            manager.close(STOP_TIMEOUT)  # a build in flight ends on its daemon thread, unused

    def _create_outputs(self) -> None:
        self.outputs = NodeOutputs(self, active=lambda: self.state == "active",
                                   decode=self._decode, on_error=self._warn_pipeline_error)
        self.outputs.publish_label_info(self.label_sets.current)

    def _release_outputs(self) -> None:
        outputs, self.outputs = self.outputs, None
        if outputs is not None:
            outputs.close()

    def _start_memory(self) -> None:
        """memory.enabled: keyframes of published batches, objects of labelled boxes."""
        self.memory = place_memory.PlaceMemoryInterface.for_node(self)  # None: not enabled

    def _stop_memory(self) -> None:
        memory, self.memory = self.memory, None
        if memory is not None:
            memory.close()  # records what is queued, closes the store

    # ---- activate / deactivate steps -------------------------------------------------------
    def _start_worker(self) -> None:
        # Objects, not attributes: an encode abandoned by deactivate may return after cleanup.
        label_sets, outputs, encoder = self.label_sets, self.outputs, self.encoder
        memory, detections = self.memory, self.detections

        def publish(results) -> None:
            outputs.publish(results, label_sets.current)
            if memory is not None and self.state == "active":
                memory.observe(place_memory.observations(results))
        self.slots = LatestFrameSlots(list(self.settings.image_topics), self.stats)
        self.worker = PerceptionWorker(
            self.slots, self.stats, lambda: label_sets.current, self._decode,
            self.preprocessor.resize_crop, self.preprocessor.normalize,
            encode_in_chunks(encoder.encode_images, self.settings.max_batch), publish,
            max_batch=self.settings.max_batch, max_rate_hz=self._max_rate_hz,
            on_bad_frame=self._warn_bad_frame, on_error=self._warn_pipeline_error,
            prepare_ahead=lambda: prepare_ahead(encoder)[0],  # the share only explains it
            batch_limit=lambda: None if encoder.batches else 1, companion=detections)
        self.worker.start()

    def _stop_worker(self) -> None:
        worker, self.worker, self.slots = self.worker, None, None
        if worker is not None:
            worker.stop(STOP_TIMEOUT)

    def _start_intake(self) -> None:
        # Camera subscriptions on a helper node with its own executor thread (ros/intake.py):
        # nothing this node's executor runs (parameters, services, timers) delays intake.
        self._intake_spinner = IntakeSpinner(self)
        self.intake = FrameIntake(self._intake_spinner.node, list(self.settings.image_topics),
                                  self.slots, self.converter, self.settings.qos_reliability,
                                  self.settings.qos_depth, resolve=self._intake_spinner.resolve,
                                  on_frame=self.detections and self.detections.inputs.on_frame)
        if self.detections is not None:  # arrays, depth, camera_info beside the cameras
            self.detections.subscribe(self._intake_spinner, self.settings.qos_reliability,
                                      self.settings.qos_depth)
        self._intake_spinner.start()

    def _stop_intake(self) -> None:
        spinner, self._intake_spinner, self.intake = self._intake_spinner, None, None
        if spinner is not None:
            spinner.close()  # its executor, then the helper node and its subscriptions

    # ---- parameters ----------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate the whole parameter set as it would be; on success start the new label set.

        Read-only (restart) parameters never get here: rclpy rejects them first. While
        unconfigured the values are only validated; configure builds from them. An adapter is
        checked here by its metadata and tensor header only; its tensors are loaded and checked
        by the background build, whose failure is reported like any failed build.
        """
        changed = {p.name for p in params}
        with self._param_lock:
            candidate = dict(self._accepted_values)
            candidate.update({p.name: p.value for p in params})
            try:
                _, live = validate(candidate)
                spec = live.label_set
                rebuild = self.label_sets is not None and (
                    spec != self._accepted_spec or "adapter_path" in changed
                    or self._last_build_failed())  # adapter_path set again: re-read the file
                if rebuild:
                    self._label_set_builder.check(spec)
            except SpecError as exc:  # ParameterError is a SpecError
                return SetParametersResult(successful=False, reason=str(exc))
            self._accepted_values = candidate
            self._accepted_spec = spec
            self._max_rate_hz = live.max_rate_hz
            self.liveness.stall_timeout = live.stall_timeout
            if self.worker is not None:
                self.worker.max_rate_hz = live.max_rate_hz
            if rebuild:
                version = self.label_sets.request(spec)
                self.get_logger().info(f"parameters {sorted(changed)} accepted; building label "
                                       f"set v{version} in the background")
        return SetParametersResult(successful=True)

    def _pipeline_state(self):
        """What reporting needs of this node, handed over (reporting reads no node fields)."""
        return pipeline_state(
            clip=self.clip, encoder=self.encoder, text_encoder=self.text_encoder,
            converter_name=self.converter.name, label_sets=self.label_sets, stats=self.stats,
            liveness=self.liveness, lifecycle_state=self.state,
            worker_alive=self.worker is None or self.worker.alive,
            preparation_share=self.worker.planner.preparation_share() if self.worker else None,
            max_rate_hz=self._max_rate_hz, max_batch=self.settings.max_batch,
            build_failed=self._last_build_failed(),
            debug_images=self.outputs.debug.rendered if self.outputs else 0)

    def _last_build_failed(self) -> bool:
        """The newest label-set build failed: the same values set again must retry it."""
        failed = self.label_sets.failed_version
        return failed is not None and failed > self.label_sets.current.version

    # ---- per frame (worker thread) -----------------------------------------------------------
    def _decode(self, camera: str, frame):
        """A SerializedFrame of ``camera`` -> RGB (worker, debug image); kept for boxes' crops."""
        if self.detections is not None and self.detections.wants(camera):
            return frame.rgb(self._decoders[camera])
        return self._decoders[camera](frame.message)

    def _warn_bad_frame(self, camera: str, reason: str) -> None:
        if self._bad_frame_throttle.allow(camera):
            suppressed = self._bad_frame_throttle.take_suppressed(camera)
            more = f" ({suppressed} more since the last warning)" if suppressed else ""
            self.get_logger().warning(f"bad frame on {camera}: {reason}{more}")

    def _warn_pipeline_error(self, reason: str) -> None:
        if not self.context.ok():  # shutting down: the middleware is gone, not the pipeline
            return
        if self._error_throttle.allow("pipeline"):
            suppressed = self._error_throttle.take_suppressed("pipeline")
            more = f" ({suppressed} more since the last error log)" if suppressed else ""
            self.get_logger().error(reason + more)

    # ---- diagnostics -------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if not self._transition_lock.acquire(blocking=False):
            return  # a transition is running; the next tick reports its outcome
        try:
            self._publish_diagnostics_locked()
        except Exception:  # a reporting bug must not stop the executor (services, intake)
            self.get_logger().error("diagnostics failed:\n" + traceback.format_exc(),
                                    throttle_duration_sec=10.0)
        finally:
            self._transition_lock.release()

    def _publish_diagnostics_locked(self) -> None:
        name = self.get_fully_qualified_name()
        if self.label_sets is None or self.stats is None:
            statuses = [diagnostics.lifecycle_status(name, self.state, self.last_failure)]
        else:
            if self.outputs is not None:
                self.outputs.publish_label_info(self.label_sets.current)
            statuses = diagnostics.build_statuses(name, *self._pipeline_state())
            if self.memory is not None:
                statuses.append(self.memory.diagnostic_status(name))
            statuses += detection_statuses(name, self.detections)
        self.diagnostics_pub.publish(
            diagnostics.diagnostic_array(statuses, self.get_clock().now().to_msg()))

    def destroy_node(self):
        """Whatever the state (SIGINT arrives in any): stop intake and the worker, release."""
        if self._diagnostics_timer is not None:
            self._diagnostics_timer.cancel()
        with self._transition_lock:
            self._shut_down()
        logging_bridge.detach(self._log_handler)
        super().destroy_node()
        # rclpy (9.1.2) leaves the lifecycle state machine to the garbage collector; until then it
        # keeps ~/change_state & co. and the DDS participant alive in the graph, a second server
        # of the same name for anyone who starts this node again in the process.
        self._state_machine.destroy_when_not_in_use()
