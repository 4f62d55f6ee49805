"""``score_mode`` changed live over the standard ~/set_parameters service: the next label set's
~/label_info is sent, ~/classification's scores change meaning (softmax: probabilities over the
labels that sum to 1; neglabel: each label's probability against the negative words alone,
``unknown`` scored with the best of them) and /diagnostics says which mode serves and what the threshold applies to; an
invalid mode is refused with a reason and the node keeps serving. The node runs in this process
(node_harness.py), over real rclpy and DDS."""
from __future__ import annotations

import pytest

from node_harness import Harness
from node_testing import Collector, status_values, wait_until

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")

from lifecycle_msgs.msg import Transition  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from clip_perception.core.scoring import THRESHOLD_MEANINGS, UNKNOWN_LABEL  # noqa: E402
from clip_perception.core.vocabulary.negatives import DEFAULT_NEGATIVE_LABELS  # noqa: E402

LABELS = ["cup", "apple"]
THRESHOLD = 0.5  # two labels: the softmax's best is never under it; one label against the
# built-in bank's 251 negatives on random weights is far under it


class ScoreModeHarness(Harness):
    def __init__(self, tiny_model_id):
        super().__init__(tiny_model_id, "/score_mode_test", labels=LABELS,
                         score_threshold=THRESHOLD, top_k=5)
        self.set_client = self.ros.service(SetParameters, "set_parameters")
        self.label_info = Collector()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.client.create_subscription(LabelInfo, self.name + "/label_info", self.label_info,
                                        latched)

    def set_score_mode(self, mode: str):
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=mode)
        request = SetParameters.Request(parameters=[ParameterMsg(name="score_mode", value=value)])
        (result,) = self.ros.call(self.set_client, request).results
        return result

    def result_of_version(self, version: int):
        """A ~/classification of a frame sent after the label set ``version`` serves."""
        assert self.node.label_sets.wait_for(version, 30), self.node.label_sets.last_error
        self.results.clear()
        return self.result_for_new_frames()

    def scoring_status(self, mode: str) -> dict:
        status = self.pipeline_status_while_sending(
            lambda s: status_values(s).get("score mode") == mode)
        assert status is not None, f"/diagnostics never said score mode {mode}"
        return status_values(status)


@pytest.fixture
def harness(tiny_model_id):
    h = ScoreModeHarness(tiny_model_id)
    try:
        assert h.transition(Transition.TRANSITION_CONFIGURE), h.node.last_failure
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        yield h
    finally:
        h.close()


def _scores(msg) -> dict:
    return {r.class_id: r.score for r in msg.results}


def test_score_mode_changes_live_and_an_invalid_one_is_refused(harness):
    h = harness
    soft = h.result_for_new_frames()
    assert soft is not None, "no results in softmax mode"
    assert list(_scores(soft)) != [] and UNKNOWN_LABEL not in _scores(soft)
    assert sum(_scores(soft).values()) == pytest.approx(1.0, abs=1e-5)
    values = h.scoring_status("softmax")
    assert values["threshold applies to"] == THRESHOLD_MEANINGS["softmax"]
    assert "negative words" not in values
    infos = len(h.label_info.wait_for(lambda m: m, 10) or [])
    assert infos >= 1, "no ~/label_info at configure"

    result = h.set_score_mode("neglabel")
    assert result.successful, result.reason
    neg = h.result_of_version(2)
    assert neg is not None, "no results after switching to neglabel"
    first, *rest = neg.results
    assert first.class_id == UNKNOWN_LABEL, [r.class_id for r in neg.results]
    assert sorted(r.class_id for r in rest) == sorted(LABELS)
    best = max(r.score for r in rest)
    assert first.score == pytest.approx(best, rel=1e-4) and best < THRESHOLD
    assert sum(r.score for r in rest) != pytest.approx(1.0, abs=1e-3)  # not a softmax
    info = h.label_info.wait_for(lambda m: m[-1] if len(m) > infos else None, 10)
    assert info is not None, "no new ~/label_info for the neglabel label set"
    assert info.threshold == pytest.approx(THRESHOLD)
    assert [c.class_name for c in info.class_map] == LABELS + [UNKNOWN_LABEL]
    values = h.scoring_status("neglabel")
    assert values["threshold applies to"] == THRESHOLD_MEANINGS["neglabel"]
    assert values["negative words"].startswith(f"a bank of {len(DEFAULT_NEGATIVE_LABELS)} "
                                               "(built-in); "), values["negative words"]
    assert values["negative words"].endswith(" per label, without the label and its synonyms")

    refused = h.set_score_mode("mcm")
    assert not refused.successful
    assert "score_mode" in refused.reason and "softmax, neglabel" in refused.reason, \
        refused.reason
    assert h.node.get_parameter("score_mode").value == "neglabel"
    assert h.node.label_sets.current.version == 2 and not h.node.label_sets.busy
    h.results.clear()
    still = h.result_for_new_frames()
    assert still is not None and still.results[0].class_id == UNKNOWN_LABEL, \
        "the node stopped serving neglabel after the refused mode"

    result = h.set_score_mode("softmax")
    assert result.successful, result.reason
    back = h.result_of_version(3)
    assert back is not None and UNKNOWN_LABEL not in _scores(back)
    assert sum(_scores(back).values()) == pytest.approx(1.0, abs=1e-5)
    assert wait_until(lambda: len(h.label_info.messages) > infos + 1, 10), \
        "no ~/label_info for the softmax label set"
