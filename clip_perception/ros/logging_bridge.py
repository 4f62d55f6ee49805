"""Route the core's Python logging (backend choice and skips, label-set build failures, engine
builds) into the node's ROS logger, so it reaches the console, /rosout and log files like
every other message of the node instead of Python's bare stderr fallback."""
from __future__ import annotations

import logging

PACKAGE_LOGGER = "clip_perception"


class RosLogHandler(logging.Handler):
    def __init__(self, ros_logger, level: int = logging.INFO):
        super().__init__(level)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self.ros_logger.fatal(text)
            elif record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # logging must never take the node down
            self.handleError(record)


def attach(ros_logger, level: int = logging.INFO) -> RosLogHandler:
    """Forward ``clip_perception.*`` records at ``level`` and above; returns the handler."""
    handler = RosLogHandler(ros_logger, level)
    handler.setFormatter(logging.Formatter("%(message)s (%(name)s)"))
    package = logging.getLogger(PACKAGE_LOGGER)
    package.addHandler(handler)
    if package.level == logging.NOTSET or package.level > level:
        package.setLevel(level)
    # The ROS logger prints it; a root handler (e.g. the demo's basicConfig) would repeat it.
    handler.saved_propagate = package.propagate
    package.propagate = False
    return handler


def detach(handler: RosLogHandler) -> None:
    package = logging.getLogger(PACKAGE_LOGGER)
    package.removeHandler(handler)
    package.propagate = getattr(handler, "saved_propagate", True)
