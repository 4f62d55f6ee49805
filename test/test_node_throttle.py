"""The node's rate-limited warnings."""
from clip_perception.ros.throttle import WarningThrottle


def test_warning_throttle_counts_suppressed():
    now = [0.0]
    th = WarningThrottle(5.0, clock=lambda: now[0])
    assert th.allow("a") and not th.allow("a") and th.allow("b")
    now[0] = 6.0
    assert th.allow("a") and th.take_suppressed("a") == 1
