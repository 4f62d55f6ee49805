"""Route Python logging into the node's ROS logger, so it reaches the console, /rosout and log
files like every other message of the node instead of bare ``WARNING:root:...`` lines.

* ``clip_perception.*`` records (backend choice and skips, label-set builds, engine builds) at
  ``level`` and above;
* third-party root-logger records and Python ``warnings`` at WARNING and above (onnxruntime's
  quantiser logs on the root logger, which would otherwise install a bare stderr handler;
  torch's exporter warns through ``warnings``), except the known-harmless ones below.
"""
from __future__ import annotations

import logging

PACKAGE_LOGGER = "clip_perception"
# (start of the message, why it is dropped). Each was read and judged harmless for our use.
KNOWN_HARMLESS = (
    ("Please consider to run pre-processing before quantization",
     "onnxruntime's quantiser suggests shape inference for static quantisation; the node uses "
     "dynamic int8 and verifies the result against fp32 anyway"),
    ("Exporting aten::index operator of advanced indexing",
     "torch exporter note on negative indices: the text tower's EOT gather uses argmax "
     "indices, which are never negative; the export is verified against torch"),
    ("You are using the legacy TorchScript-based ONNX export",
     "the TorchScript exporter is chosen on purpose (dynamic batch axis, verified outputs)"),
    ("The feature will be removed. Please remove usage of this function",
     "raised inside torch's own TorchScript exporter, not by our calls"),
)


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


def is_known_harmless(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    # warnings arrive as "file:line: Category: message"
    return any(text in message for text, _ in KNOWN_HARMLESS)


class Bridge:
    """The handlers and settings ``attach`` changed, for ``detach`` to restore."""

    def __init__(self, package: RosLogHandler, root: RosLogHandler, saved_propagate: bool):
        self.package, self.root, self.saved_propagate = package, root, saved_propagate


def attach(ros_logger, level: int = logging.INFO) -> Bridge:
    package_handler = RosLogHandler(ros_logger, level)
    package_handler.setFormatter(logging.Formatter("%(message)s (%(name)s)"))
    package = logging.getLogger(PACKAGE_LOGGER)
    package.addHandler(package_handler)
    if package.level == logging.NOTSET or package.level > level:
        package.setLevel(level)
    # The ROS logger prints it; the root handler below would repeat it.
    saved_propagate = package.propagate
    package.propagate = False

    root_handler = RosLogHandler(ros_logger, logging.WARNING)
    root_handler.setFormatter(logging.Formatter("%(message)s (%(name)s)"))
    root_handler.addFilter(lambda record: not is_known_harmless(record))
    logging.getLogger().addHandler(root_handler)
    logging.captureWarnings(True)
    return Bridge(package_handler, root_handler, saved_propagate)


def detach(bridge: Bridge) -> None:
    package = logging.getLogger(PACKAGE_LOGGER)
    package.removeHandler(bridge.package)
    package.propagate = bridge.saved_propagate
    logging.getLogger().removeHandler(bridge.root)
    logging.captureWarnings(False)
