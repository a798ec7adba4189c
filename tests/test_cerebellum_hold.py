"""Holds that stay inside the envelope: bad robot states, stale state, jumps (ROS-free)."""

from __future__ import annotations

import numpy as np
import pytest

from robo_cerebellum.command_stream import CommandStream
from robo_cerebellum.executor import State
from robo_cerebellum.policy import Observation
from robo_cerebellum.safety import SafetyConfig, SafetyEnvelope, Verdict
from robo_cerebellum.state_gate import StateGate, StateGateConfig
from robo_common.constants import BASE_FRAME
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from tests.cerebellum_helpers import tiny_executor
from tests.test_cerebellum_safety import _plan

Q0 = np.array([1.0, 0.0, 0.0, 0.0])
HOME = np.array([0.5, 0.0, 0.3])
LO, HI = np.array([0.2, -0.45, 0.005]), np.array([0.8, 0.45, 0.6])


def _inside(pos: np.ndarray) -> bool:
    return bool(np.all(pos >= LO - 1e-9) and np.all(pos <= HI + 1e-9))


@pytest.mark.parametrize("measured", [np.array([1e9, 1e9, 1e9]), np.array([1.5, 0.0, 0.3]),
                                      np.array([0.5, 0.0, -0.4])])
def test_a_hold_anchored_on_a_pose_outside_the_box_is_clamped_into_it(measured: np.ndarray) -> None:
    env = SafetyEnvelope(SafetyConfig())
    held = env.hold(measured, Q0, "stop")
    assert held.verdict == Verdict.HOLD and _inside(held.pos), held.pos
    env.reset(measured, Q0)  # an empty plan anchors at the measured pose: clamped too
    assert _inside(env.last_pos)
    out = env.filter(measured, Q0, measured, Q0, 0.0, 0.0, dt=0.005)
    assert _inside(out.pos)


def test_a_hold_never_anchors_on_a_non_finite_pose() -> None:
    env = SafetyEnvelope(SafetyConfig())
    with pytest.raises(ValueError, match="no safe pose to hold"):
        env.hold(np.array([np.nan, 0, 0.3]), Q0, "stop")
    env.reset(HOME, Q0)
    assert not env.reset(np.array([np.inf, 0, 0]), Q0)
    assert np.allclose(env.hold(np.array([np.nan, 0, 0]), Q0, "stop").pos, HOME)


@pytest.mark.parametrize(("frame", "pos", "quat", "why"), [
    ("world", HOME, Q0, "frame 'world'"),
    (BASE_FRAME, np.array([1e9, 0, 0.3]), Q0, "outside the workspace box"),
    (BASE_FRAME, np.array([np.nan, 0, 0.3]), Q0, "non-finite"),
    (BASE_FRAME, HOME, np.zeros(4), "not a rotation"),
])
def test_state_gate_refuses_bad_states_with_a_reason(frame: str, pos: np.ndarray, quat: np.ndarray,
                                                     why: str) -> None:
    gate = StateGate()
    verdict = gate.check_pose(frame, pos, quat, 1.0, 1.0)
    assert not verdict.accepted and why in verdict.reason
    assert gate.last_pos is None and gate.refused == 1


def test_state_gate_refuses_out_of_order_stamps_but_follows_a_restarted_clock() -> None:
    gate = StateGate(StateGateConfig(clock_restart_s=1.0))
    assert gate.check_pose(BASE_FRAME, HOME, Q0, 10.0, 100.0).accepted
    late = gate.check_pose(BASE_FRAME, HOME, Q0, 9.9, 100.01)
    assert not late.accepted and "older than the last one" in late.reason
    assert gate.check_pose("", HOME, Q0, 0.01, 101.5).accepted  # nothing accepted for 1.5 s: a new clock


def test_state_gate_reports_a_jump_but_not_motion() -> None:
    gate = StateGate()
    assert not gate.check_pose(BASE_FRAME, HOME, Q0, 0.0, 0.0).jumped
    assert not gate.check_pose(BASE_FRAME, HOME + [0.005, 0, 0], Q0, 0.005, 0.005).jumped  # 1 m/s
    jump = gate.check_pose(BASE_FRAME, HOME + [0.2, 0, 0], Q0, 0.010, 0.010)
    assert jump.accepted and jump.jumped and jump.jump_m == pytest.approx(0.195)
    # 0.49 s later (within clock_restart_s), 20 cm is plausible motion (at most 2 m/s)
    assert not gate.check_pose(BASE_FRAME, HOME, Q0, 0.5, 0.5).jumped
    # after a gap of more than clock_restart_s (a paused or restarted robot) a move beyond jump_m is a jump
    assert not gate.check_pose(BASE_FRAME, HOME + [0.01, 0, 0], Q0, 3.0, 3.0).jumped
    assert gate.check_pose(BASE_FRAME, HOME + [0.2, 0, 0], Q0, 6.0, 6.0).jumped


def test_gripper_width_gate() -> None:
    assert StateGate.check_width(0.5).accepted
    assert not StateGate.check_width(float("nan")).accepted
    assert "not in [0, 1]" in StateGate.check_width(1e9).reason
    assert not StateGate.check_width(None).accepted


def test_stale_state_holds_arm_and_gripper_without_stepping_or_judging() -> None:
    ex = tiny_executor()
    ex.set_plan(_plan(), HOME, Q0)
    first = ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    steps_before = ex.policy.state.steps
    ex.last_gripper = 0.7
    for _ in range(200):  # 10 s of frozen state: no failure declared, arm and gripper hold
        held = ex.tick(Observation(HOME + [0.2, 0, 0], Q0, 0.0), 0.5, 0.0, 0.05)
        assert held.state == State.HOLDING and held.failure is None and held.gripper == 0.7
        assert np.allclose(held.safe.pos, first.safe.pos) and "robot state is 500 ms old" in held.detail
    assert ex.policy.state.steps == steps_before  # the policy did not step on the frozen state
    assert ex.state == State.RUNNING  # resumes when fresh state returns
    assert ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05).state == State.RUNNING


def test_a_jump_stops_the_plan_and_holds_at_the_new_pose() -> None:
    ex = tiny_executor()
    ex.set_plan(_plan(), HOME, Q0)
    ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    new = np.array([0.35, 0.1, 0.45])
    assert "plan stopped" in ex.robot_jumped(new, Q0, 0.2)
    out = ex.tick(Observation(new, Q0, 1.0), 0.0, 0.0, 0.05)
    assert out.state == State.HOLDING and np.allclose(out.safe.pos, new)


def test_command_stream_holds_the_last_command_when_the_state_stops() -> None:
    stream = CommandStream(state_timeout_s=0.1)
    assert stream.next(0.0) is None
    stream.state_time = 0.0
    stream.update(HOME, Q0, 0.9, True, 0.0, (HOME, Q0), ("status",))
    first = stream.next(0.005)
    assert not first.stale and first.status == ("status",) and first.gripper == 0.9
    stream.update(HOME + [0.01, 0, 0], Q0, 0.1, True, 0.05, (HOME, Q0), None)
    held = stream.next(0.2)  # state 200 ms old: the last sent command, gripper included
    assert held.stale and np.allclose(held.pos, first.pos) and held.gripper == 0.9
    stream.state_time = 0.21
    assert np.allclose(stream.next(0.215).pos, HOME + [0.01, 0, 0])


def test_command_stream_jump_holds_at_once_and_drops_the_older_step() -> None:
    stream = CommandStream(state_timeout_s=0.1)
    stream.state_time = 0.0
    stream.update(HOME, Q0, 1.0, True, 0.0, (HOME, Q0), None)
    new = np.array([0.3, 0.2, 0.4])
    stream.jump(new, Q0)
    assert np.allclose(stream.next(0.001).pos, new)
    assert not stream.update(HOME, Q0, 1.0, True, 0.002, (HOME, Q0), None)  # computed before the jump
    assert np.allclose(stream.next(0.003).pos, new)
    assert stream.take_jump() and not stream.take_jump()
    assert stream.update(new, Q0, 1.0, False, 0.004, (new, Q0), None)


def _rogue(kind: str) -> PlanData:
    plan = _plan()
    if kind == "many":
        plan.subtasks = [SubtaskData(i, 'pick(object="red block")', "pick", [KeypointData("grasp", (0.5, 0, 0.02))])
                         for i in range(10_000)]
    elif kind == "far":
        plan.subtasks[0].keypoints = [KeypointData("grasp", (5.0, 0.0, 0.02))]
    elif kind == "empty_name":
        plan.subtasks[0].code = 'pick(object="")'
    elif kind == "skill_mismatch":
        plan.subtasks[0].code = 'push(object="red block", direction="left")'
    elif kind == "injection":
        plan.subtasks[0].code = 'pick(object="red block"); import os'
    return plan


@pytest.mark.parametrize(("kind", "why"), [
    ("many", "more than max_subtasks 32"),
    ("far", "outside the workspace box"),
    ("empty_name", "does not parse"),
    ("skill_mismatch", "skill field says 'pick', the code line 'push'"),
    ("injection", "does not parse"),
])
def test_rogue_plans_are_refused_up_front_and_the_running_plan_kept(kind: str, why: str) -> None:
    ex = tiny_executor()
    ex.set_plan(PlanData("running", 0, "x", "", [SubtaskData(0, 'pick(object="blue block")', "pick",
                                                              [KeypointData("grasp", (0.5, 0.1, 0.02))])]), HOME, Q0)
    with pytest.raises(ValueError, match=why):
        ex.set_plan(_rogue(kind), HOME, Q0)
    assert ex.plan.plan_id == "running" and ex.state == State.RUNNING


def test_an_older_revision_is_refused_and_a_re_delivery_ignored() -> None:
    ex = tiny_executor()
    ex.set_plan(_plan(revision=2), HOME, Q0)
    assert "re-delivery" in ex.set_plan(_plan(revision=2), HOME, Q0)
    with pytest.raises(ValueError, match="older than the running revision 2"):
        ex.set_plan(_plan(revision=1), HOME, Q0)
    assert ex.plan.revision == 2


def test_refusal_summary_names_every_kind_once() -> None:
    from robo_cerebellum.state_gate import RefusalSummary

    gate, summary = StateGate(), RefusalSummary()
    for frame, pos in [("world", HOME), (BASE_FRAME, np.array([1e9, 0, 0])), ("world", HOME)] * 5:
        summary.add(gate.check_pose(frame, pos, Q0, 1.0, 1.0))
    text = summary.take()
    assert text.startswith("ignored 15 robot state(s)") and "frame 'world'" in text and "outside the workspace" in text
    assert text.count("frame 'world'") == 1 and summary.take() == ""


def test_a_bogus_finger_joint_never_reads_as_open() -> None:
    from robo_common.bags import finger_width01

    names = ["panda_finger_joint1", "panda_finger_joint2"]
    assert finger_width01(names, [1e9, 1e9]) == 1.0  # what a clipped reading made of it
    assert not StateGate.check_width(finger_width01(names, [1e9, 1e9], clip=False)).accepted
    assert StateGate.check_width(finger_width01(names, [0.02, 0.02], clip=False)).accepted
