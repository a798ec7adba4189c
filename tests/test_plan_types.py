"""ROS-free plan dataclasses and their conversion to and from the messages."""

from __future__ import annotations

import json
import math

import pytest

from robo_common.constants import BASE_FRAME
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from robo_common.ros.conversions import ns_to_stamp, plan_from_msg, plan_to_msg, stamp_to_ns
from robo_common.ros.roundtrip import sample_plan


def test_dict_roundtrip_through_json() -> None:
    plan = sample_plan("abc")
    again = PlanData.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert again.code_lines()[0] == 'pick(object="red block")'


def test_message_roundtrip_preserves_everything() -> None:
    plan = sample_plan("abc")
    msg = plan_to_msg(plan)
    assert msg.header.frame_id == BASE_FRAME
    assert len(msg.subtasks) == 4 and len(msg.subtasks[2].keypoints) == 2
    assert plan_from_msg(msg) == plan


def test_stamp_conversion() -> None:
    ns = 1_700_000_000_123_456_789
    stamp = ns_to_stamp(ns)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert stamp_to_ns(stamp) == ns


@pytest.mark.parametrize("point", [(math.nan, 0, 0), (0, math.inf, 0), (0, 0)])
def test_keypoint_rejects_bad_points(point: tuple) -> None:
    with pytest.raises(ValueError, match="keypoint 'grasp'"):
        KeypointData("grasp", point)


def test_keypoint_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError, match="confidence"):
        KeypointData("grasp", (0, 0, 0), confidence=1.5)


def test_nan_in_message_is_rejected_on_conversion() -> None:
    msg = plan_to_msg(sample_plan())
    msg.subtasks[0].keypoints[0].point.x = math.nan
    with pytest.raises(ValueError, match="finite"):
        plan_from_msg(msg)


def test_subtask_keypoint_lookup() -> None:
    sub = SubtaskData(0, "pick()", "pick", [KeypointData("grasp", (1, 2, 3))])
    assert sub.keypoint("grasp").point == (1.0, 2.0, 3.0)
    assert sub.keypoint("place") is None


def test_sim_stamp_never_goes_back_a_second() -> None:
    from robo_sim.node import _stamp

    stamp = _stamp(240 * (1.0 / 240.0) - 1e-12)  # float sum of physics steps just under 1 s
    assert (stamp.sec, stamp.nanosec) == (1, 0)
    assert stamp_to_ns(_stamp(2.5)) == 2_500_000_000
