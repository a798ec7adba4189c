"""The ``ExecuteInstruction`` action of ``brain_node`` (a ROS adapter around :class:`TaskTracker`).

``/robo/execute_instruction`` (robo_stack/action/ExecuteInstruction) is the ROS 2 way to run a long
task (as nav2's ``NavigateToPose``), beside the ``/robo/instruction`` topic:

* goal: the instruction text, submitted like the topic does, under a plan id the server chooses; one
  goal at a time: a new goal aborts the running one (nav2's behaviour);
* feedback (at most every ``FEEDBACK_PERIOD_S``, when it changed): plan id, revision, subtask index,
  progress and phase, from ``/robo/execution_status`` and the brain's own status;
* result: success once the cerebellum reports SUCCEEDED (with ``verify_goals``: once the brain's goal
  check then reports ``succeeded``); else the reason (planning failed, the brain
  gave up correcting, a newer instruction took over, cancelled by whom) and the corrections made;
* cancel: the same path as an operator's ``/robo/cancel``, published with who = "action client"
  (the cerebellum holds, the brain drops the plan); the goal ends CANCELED when the brain or the
  cerebellum confirms, or after ``CANCEL_TIMEOUT_S`` without an answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.node import Node
from rclpy.task import Future
from robo_stack.action import ExecuteInstruction
from robo_stack.msg import ExecutionStatus
from std_msgs.msg import String

from robo_brain.task_tracker import Outcome, TaskFeedback, TaskTracker
from robo_common import constants as C
from robo_common.ros.qos import qos_for_topic

FEEDBACK_PERIOD_S = 0.1
CANCEL_TIMEOUT_S = 3.0
CANCEL_BY = "action client"

Submit = Callable[[str, str], str]
"""``submit(instruction, plan_id) -> ""`` when the brain took it, else why not."""


@dataclass
class _Goal:
    handle: ServerGoalHandle
    tracker: TaskTracker
    done: Future
    sent: TaskFeedback | None = None
    cancel_deadline: float | None = None


class ExecuteInstructionServer:
    """Serves the action on ``node``; the node calls :meth:`on_brain_status` with each of its statuses."""

    def __init__(self, node: Node, submit: Submit, verify: bool = False) -> None:
        """Create the action server, the cancel publisher, the execution status subscription and the poll timer.

        ``verify``: brain_node checks the goals after the cerebellum's SUCCEEDED (``verify_goals``), and a goal
        succeeds on the brain's ``succeeded``.
        """
        self._node, self._submit, self._verify = node, submit, bool(verify)
        self._goals: list[_Goal] = []
        self._issued: frozenset[str] = frozenset()  # plan ids of earlier goals (their late plans are not newer)
        self._cancel_pub = node.create_publisher(String, C.relative(C.TOPIC_CANCEL), qos_for_topic(C.TOPIC_CANCEL))
        node.create_subscription(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS), self._on_execution_status,
                                 qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        self._server = ActionServer(node, ExecuteInstruction, C.relative(C.ACTION_EXECUTE_INSTRUCTION),
                                    execute_callback=self._execute, goal_callback=self._on_goal,
                                    cancel_callback=self._on_cancel)
        self._timer = node.create_timer(FEEDBACK_PERIOD_S, self._poll)

    # ------------------------------------------------------------------ inputs
    def on_brain_status(self, status: dict) -> None:
        """One brain status (any thread)."""
        for goal in list(self._goals):
            goal.tracker.on_brain_status(status)

    def _on_execution_status(self, msg: ExecutionStatus) -> None:
        for goal in list(self._goals):
            goal.tracker.on_execution_status(msg.plan_id, msg.revision, msg.subtask_index, msg.state, msg.progress,
                                             msg.detail)

    # ------------------------------------------------------------------ action callbacks
    def _on_goal(self, goal: ExecuteInstruction.Goal) -> GoalResponse:
        if not goal.instruction.strip():
            self._node.get_logger().error("ExecuteInstruction goal rejected: empty instruction")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        goal = next((g for g in self._goals if g.handle is handle), None)
        if goal is None or goal.tracker.result is not None:
            return CancelResponse.REJECT
        goal.tracker.cancel_requested = True
        goal.cancel_deadline = time.monotonic() + CANCEL_TIMEOUT_S
        self._node.get_logger().warning(f"ExecuteInstruction goal for plan {goal.tracker.plan_id}: cancel requested")
        self._cancel_pub.publish(String(data=CANCEL_BY))
        return CancelResponse.ACCEPT

    async def _execute(self, handle: ServerGoalHandle) -> ExecuteInstruction.Result:
        for old in self._goals:
            old.tracker.end(Outcome.ABORTED, "preempted by a newer ExecuteInstruction goal")
        self._issued = (self._issued | {old.tracker.plan_id for old in self._goals})  # ids of earlier goals
        goal = _Goal(handle, TaskTracker(uuid.uuid4().hex, self._issued, self._verify), Future())
        self._goals.append(goal)
        instruction = handle.request.instruction
        self._node.get_logger().info(f"ExecuteInstruction goal (plan {goal.tracker.plan_id}): {instruction[:200]!r}")
        error = self._submit(instruction, goal.tracker.plan_id)
        if error:
            goal.tracker.end(Outcome.ABORTED, error)
        self._poll()
        await goal.done
        return self._finish(goal)

    # ------------------------------------------------------------------ timer
    def _poll(self) -> None:
        """Send changed feedback, time out unanswered cancels, and wake the goals that ended."""
        now = time.monotonic()
        for goal in list(self._goals):
            tracker = goal.tracker
            if tracker.result is None and goal.cancel_deadline is not None and now > goal.cancel_deadline:
                tracker.end(Outcome.CANCELED, f"cancelled by {CANCEL_BY} (no confirmation within "
                                              f"{CANCEL_TIMEOUT_S:.0f} s)")
            if tracker.result is not None:
                self._goals.remove(goal)
                goal.done.set_result(True)
                continue
            feedback = tracker.feedback
            if feedback != goal.sent and goal.handle.is_active:
                goal.sent = feedback
                goal.handle.publish_feedback(ExecuteInstruction.Feedback(
                    plan_id=feedback.plan_id, revision=feedback.revision, subtask_index=feedback.subtask_index,
                    progress=float(feedback.progress), phase=feedback.phase))

    def _finish(self, goal: _Goal) -> ExecuteInstruction.Result:
        result, handle = goal.tracker.result, goal.handle
        if result.outcome == Outcome.SUCCEEDED:
            handle.succeed()
        elif result.outcome == Outcome.CANCELED and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        self._node.get_logger().info(f"ExecuteInstruction plan {result.plan_id}: {result.outcome} ({result.reason})")
        return ExecuteInstruction.Result(success=result.success, reason=result.reason[:2000],
                                         corrections=result.corrections, plan_id=result.plan_id)

    def destroy(self) -> None:
        """End the open goals (aborted) and destroy the server."""
        for goal in self._goals:
            goal.tracker.end(Outcome.ABORTED, "brain_node shutting down")
        self._server.destroy()
