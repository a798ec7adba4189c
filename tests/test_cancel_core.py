"""Operator cancel, ROS-free: the executor's CANCELLED state, the control thread's hold, the brain worker's
cancel and the ExecuteInstruction task tracker."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robo_brain.backends import BrainBackend, Cancelled
from robo_brain.planner import PlannerConfig
from robo_brain.task_tracker import Outcome, TaskTracker
from robo_brain.worker import BrainWorker, Job, Observation
from robo_cerebellum.command_stream import CommandStream
from robo_cerebellum.executor import State
from robo_cerebellum.policy import Observation as CerebellumObs
from robo_common.camera import CameraModel
from tests.cerebellum_helpers import tiny_executor
from tests.test_cerebellum_safety import _plan

Q0 = np.array([1.0, 0.0, 0.0, 0.0])
HOME = np.array([0.5, 0.0, 0.3])


def test_state_values_match_the_message_constants() -> None:
    msg = pytest.importorskip("robo_stack.msg")
    for state in State:
        assert getattr(msg.ExecutionStatus, state.name) == state.value


# ---------------------------------------------------------------- executor
def test_cancel_holds_says_who_and_ignores_late_revisions() -> None:
    ex = tiny_executor()
    ex.set_plan(_plan(), HOME, Q0)
    ex.last_gripper = 0.4
    first = ex.tick(CerebellumObs(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert first.state == State.RUNNING
    line = ex.cancel("test-operator")
    assert "cancelled by test-operator" in line and ex.state == State.CANCELLED
    steps = ex.policy.state.steps
    for _ in range(5):  # holds the last safe target and the gripper; the policy does not step
        out = ex.tick(CerebellumObs(HOME + [0.01, 0, 0], Q0, 1.0), 0.0, 0.0, 0.05)
        assert out.state == State.CANCELLED and out.detail == "cancelled by test-operator"
        assert np.allclose(out.safe.pos, first.safe.pos) and out.gripper == first.gripper
    assert ex.policy.state.steps == steps
    assert "nothing to cancel" in ex.cancel("someone else") and ex.detail == "cancelled by test-operator"
    # a correction the brain made before it heard the cancel: ignored, with a line saying why
    line = ex.set_plan(_plan(revision=1), HOME, Q0)
    assert "ignored" in line and "cancelled by test-operator" in line and ex.state == State.CANCELLED
    # a new plan runs normally
    new = _plan()
    new.plan_id = "p2"
    assert "new plan p2" in ex.set_plan(new, HOME, Q0)
    assert ex.tick(CerebellumObs(HOME, Q0, 1.0), 0.0, 0.0, 0.05).state == State.RUNNING


def test_cancel_with_nothing_running_changes_nothing() -> None:
    ex = tiny_executor()
    assert "nothing to cancel" in ex.cancel("operator") and ex.state == State.IDLE


def test_cancel_of_a_failed_plan_awaiting_its_correction() -> None:
    ex = tiny_executor()
    ex.set_plan(_plan(), HOME, Q0)
    ex.state = State.FAILED
    ex.cancel("operator")
    assert ex.state == State.CANCELLED
    assert "ignored" in ex.set_plan(_plan(revision=1), HOME, Q0) and ex.recovery is None


# ---------------------------------------------------------------- control thread
def test_hold_now_freezes_arm_and_gripper_from_the_next_tick() -> None:
    stream = CommandStream(state_timeout_s=0.1)
    stream.state_time = 0.0
    stream.update(HOME, Q0, 0.8, True, 0.0, (HOME, Q0), None)
    sent = stream.next(0.005)
    stream.update(HOME + [0.02, 0, 0], Q0, 0.2, True, 0.006, (HOME, Q0), ("running",))  # not sent yet
    assert stream.hold_now("test-operator") and stream.frozen
    held = stream.next(0.010)
    assert np.allclose(held.pos, sent.pos) and held.gripper == 0.8
    assert held.cancelled_by == "test-operator" and held.status is None  # the step before the cancel is not reported
    # a policy step begun before the cancel reached the executor: its status goes out, its command does not
    assert stream.update(HOME + [0.03, 0, 0], Q0, 0.0, True, 0.011, (HOME, Q0), ("cancelled",))
    after = stream.next(0.015)
    assert np.allclose(after.pos, sent.pos) and after.gripper == 0.8 and after.status == ("cancelled",)
    assert after.cancelled_by is None
    stream.clear()  # a new plan
    assert not stream.frozen and stream.next(0.02) is None
    stream.update(HOME + [0.01, 0, 0], Q0, 1.0, True, 0.02, (HOME, Q0), None)
    assert np.allclose(stream.next(0.025).pos, HOME + [0.01, 0, 0])


def test_hold_now_before_anything_was_sent_holds_the_first_command() -> None:
    stream = CommandStream(state_timeout_s=0.1)
    stream.state_time = 0.0
    assert not stream.hold_now("operator")
    stream.update(HOME, Q0, 1.0, False, 0.0, (HOME, Q0), None)
    first = stream.next(0.005)
    assert np.allclose(first.pos, HOME) and first.cancelled_by == "operator"
    stream.update(HOME + [0.01, 0, 0], Q0, 1.0, True, 0.05, (HOME, Q0), None)
    assert np.allclose(stream.next(0.055).pos, HOME)


def test_a_jump_during_a_hold_moves_the_hold_to_the_new_pose() -> None:
    stream = CommandStream(state_timeout_s=0.1)
    stream.state_time = 0.0
    stream.update(HOME, Q0, 1.0, True, 0.0, (HOME, Q0), None)
    stream.next(0.005)
    stream.hold_now("operator")
    new = np.array([0.3, 0.2, 0.4])
    stream.jump(new, Q0)
    assert np.allclose(stream.next(0.01).pos, new) and stream.frozen


# ---------------------------------------------------------------- brain worker
class _BlockingBackend(BrainBackend):
    """A model that answers only when cancelled (then raises, as the real back-ends do)."""

    name = "blocking"

    def __init__(self) -> None:
        self.started = threading.Event()

    def generate(self, messages: list[dict], image: np.ndarray | None = None, settings: object = None,
                 cancel: threading.Event | None = None) -> str:
        self.started.set()
        cancel.wait(5)
        raise Cancelled("cancelled")


def test_worker_cancel_stops_the_job_without_a_result_or_a_preempted_status() -> None:
    statuses: list[str] = []
    results: list[Job] = []
    backend = _BlockingBackend()
    worker = BrainWorker(lambda: backend, PlannerConfig(), lambda job, _: results.append(job),
                         lambda state, _: statuses.append(state))
    worker.start()
    try:
        assert worker.ready.wait(5)
        camera = CameraModel(np.array([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]), np.eye(4), 64, 64)
        obs = Observation(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), np.float32), camera)
        job = Job("plan", obs, instruction="pick the red block")
        worker.submit(job)
        assert backend.started.wait(5)
        assert worker.cancel("test-operator") == [job] and job.cancelled_by == "test-operator"
        deadline = time.monotonic() + 5
        while worker._running is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker._running is None and results == [] and "preempted" not in statuses
        assert worker.cancel("again") == []
    finally:
        worker.stop()


# ---------------------------------------------------------------- task tracker
RUNNING, SUCCEEDED, FAILED, CANCELLED = 1, 2, 3, 5


def test_tracker_follows_a_plan_to_success_with_a_correction() -> None:
    t = TaskTracker("p1")
    assert t.feedback.phase == "accepted" and t.result is None
    t.on_brain_status({"state": "planning", "detail": "pick"})
    assert t.feedback.phase == "planning"
    t.on_brain_status({"state": "planned", "plan_id": "p1", "revision": 0})
    t.on_execution_status("p1", 0, 1, RUNNING, 0.5, "running place")
    fb = t.feedback
    assert (fb.plan_id, fb.revision, fb.subtask_index, fb.progress, fb.phase) == ("p1", 0, 1, 0.5, "running")
    t.on_execution_status("p1", 0, 1, FAILED, 0.5, "grasp_missed")
    t.on_brain_status({"state": "correcting", "detail": "grasp_missed at subtask 1"})
    t.on_brain_status({"state": "corrected", "plan_id": "p1", "revision": 1})
    t.on_execution_status("p1", 1, 2, SUCCEEDED, 1.0, "plan complete")
    res = t.result
    assert res.success and res.outcome == Outcome.SUCCEEDED and res.corrections == 1 and res.plan_id == "p1"
    t.on_execution_status("p1", 1, 2, FAILED, 1.0, "late")  # after the end nothing changes
    assert t.result == res


def test_tracker_with_the_goal_check_succeeds_on_the_brains_verdict_not_the_cerebellums() -> None:
    t = TaskTracker("p1", verify=True)
    t.on_brain_status({"state": "planned", "plan_id": "p1", "revision": 0})
    t.on_execution_status("p1", 0, 2, SUCCEEDED, 1.0, "plan complete")
    assert t.result is None and t.feedback.phase == "succeeded"
    t.on_brain_status({"state": "verifying", "plan_id": "p1", "revision": 0})
    assert t.feedback.phase == "verifying"
    t.on_brain_status({"state": "corrected", "plan_id": "p1", "revision": 1})  # an unmet goal is redone
    t.on_execution_status("p1", 1, 1, SUCCEEDED, 1.0, "plan complete")
    assert t.result is None
    t.on_brain_status({"state": "succeeded", "plan_id": "p1", "revision": 1, "detail": "[goal holds] ..."})
    assert t.result.success and t.result.corrections == 1 and "goal holds" in t.result.reason
    failed = TaskTracker("p2", verify=True)
    failed.on_brain_status({"state": "planned", "plan_id": "p2", "revision": 3})
    failed.on_execution_status("p2", 3, 1, SUCCEEDED, 1.0, "plan complete")
    failed.on_brain_status({"state": "failed", "plan_id": "p2", "detail": "goal not reached after 3 corrections"})
    assert failed.result.outcome == Outcome.ABORTED and "goal not reached" in failed.result.reason


@pytest.mark.parametrize(("status", "reason"), [
    ({"state": "failed", "plan_id": "p1", "detail": "gave up after 3 corrections"}, "gave up after 3 corrections"),
    ({"state": "failed", "plan_id": "", "detail": "unusable model output"}, "unusable model output"),
    ({"state": "preempted", "detail": "job for plan p1 preempted by a newer request"}, "preempted"),
    ({"state": "planned", "plan_id": "other", "revision": 0}, "superseded by plan other"),
    ({"state": "error", "detail": "internal error while planning: KeyError"}, "internal error"),
])
def test_tracker_aborts_when_the_brain_gives_up_or_another_instruction_takes_over(status: dict, reason: str) -> None:
    t = TaskTracker("p1")
    t.on_brain_status(status)
    assert t.result is not None and t.result.outcome == Outcome.ABORTED and reason in t.result.reason


def test_tracker_ignores_unrelated_statuses() -> None:
    t = TaskTracker("p1")
    t.on_brain_status({"state": "error", "detail": "rgb image ignored: unsupported image encoding"})
    t.on_brain_status({"state": "preempted", "detail": "job for plan p0 preempted by a newer request"})
    t.on_execution_status("p0", 0, 0, RUNNING, 0.1, "an older plan, before ours was published")
    assert t.result is None
    t.on_brain_status({"state": "planned", "plan_id": "p1", "revision": 0})
    t.on_execution_status("p0", 0, 0, RUNNING, 0.1, "the cerebellum has not received ours yet")
    assert t.result is None
    t.on_execution_status("p1", 0, 0, RUNNING, 0.0, "running pick")
    t.on_execution_status("p0", 0, 0, RUNNING, 0.1, "the cerebellum moved on to another plan")
    assert t.result.outcome == Outcome.ABORTED and "superseded" in t.result.reason


def test_tracker_cancel_by_the_client_is_canceled_by_someone_else_aborted() -> None:
    mine = TaskTracker("p1")
    mine.cancel_requested = True
    mine.on_brain_status({"state": "cancelled", "plan_id": "p1", "detail": "cancelled by action client: plan dropped"})
    assert mine.result.outcome == Outcome.CANCELED and "action client" in mine.result.reason
    assert mine.feedback.phase == "cancelled"
    other = TaskTracker("p1")
    other.on_brain_status({"state": "planned", "plan_id": "p1"})
    other.on_execution_status("p1", 0, 0, CANCELLED, 0.2, "cancelled by operator: holding")
    assert other.result.outcome == Outcome.ABORTED and other.result.reason == "cancelled by operator: holding"


def test_tracker_needs_a_plan_id() -> None:
    with pytest.raises(ValueError, match="plan_id"):
        TaskTracker("")


def test_a_late_plan_of_an_earlier_goal_does_not_supersede_the_new_one() -> None:
    from robo_brain.task_tracker import TaskTracker

    tracker = TaskTracker("new", earlier={"old"})
    tracker.on_brain_status({"state": "planned", "plan_id": "old", "revision": 0})
    tracker.on_execution_status("old", 0, 0, 1, 0.1, "running")
    assert tracker.result is None
    tracker.on_brain_status({"state": "planned", "plan_id": "someone-else", "revision": 0})
    assert tracker.result is not None and "superseded by plan someone-else" in tracker.result.reason


def test_a_status_between_the_cancel_and_the_next_policy_step_says_cancelled() -> None:
    # bogus_state_combined: a refused robot state reported right after /robo/cancel carried RUNNING, because the
    # executor hears of the cancel only at the policy thread's next step
    from types import SimpleNamespace

    from robo_cerebellum.node import CerebellumNode

    core = SimpleNamespace(plan=object(), state=State.RUNNING, index=1, last_progress=0.4)
    node = SimpleNamespace(executor_core=core, _pending_cancel="fault-suite")
    assert CerebellumNode._core_state(node) == (State.CANCELLED, 1, 0.4)
    node._pending_cancel = None
    assert CerebellumNode._core_state(node) == (State.RUNNING, 1, 0.4)
    core.state, node._pending_cancel = State.SUCCEEDED, "x"  # nothing to cancel after success
    assert CerebellumNode._core_state(node)[0] == State.SUCCEEDED
