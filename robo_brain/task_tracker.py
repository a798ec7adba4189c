"""Follows one instruction from the brain's statuses and the cerebellum's execution statuses (ROS-free).

The ``ExecuteInstruction`` action server (:mod:`robo_brain.action_server`) keeps one
:class:`TaskTracker` per goal and feeds it what the brain and the cerebellum report; the tracker
turns that into the action's feedback (:class:`TaskFeedback`) and, once, its result
(:class:`TaskResult`):

* success: the cerebellum reports SUCCEEDED for the goal's plan (with ``verify``: and the brain then
  reports ``succeeded``, its goal check in the image);
* aborted: planning failed, the brain gave up correcting, a newer instruction or goal took over, or a
  ``/robo/cancel`` from someone else stopped it;
* cancelled: the cancel the action client asked for went through (the brain dropped the plan or the
  cerebellum reports CANCELLED).

Thread-safe: the brain reports from its worker thread, the cerebellum's statuses arrive on the
executor's thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

# robo_stack/ExecutionStatus states (robo_cerebellum.executor.State; the brain does not import the cerebellum)
EXECUTION_STATES = ("idle", "running", "succeeded", "failed", "holding", "cancelled")
SUCCEEDED, CANCELLED = 2, 5
ERRORS_THAT_END_A_TASK = ("internal error while planning", "cannot plan", "cannot correct", "failure not handled",
                          "model failed to load")


class Outcome(StrEnum):
    """How a task ended (the action's terminal goal states)."""

    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    CANCELED = "canceled"


@dataclass(frozen=True)
class TaskFeedback:
    """Where the task stands (the action's feedback)."""

    plan_id: str = ""
    revision: int = 0
    subtask_index: int = 0
    progress: float = 0.0
    phase: str = "accepted"


@dataclass(frozen=True)
class TaskResult:
    """How the task ended (the action's result and terminal state)."""

    outcome: Outcome
    reason: str
    corrections: int
    plan_id: str

    @property
    def success(self) -> bool:
        """True when the cerebellum finished the plan."""
        return self.outcome == Outcome.SUCCEEDED


class TaskTracker:
    """One instruction's progress, from submission to its result (see the module docstring)."""

    def __init__(self, plan_id: str, earlier: set[str] | frozenset[str] = frozenset(), verify: bool = False) -> None:
        """Track the plan the brain makes under ``plan_id`` (the id the instruction was submitted with).

        ``earlier``: plan ids of instructions submitted before this one; a plan of theirs that the brain
        finishes late (it was already done when this goal preempted it) does not supersede this goal.
        ``verify``: the brain checks the goals after the cerebellum's SUCCEEDED (``verify_goals``); the task
        succeeds on the brain's ``succeeded``.
        """
        if not plan_id:
            raise ValueError("TaskTracker needs the plan_id the instruction was submitted with, got ''")
        self.plan_id = plan_id
        self.verify = bool(verify)
        self.earlier = frozenset(earlier)
        self._lock = threading.Lock()
        self._feedback = TaskFeedback(plan_id, phase="accepted")
        self._result: TaskResult | None = None
        self._planned = False  # the brain published a plan under plan_id
        self._executing = False  # the cerebellum reported on it
        self.cancel_requested = False  # the action client asked to cancel

    # ------------------------------------------------------------------ reading
    @property
    def feedback(self) -> TaskFeedback:
        """The latest feedback."""
        with self._lock:
            return self._feedback

    @property
    def result(self) -> TaskResult | None:
        """The result once the task ended, else None."""
        with self._lock:
            return self._result

    # ------------------------------------------------------------------ events
    def on_brain_status(self, status: dict) -> None:
        """A ``/robo/brain_status`` state (the JSON fields: state, detail, plan_id, revision, by...)."""
        state, detail = str(status.get("state", "")), str(status.get("detail", ""))
        plan_id, revision = str(status.get("plan_id", "")), int(status.get("revision", 0) or 0)
        with self._lock:
            if self._result is not None:
                return
            ours = plan_id == self.plan_id
            if state == "cancelled":  # /robo/cancel stops whatever runs
                self._cancelled(detail or "cancelled")
            elif state in ("planned", "corrected") and ours:
                self._planned = True
                self._update(revision=revision, phase=state, progress=0.0)
            elif state in ("planned", "corrected") and plan_id and plan_id not in self.earlier:
                self._end(Outcome.ABORTED, f"superseded by plan {plan_id} (a newer instruction)")
            elif state == "failed" and (ours or (not plan_id and not self._planned)):
                self._end(Outcome.ABORTED, f"the brain failed: {detail}" if detail else "the brain failed")
            elif state == "preempted" and self.plan_id in detail:
                self._end(Outcome.ABORTED, "preempted by a newer instruction")
            elif state == "error" and detail.startswith(ERRORS_THAT_END_A_TASK):
                self._end(Outcome.ABORTED, detail)
            elif state == "succeeded" and ours:
                self._end(Outcome.SUCCEEDED, detail or "plan complete")
            elif state in ("waiting", "planning", "correcting", "verifying"):
                self._update(phase=state)

    def on_execution_status(self, plan_id: str, revision: int, subtask_index: int, state: int, progress: float,
                            detail: str) -> None:
        """A ``/robo/execution_status`` message of the cerebellum."""
        with self._lock:
            if self._result is not None or not plan_id:
                return
            if plan_id != self.plan_id:
                # the cerebellum runs another plan now (before ours: it has not started it yet)
                if self._executing and plan_id not in self.earlier:
                    self._end(Outcome.ABORTED, f"superseded by plan {plan_id} on the cerebellum")
                return
            self._executing = True
            phase = EXECUTION_STATES[state] if 0 <= state < len(EXECUTION_STATES) else f"state {state}"
            self._update(revision=int(revision), subtask_index=int(subtask_index), progress=float(progress),
                         phase=phase)
            if state == SUCCEEDED and not self.verify:
                self._end(Outcome.SUCCEEDED, detail or "plan complete")
            elif state == CANCELLED:
                self._cancelled(detail or "cancelled")

    def end(self, outcome: Outcome, reason: str) -> None:
        """End the task from outside (a new goal took over, the cancel went unanswered, shutdown)."""
        with self._lock:
            if self._result is None:
                self._end(outcome, reason)

    # ------------------------------------------------------------------ helpers (lock held)
    def _update(self, **fields: object) -> None:
        current = self._feedback
        self._feedback = TaskFeedback(**{**current.__dict__, **fields})

    def _cancelled(self, detail: str) -> None:
        self._update(phase="cancelled")
        self._end(Outcome.CANCELED if self.cancel_requested else Outcome.ABORTED, detail)

    def _end(self, outcome: Outcome, reason: str) -> None:
        self._result = TaskResult(outcome, reason, self._feedback.revision, self.plan_id)
