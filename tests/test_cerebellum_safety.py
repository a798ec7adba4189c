"""Safety envelope, failure monitor and plan executor (ROS-free)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.executor import PlanExecutor, State
from robo_cerebellum.monitor import FailureMonitor, MonitorConfig
from robo_cerebellum.policy import CerebellumPolicy, Observation
from robo_cerebellum.safety import SafetyConfig, SafetyEnvelope, Verdict
from robo_common.geometry import quat_angle
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

Q0 = np.array([1.0, 0.0, 0.0, 0.0])  # top-down
HOME = np.array([0.5, 0.0, 0.3])


def _env() -> SafetyEnvelope:
    env = SafetyEnvelope(SafetyConfig(max_speed=0.5, max_angular_speed=2.0))
    env.reset(HOME, Q0)
    return env


def test_ok_command_passes_unchanged() -> None:
    out = _env().filter(HOME + [0.001, 0, 0], Q0, HOME, Q0, 0.0, 0.0, dt=0.01)
    assert out.verdict == Verdict.OK and np.allclose(out.pos, HOME + [0.001, 0, 0]) and not out.reasons


@pytest.mark.parametrize("bad", [np.array([np.nan, 0, 0.3]), np.array([np.inf, 0, 0.3])])
def test_nan_and_inf_are_rejected_and_hold(bad: np.ndarray) -> None:
    env = _env()
    out = env.filter(bad, Q0, HOME, Q0, 0.0, 0.0, dt=0.01)
    assert out.verdict == Verdict.REJECTED and np.allclose(out.pos, HOME) and "non-finite" in out.reasons[0]
    assert env.filter(HOME, np.zeros(4), HOME, Q0, 0, 0, 0.01).verdict == Verdict.REJECTED


def test_translation_and_rotation_steps_are_clamped() -> None:
    env = _env()
    far = env.filter(HOME + [0.2, 0, 0], Q0, HOME, Q0, 0.0, 0.0, dt=0.01)
    assert far.verdict == Verdict.CLAMPED and np.linalg.norm(far.pos - HOME) == pytest.approx(0.005)
    assert "translation step" in far.reasons[0]
    yaw = math.radians(90)
    turned = np.array([math.cos(yaw / 2), math.sin(yaw / 2), 0, 0])  # 90 deg about the hand axis
    rot = env.filter(far.pos, turned, HOME, Q0, 0.0, 0.0, dt=0.01)
    assert rot.verdict == Verdict.CLAMPED and quat_angle(rot.quat, Q0) == pytest.approx(0.02, abs=1e-6)


def test_workspace_box_clamps() -> None:
    env = SafetyEnvelope(SafetyConfig(max_speed=100.0))
    env.reset(HOME, Q0)
    out = env.filter(np.array([0.5, 0.0, -0.2]), Q0, HOME, Q0, 0.0, 0.0, dt=0.01)
    assert out.verdict == Verdict.CLAMPED and out.pos[2] == pytest.approx(0.005)
    assert "outside the workspace box" in out.reasons[0]


def test_stale_inputs_hold() -> None:
    env = _env()
    stale = env.filter(HOME + [0.001, 0, 0], Q0, HOME, Q0, state_age_s=0.5, image_age_s=0.0, dt=0.01)
    assert stale.verdict == Verdict.HOLD and "robot state is 500 ms old" in stale.reasons[0]
    blind = env.filter(HOME, Q0, HOME, Q0, state_age_s=0.0, image_age_s=2.0, dt=0.01)
    assert blind.verdict == Verdict.HOLD and "camera image" in blind.reasons[0]
    assert env.counts["hold"] == 2


def test_safety_config_validation() -> None:
    with pytest.raises(ValueError, match="below workspace_max"):
        SafetyConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError, match="max_speed"):
        SafetyConfig(max_speed=0)


def test_monitor_grasp_missed_and_dropped() -> None:
    mon = FailureMonitor(MonitorConfig(grasp_settle_s=0.15), rate_hz=20)  # 3 steps
    mon.start_subtask("pick")
    results = [mon.check(HOME, HOME, 0.0, width, 0.5, 0.0) for width in (0.5, 0.3, 0.05)]
    assert results[:2] == [None, None] and results[2].kind == "grasp_missed"
    mon.start_subtask("pick")
    assert all(mon.check(HOME, HOME, 0.0, 0.5, 0.5, 0.0) is None for _ in range(10))  # holding a block
    mon.start_subtask("place")
    assert mon.check(HOME, HOME, 0.0, 0.5, 0.1, 0.0) is None
    dropped = [mon.check(HOME, HOME, 0.0, 0.02, 0.2, 0.0) for _ in range(3)]  # drop_s 0.15 = 3 steps
    assert dropped[:2] == [None, None] and dropped[2].kind == "object_dropped"
    mon.start_subtask("place")
    assert all(mon.check(HOME, HOME, 0.9, 0.9, 0.5, 0.0) is None for _ in range(5))  # released on purpose
    assert all(mon.check(HOME, HOME, 0.0, 0.0, 0.8, 0.0) is None for _ in range(5))  # closing after the release
    # a slip: the fingers open, the policy answers with a brief open command, then closes on nothing
    mon.start_subtask("place")
    steps = [(0.0, 0.6), (0.9, 1.0), (0.0, 1.0), (0.0, 0.02), (0.0, 0.0), (0.0, 0.0)]
    kinds = [mon.check(HOME, HOME, cmd, width, 0.3, 0.0) for cmd, width in steps]
    assert kinds[:-1] == [None] * 5 and kinds[-1].kind == "object_dropped"


def test_monitor_tracking_progress_timeout_learned() -> None:
    cfg = MonitorConfig(tracking_s=0.3, no_progress_s=1.0, subtask_timeout_s=100, failure_s=0.2)
    mon = FailureMonitor(cfg, rate_hz=10)
    mon.start_subtask("push")
    far = HOME + [0.1, 0, 0]
    kinds = [mon.check(far, HOME, 0.4, 0.4, 0.1 * k, 0.0) for k in range(3)]
    assert kinds[-1].kind == "tracking_error"
    mon.start_subtask("push")
    stalled = [mon.check(HOME, HOME, 0.4, 0.4, 0.0, 0.0) for _ in range(12)]
    assert stalled[-1] is not None and stalled[-1].kind == "no_progress"
    mon = FailureMonitor(MonitorConfig(subtask_timeout_s=0.5, no_progress_s=100), rate_hz=10)
    mon.start_subtask("push")
    assert [mon.check(HOME, HOME, 0.4, 0.4, 0.0, 0.0) for _ in range(6)][-1].kind == "timeout"
    mon = FailureMonitor(MonitorConfig(failure_s=0.2, failure_threshold=0.5), rate_hz=10)
    mon.start_subtask("push")
    assert mon.check(HOME, HOME, 0.4, 0.4, 0.0, 0.9) is None
    assert mon.check(HOME, HOME, 0.4, 0.4, 0.0, 0.9).kind == "low_confidence"


def test_monitor_durations_are_seconds_at_any_policy_rate() -> None:
    """The same 0.7 s grasp settle and 0.5 s tracking window at 20 Hz and at 200 Hz (a policy at the control rate)."""
    for hz in (20.0, 200.0):
        mon = FailureMonitor(MonitorConfig(), rate_hz=hz)
        assert (mon.grasp_settle_steps, mon.tracking_steps) == (round(0.7 * hz), round(0.5 * hz))
        mon.start_subtask("pick")
        closed = [mon.check(HOME, HOME, 0.0, 0.05, 0.5, 0.0) for _ in range(round(0.7 * hz))]
        assert all(k is None for k in closed[:-1]) and closed[-1].kind == "grasp_missed"
    with pytest.raises(ValueError, match="drop_s"):
        MonitorConfig(drop_s=0.0)


def _plan(revision: int = 0, skill: str = "pick") -> PlanData:
    return PlanData("p1", revision, "put the red block in the bowl", "", [
        SubtaskData(0, f'{skill}(object="red block")', skill, [KeypointData("grasp", (0.5, 0.1, 0.02))]),
        SubtaskData(1, 'place(target="blue bowl")', "place", [KeypointData("place", (0.4, -0.1, 0.03))]),
        SubtaskData(2, "done()", "done", []),
    ])


def _executor() -> PlanExecutor:
    policy = CerebellumPolicy.from_config(CerebellumConfig(hidden_size=32, num_layers=1, head_dim=16,
                                                           visual_dim=16, image_size=32))
    return PlanExecutor(policy, SafetyConfig(), MonitorConfig())


def test_executor_runs_advances_and_succeeds() -> None:
    ex = _executor()
    assert "new plan p1" in ex.set_plan(_plan(), HOME, Q0)
    obs = Observation(HOME, Q0, 1.0)
    first = ex.tick(obs, 0.0, 0.0, 0.05)
    assert first.state == State.RUNNING and first.safe is not None and first.subtask_index == 0
    ex._advance()
    assert ex.index == 1 and ex.policy.state.subtask.skill == "place"
    ex._advance()  # into done()
    assert ex.state == State.SUCCEEDED
    held = ex.tick(obs, 0.0, 0.0, 0.05)
    assert held.state == State.SUCCEEDED and held.safe.verdict == Verdict.HOLD


def test_executor_revisions_empty_plans_and_unknown_skills() -> None:
    ex = _executor()
    ex.set_plan(_plan(), HOME, Q0)
    ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert "ignored" in ex.set_plan(_plan(revision=0), HOME, Q0)
    cache = ex.policy.state.cache
    assert "new revision" in ex.set_plan(_plan(revision=1), HOME, Q0)
    assert ex.policy.state.cache is cache  # a revision keeps the recurrent state
    with pytest.raises(ValueError, match="unknown skill 'teleport'"):
        ex.set_plan(_plan(revision=2, skill="teleport"), HOME, Q0)
    ex.set_plan(PlanData("p2", 0, "stop", "", []), HOME, Q0)
    assert ex.state == State.HOLDING and ex.tick(Observation(HOME, Q0, 1.0), 0, 0, 0.05).state == State.HOLDING


def test_executor_fails_on_nan_observation_and_holds_measured_pose() -> None:
    ex = _executor()
    ex.set_plan(_plan(), HOME, Q0)
    out = ex.tick(Observation(np.array([np.nan, 0, 0.3]), Q0, 1.0), 0.0, 0.0, 0.05)
    assert out.state == State.FAILED and out.failure.kind == "unsafe_command"
    assert np.allclose(out.safe.pos, HOME)  # holds the last safe pose, never a NaN


def test_executor_subtask_end_by_threshold_or_high_plateau() -> None:
    ex = _executor()
    ex.set_plan(_plan(), HOME, Q0)
    assert not any(ex._subtask_finished(p) for p in (0.1, 0.3, 0.5, 0.7))
    assert ex._subtask_finished(0.96)  # the progress_done threshold
    ex.set_plan(PlanData("p3", 0, "x", "", _plan().subtasks), HOME, Q0)
    rising = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.93]
    assert not any(ex._subtask_finished(p) for p in rising)  # still climbing
    flat = [0.86 + 0.001 * k for k in range(8)]
    assert [ex._subtask_finished(p) for p in flat][-1]  # stuck high for 8 steps: finished


def test_monitor_flags_a_release_away_from_the_place_point() -> None:
    target = np.array([0.45, 0.0, 0.01])
    mon = FailureMonitor(MonitorConfig(), rate_hz=20)
    mon.start_subtask("place", target)
    carrying = np.array([0.45, -0.14, 0.17])
    assert mon.check(carrying, carrying, 0.0, 0.5, 0.1, 0.0) is None  # closed on the block while carrying
    assert mon.check(carrying, carrying, 0.9, 0.5, 0.7, 0.0) is None  # one open step: a glitch, not a release
    assert mon.check(carrying, carrying, 0.0, 0.5, 0.2, 0.0) is None
    opened = [mon.check(carrying, carrying, 0.9, 0.5, 0.7, 0.0) for _ in range(3)]  # opens 14 cm short, 16 cm high
    assert opened[:2] == [None, None] and opened[2].kind == "object_dropped" and "14.0 cm beside" in opened[2].detail
    mon.start_subtask("place", target)
    low = target + np.array([0.015, 0.0, 0.015])
    assert all(mon.check(low, low, 0.9, 0.9, 0.8, 0.0) is None for _ in range(5))  # a release at the target
    mon.start_subtask("place")  # a place without a keypoint: only the finger checks
    assert all(mon.check(carrying, carrying, 0.9, 0.5, 0.7, 0.0) is None for _ in range(5))


def test_monitor_drop_needs_a_firm_grip() -> None:
    mon = FailureMonitor(MonitorConfig(), rate_hz=20)
    mon.start_subtask("place")
    assert all(mon.check(HOME, HOME, 0.3, 0.15, 0.7, 0.0) is None for _ in range(5))  # opening: not a drop
    assert [mon.check(HOME, HOME, 0.02, 0.15, 0.2, 0.0) for _ in range(3)][-1].kind == "object_dropped"


def test_a_correction_retreats_to_the_start_pose_then_resumes_with_a_fresh_state() -> None:
    ex = _executor()
    ex.set_plan(_plan(), HOME, Q0)
    low = HOME + np.array([0.1, 0.05, -0.2])
    failed = ex.tick(Observation(np.array([np.nan, 0, 0]), Q0, 1.0), 0.0, 0.0, 0.05)
    assert failed.state == State.FAILED
    cache = ex.policy.state.cache
    assert "after a retreat" in ex.set_plan(_plan(revision=1), low, Q0)
    assert ex.policy.state.cache is not cache or cache is None  # recurrent state restarted
    pos, steps = low.copy(), 0
    while ex.recovery is not None:
        out = ex.tick(Observation(pos, Q0, 0.0), 0.0, 0.0, 0.05)
        assert out.state == State.RUNNING and out.gripper == 1.0 and "recovering" in out.detail or ex.recovery is None
        step = np.linalg.norm(out.safe.pos - pos)
        assert step <= SafetyConfig().max_speed * 0.05 + 1e-9  # the retreat goes through the envelope
        pos, steps = out.safe.pos, steps + 1
        assert steps < 100
    assert np.linalg.norm(pos - HOME) < 0.01 and ex.index == 0 and ex.detail.startswith("running pick")
    # a revision that resumes with a place keeps the gripper as it was (the object is still held)
    ex2 = _executor()
    ex2.set_plan(_plan(), HOME, Q0)
    ex2.last_gripper = 0.0
    ex2.tick(Observation(np.array([np.nan, 0, 0]), Q0, 0.5), 0.0, 0.0, 0.05)
    place_only = PlanData("p1", 1, "x", "", _plan().subtasks[1:])
    ex2.set_plan(place_only, low, Q0)
    assert ex2.tick(Observation(low, Q0, 0.5), 0.0, 0.0, 0.05).gripper == 0.0
