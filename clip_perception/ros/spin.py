"""Spinning an executor until SIGINT shuts the middleware down, for the node and its intake."""
from __future__ import annotations


def spin_until_shutdown(executor, context) -> None:
    """``executor.spin()``, returning when the context is shut down (SIGINT, ``ros2 launch``).

    rclpy raises ``ExternalShutdownException`` when it sees the shutdown between two waits,
    but a shutdown that lands while the executor builds its wait set raises ``RCLError``
    ("the given context is not valid") instead: measured in CI as a traceback at Ctrl-C.
    Either is a clean stop when the context is no longer ok; an ``RCLError`` while the
    context is still ok is a real failure and propagates.
    """
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except RCLError:
        if context.ok():
            raise
