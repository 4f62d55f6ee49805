"""ros.logging_bridge: Python logging and warnings reach the ROS logger, known-harmless
third-party lines are dropped."""
import logging
import warnings

from clip_perception.ros import logging_bridge


class FakeRosLogger:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda text: self.lines.append((level, text))


def test_package_root_and_warnings_are_forwarded_and_known_harmless_dropped():
    """(The node process's own output is checked in test_node_params_file.)"""
    ros = FakeRosLogger()
    bridge = logging_bridge.attach(ros)
    try:
        logging.getLogger("clip_perception.core.model").info("loaded the model")
        logging.getLogger("some_library").warning("disk almost full")
        logging.warning("Please consider to run pre-processing before quantization. Refer ...")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("an unexpected condition", UserWarning)
            warnings.warn("Exporting aten::index operator of advanced indexing in opset 18",
                          UserWarning)
    finally:
        logging_bridge.detach(bridge)
    texts = [(level, text.split(" (")[0]) for level, text in ros.lines]
    assert ("info", "loaded the model") in texts
    assert ("warning", "disk almost full") in texts
    assert any(level == "warning" and "an unexpected condition" in text
               for level, text in ros.lines)
    assert not any("pre-processing before quantization" in t or "aten::index" in t
                   for _, t in ros.lines)
    assert logging.getLogger().handlers.count(bridge.root) == 0  # detached


def test_every_known_harmless_entry_says_why():
    for text, reason in logging_bridge.KNOWN_HARMLESS:
        assert text.strip() and len(reason) > 20, text
