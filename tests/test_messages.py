"""The generated robo_stack messages: names, fields, types and constants."""

from __future__ import annotations

import pytest
from robo_stack.msg import ExecutionStatus, FailureReport, Keypoint, Plan, Subtask

EXPECTED_FIELDS = {
    Keypoint: {"name": "string", "point": "geometry_msgs/Point", "u": "float", "v": "float", "confidence": "float"},
    Subtask: {"index": "uint32", "code": "string", "skill": "string", "keypoints": "sequence<robo_stack/Keypoint>"},
    Plan: {
        "header": "std_msgs/Header", "plan_id": "string", "revision": "uint32", "instruction": "string",
        "reasoning": "string", "subtasks": "sequence<robo_stack/Subtask>",
    },
    FailureReport: {
        "header": "std_msgs/Header", "plan_id": "string", "revision": "uint32", "subtask_index": "uint32",
        "kind": "string", "detail": "string", "commanded_pose": "geometry_msgs/Pose",
        "measured_pose": "geometry_msgs/Pose", "failure_probability": "float",
    },
    ExecutionStatus: {
        "header": "std_msgs/Header", "plan_id": "string", "revision": "uint32", "subtask_index": "uint32",
        "state": "uint8", "progress": "float", "detail": "string",
    },
}


@pytest.mark.parametrize("msg_type", list(EXPECTED_FIELDS), ids=lambda t: t.__name__)
def test_fields_and_types(msg_type: type) -> None:
    fields = msg_type.get_fields_and_field_types()
    for name, typ in EXPECTED_FIELDS[msg_type].items():
        assert fields.get(name) == typ, f"{msg_type.__name__}.{name}: {fields.get(name)!r} != {typ!r}"


def test_failure_kinds() -> None:
    kinds = {
        "KIND_GRASP_MISSED": "grasp_missed", "KIND_OBJECT_DROPPED": "object_dropped",
        "KIND_TRACKING_ERROR": "tracking_error", "KIND_NO_PROGRESS": "no_progress", "KIND_TIMEOUT": "timeout",
        "KIND_UNSAFE_COMMAND": "unsafe_command", "KIND_LOW_CONFIDENCE": "low_confidence",
    }
    for const, value in kinds.items():
        assert getattr(FailureReport, const) == value


def test_execution_states_distinct() -> None:
    states = [getattr(ExecutionStatus, s) for s in ("IDLE", "RUNNING", "SUCCEEDED", "FAILED", "HOLDING")]
    assert states == [0, 1, 2, 3, 4]

