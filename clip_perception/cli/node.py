"""``clip_perception_node``: run the node (``--ros-args --params-file ...`` like any ROS node)."""
from __future__ import annotations

import signal
import sys


def main(argv=None) -> int:
    # OMP_WAIT_POLICY is set by the cli package (cli/__init__.py), before torch loads.
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.signals import SignalHandlerOptions, install_signal_handlers

    from ..core.allocator import keep_large_buffers
    from ..core.memory import PlaceMemoryError
    from ..core.vocabulary import SpecError
    from ..ros.node import NODE_NAME, ClipPerceptionNode
    from ..ros.parameters import ParameterError
    from ..ros.spin import spin_until_shutdown

    keep_large_buffers()  # before any frame buffer is allocated
    try:
        # No rclpy signal handlers until the node runs: Ctrl-C while the model loads or an
        # engine builds (configure: seconds to minutes) raises KeyboardInterrupt, handled
        # below, instead of shutting the middleware down under the running transition.
        # (Set explicitly: a shell starting us in the background leaves SIGINT ignored, and
        # rclpy's own handler, installed later, would not be either.)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rclpy.init(args=sys.argv if argv is None else argv,
                   signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as exc:  # malformed --ros-args: say so, no traceback
        print(f"clip_perception_node: invalid arguments: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            node = ClipPerceptionNode()
        except (ParameterError, SpecError, PlaceMemoryError) as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 2
        except rclpy.exceptions.InvalidParameterTypeException as exc:
            # e.g. "score_threshold: 0" (integer) in a params file for a double parameter
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 2
        # Unmanaged (autostart): a node that cannot configure exits with the reason, as before
        # the lifecycle. Managed: it waits, unconfigured, for ~/change_state.
        try:
            started = not node.settings.autostart or node.autostart()
        except KeyboardInterrupt:
            node.destroy_node()
            return 0
        if not started:
            node.destroy_node()
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {node.last_failure}")
            return 2
        install_signal_handlers(SignalHandlerOptions.ALL)
        # Threads: parameter and lifecycle services, the diagnostics timer and the memory's
        # services run in separate callback groups, so none waits for another; camera frames
        # arrive on the node's own intake thread (ros/intake.py), inference on its worker.
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        try:
            spin_until_shutdown(executor, node.context)
        except KeyboardInterrupt:
            pass
        finally:
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
