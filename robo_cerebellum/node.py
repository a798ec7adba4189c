"""``cerebellum_node``: the ROS 2 adapter of the fast system (a thin layer over :class:`PlanExecutor`).

A control thread at ``control_rate_hz`` publishes ``/robo/ee_target`` and ``/robo/gripper_command`` every
tick (:class:`~robo_cerebellum.command_stream.CommandStream`: the latest safe policy target, or a hold).
A policy thread runs one policy step per ``policy_hz`` (the checkpoint's trained rate;
:class:`~robo_cerebellum.scheduling.PolicySchedule`) on the latest state and image through the
:class:`PlanExecutor` (policy, failure monitor, safety envelope). Both are threads of their own beside
the events executor that receives plans, state and images, so the control loop never waits for the
policy, the images or the brain. Status goes to ``/robo/execution_status`` after a policy step's
first target (a change at once, else one per ``status_period_s``:
:class:`~robo_cerebellum.scheduling.StatusThrottle`); a failure holds the arm and publishes one
``/robo/failure``.

Robot states pass a :class:`~robo_cerebellum.state_gate.StateGate` first (wrong frame, non-finite,
implausibly far outside the workspace, out-of-order stamps: refused with the reason on the log and the
status topic); a pose jump (a reset) stops the plan and holds at the new pose. When no state arrives
for ``state_timeout_s`` the control thread holds arm and gripper on its own monotonic clock, so the hold
also happens under ``use_sim_time``. ``/robo/cancel`` (std_msgs/String naming who; empty: "operator")
freezes arm and gripper from the next control tick on (its status says CANCELLED) and the executor holds
until a plan with a new ``plan_id``. Parameters: :mod:`robo_cerebellum.params`.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from robo_stack.msg import ExecutionStatus, FailureReport, Plan
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String

from robo_cerebellum.command_stream import CommandStream
from robo_cerebellum.executor import PlanExecutor, State, TickResult
from robo_cerebellum.latched_plans import LatchedPlanFilter
from robo_cerebellum.loop_stats import LoopStats
from robo_cerebellum.model import mamba_kernels
from robo_cerebellum.params import PARAMETERS, settings_from_parameters
from robo_cerebellum.policy import CerebellumPolicy, CheckpointError, Observation
from robo_cerebellum.safety import Verdict
from robo_cerebellum.scheduling import (
    ControlSchedule,
    FrameThinner,
    PolicySchedule,
    StatusThrottle,
    Throttle,
    raise_priority,
)
from robo_cerebellum.state_gate import GateResult, RefusalSummary, StateGate
from robo_common import constants as C
from robo_common.bags import finger_width01
from robo_common.camera import CameraTracker
from robo_common.ros import conversions as conv
from robo_common.ros.qos import qos_for_topic
from robo_common.ros.run import events_executor, run_node


def _pose_msg(stamp: object, pos: np.ndarray, quat: np.ndarray) -> PoseStamped:
    return conv.pose_stamped(stamp, C.BASE_FRAME, pos, quat)


class CerebellumNode(Node):
    """Parameters, subscriptions, publishers and the two threads around a :class:`PlanExecutor`."""

    def __init__(self) -> None:
        """Declare parameters, load the policy (or stay up with an error) and start the loops."""
        super().__init__("cerebellum_node")
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        par = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.executor_core: PlanExecutor | None = None
        self._status_counts: dict[str, int] = {}  # ExecutionStatus messages published per plan id (see _log_counts)
        self._status_lock = threading.Lock()
        self._make_interfaces()
        self._state: tuple[np.ndarray, np.ndarray] | None = None
        self._state_time = self._image_time = self._rgb_time = -float("inf")
        self._state_stamp, self._state_stamp_msg = -float("inf"), None  # header stamp (s, msg) of the latest state
        self._width = 1.0
        self._rgb: np.ndarray | None = None
        self._depth: np.ndarray | None = None
        self._depth_stamp: float | None = None
        self._new_image = False
        self._camera = CameraTracker(C.BASE_FRAME)
        self.stream = CommandStream(0.1)
        self._gate = StateGate()
        self._pending_plan: Plan | None = None
        self._latched = LatchedPlanFilter()  # several publishers' latched plans at start-up: the newest wins
        self._pending_cancel: str | None = None  # who cancelled; the policy thread tells the executor
        self._jump: tuple[np.ndarray, np.ndarray, float] | None = None  # a jump not yet seen by the policy thread
        self._stop, self._tick_now = threading.Event(), threading.Event()  # _tick_now: a cancel, hold at once
        self._holding_since: float | None = None  # when the control thread's stale-state hold began
        self._hold_report, self._refusal_report, self._refused = Throttle(0.5), Throttle(1.0), RefusalSummary()
        self.rate, self._priority = 200.0, 0
        self._status_throttle, self._sim_time = StatusThrottle(0.0), False
        self._load(par)
        self.loop_stats = LoopStats()  # published on /robo/cerebellum_diagnostics once a second (steady clock)
        self.create_timer(1.0, lambda: self.pub_diag.publish(String(data=json.dumps(
            self.loop_stats.snapshot(time.monotonic())))), clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._threads = [threading.Thread(target=self._control_loop, name="cerebellum_control", daemon=True)]
        if self.executor_core is not None:
            self._threads.append(threading.Thread(target=self._policy_loop, name="cerebellum_policy", daemon=True))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ set-up
    def _load(self, par: dict) -> None:
        try:
            cfg = settings_from_parameters(par)
            self.rate, self._priority = cfg.control_rate_hz, cfg.control_thread_priority
            import torch

            torch.set_num_threads(cfg.torch_threads)
            policy = CerebellumPolicy.load(cfg.checkpoint)
        except (CheckpointError, ValueError, OSError) as exc:
            self._error(f"cerebellum not ready: {exc}")
            return
        self._gate = StateGate(cfg.gate)
        self.executor_core = PlanExecutor(policy, cfg.safety, cfg.monitor, cfg.scene, cfg.grounding, cfg.max_subtasks)
        self.policy_period = 1.0 / policy.cfg.policy_hz
        self._status_throttle = StatusThrottle(cfg.status_period_s)
        self._policy_frames = FrameThinner(cfg.policy_image_hz or policy.cfg.camera_hz)
        self.stream = CommandStream(cfg.safety.state_timeout_s, cfg.interpolation_s)
        pc, period = policy.cfg, self._policy_frames.period
        frames = f"at {1.0 / period:g} Hz" if period else "every one"
        self.get_logger().info(f"cerebellum up: {cfg.checkpoint} ({pc.backbone} {pc.hidden_size}x{pc.num_layers}), "
                               f"loop {self.rate:.0f} Hz, policy {pc.policy_hz:.0f} Hz, camera frames to the policy "
                               f"{frames}"
                               + (f", {mamba_kernels()}" if pc.backbone == "mamba2" else ""))

    def _make_interfaces(self) -> None:
        def pub(kind: type, topic: str):  # noqa: ANN202 - rclpy Publisher
            return self.create_publisher(kind, C.relative(topic), qos_for_topic(topic))

        def sub(kind: type, topic: str, callback) -> None:  # noqa: ANN001
            self.create_subscription(kind, C.relative(topic), callback, qos_for_topic(topic))

        self.pub_target, self.pub_gripper = pub(PoseStamped, C.TOPIC_EE_TARGET), pub(Float64, C.TOPIC_GRIPPER_COMMAND)
        self.pub_status = pub(ExecutionStatus, C.TOPIC_EXECUTION_STATUS)
        self.pub_failure = pub(FailureReport, C.TOPIC_FAILURE)
        self.pub_diag = pub(String, C.TOPIC_CEREBELLUM_DIAGNOSTICS)
        plan_qos = qos_for_topic(C.TOPIC_PLAN)
        plan_qos.depth = 10  # a late joiner gets one latched plan per publisher: keep them all (depth 1 kept one)
        self.create_subscription(Plan, C.relative(C.TOPIC_PLAN), self._on_plan, plan_qos)
        sub(String, C.TOPIC_CANCEL, self._on_cancel)
        sub(PoseStamped, C.TOPIC_EE_POSE, self._on_pose)
        sub(JointState, C.TOPIC_JOINT_STATES, self._on_joints)
        sub(Image, C.TOPIC_COLOR_IMAGE, self._on_rgb)
        sub(Image, C.TOPIC_DEPTH_IMAGE, self._on_depth)
        sub(CameraInfo, C.TOPIC_CAMERA_INFO, lambda msg: self._camera_error(self._camera.set_info(msg)))
        sub(PoseStamped, C.TOPIC_CAMERA_POSE,
            lambda msg: self._camera_error(self._camera.set_pose(msg.header.frame_id, conv.pose_array(msg))))

    def _error(self, text: str) -> None:
        """Log an error and say it on the status topic, with the state of the plan that keeps running."""
        self.get_logger().error(text)
        self._publish_status(*self._core_state(), text)

    def _core_state(self) -> tuple[State, int, float]:
        """State, subtask and progress for a status between policy steps (a refusal, an error, a stale hold)."""
        core = self.executor_core
        if core is None or core.plan is None:
            return State.IDLE, 0, 0.0
        if self._pending_cancel is not None and core.state in (State.RUNNING, State.HOLDING, State.FAILED):
            # cancelled (the control thread said so) but the policy thread has not told the executor yet:
            # a refusal in between must not report the plan RUNNING again
            return State.CANCELLED, core.index, core.last_progress
        return core.state, core.index, core.last_progress

    def _camera_error(self, text: str) -> None:
        if text:
            self.get_logger().error(f"{text}; push results and keypoints are not checked", throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ inputs
    def _on_plan(self, msg: Plan) -> None:
        if self.executor_core is None:
            return self._error("plan received but the cerebellum has no policy loaded")
        if msg.header.frame_id not in ("", C.BASE_FRAME):
            return self._error(f"plan {msg.plan_id} refused: keypoints in frame {msg.header.frame_id!r}, "
                               f"expected {C.BASE_FRAME!r}")
        limit = self.executor_core.limits.max_subtasks
        if len(msg.subtasks) > limit:  # refused here, before converting thousands of subtasks
            return self._error(f"plan {msg.plan_id} refused: {len(msg.subtasks)} subtasks, more than max_subtasks "
                               f"{limit}")
        stale = self._latched.check(msg.plan_id, conv.stamp_to_ns(msg.header.stamp), time.monotonic())
        if stale:
            return self._error(stale)
        if self._state is None:
            self.get_logger().info(f"plan {msg.plan_id} kept until the first robot state on {C.TOPIC_EE_POSE}")
        self._pending_plan = msg  # the policy thread starts it (once robot state has arrived)

    def _on_cancel(self, msg: String) -> None:
        """Hold at once (the control thread's next tick); the policy thread then cancels the plan."""
        by = msg.data.strip()[:100] or C.CANCEL_DEFAULT_BY
        self.stream.hold_now(by)
        self._tick_now.set()
        self._pending_plan = None  # a plan that arrived before the cancel is cancelled with it
        self._pending_cancel = by

    def _start_plan(self, msg: Plan) -> None:
        try:
            plan = conv.plan_from_msg(msg)
            line = self.executor_core.set_plan(plan, *self._state)
        except ValueError as exc:
            return self._error(f"plan {msg.plan_id} refused: {exc}")
        if self.executor_core.plan is plan:  # started (an ignored revision keeps the stream as it is)
            self.stream.clear()
            self._log_status_counts(keep=plan.plan_id)
        self.get_logger().info(line)

    def _log_status_counts(self, keep: str | None = None) -> None:
        """Log how many ExecutionStatus messages went out for each plan id but ``keep`` (one line per plan, when
        the next plan starts and at shutdown), so a subscriber can compare what it received:
        ``execution_status published: plan_id=<id> count=<n>``."""
        with self._status_lock:
            done = {k: n for k, n in self._status_counts.items() if k != keep}
            for k in done:
                del self._status_counts[k]
        for plan_id, n in done.items():
            if plan_id:
                self.get_logger().info(f"execution_status published: plan_id={plan_id} count={n}")

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])
        arrival, stamp = time.monotonic(), conv.stamp_to_ns(msg.header.stamp) / 1e9
        verdict = self._gate.check_pose(msg.header.frame_id, pos, quat, stamp, arrival)
        if not verdict.accepted:
            return self._refuse_state(verdict)
        quat = quat / np.linalg.norm(quat)
        if verdict.jumped and self.executor_core is not None:
            self._jump = (pos, quat, verdict.jump_m)  # hold there from the next tick on, not after the next policy step
            self.stream.jump(np.clip(pos, self._gate.config.workspace_min, self._gate.config.workspace_max), quat)
        self._state = (pos, quat)
        self._state_time = self.stream.state_time = arrival
        self._state_stamp, self._state_stamp_msg = stamp, msg.header.stamp

    def _refuse_state(self, verdict: GateResult) -> None:
        """Gather a refused robot state; once a second, one line naming every kind of refusal goes to the log
        and the status topic."""
        self._refused.add(verdict)
        if self._refusal_report.ready(time.monotonic()):
            text = self._refused.take()
            self.get_logger().error(text)
            self._publish_status(*self._core_state(), text)

    def _on_joints(self, msg: JointState) -> None:
        if msg.header.frame_id not in ("", C.BASE_FRAME):
            return self._refuse_state(GateResult(False, f"joint state in frame {msg.header.frame_id!r}, "
                                                        f"expected {C.BASE_FRAME!r}", kind="joint-frame"))
        width = finger_width01(msg.name, msg.position, clip=False)  # a bogus 1e9 must not read as "open"
        verdict = StateGate.check_width(width)
        if verdict.accepted:
            self._width = float(np.clip(width, 0.0, 1.0))
        elif "no finger joints" not in verdict.reason:  # an arm-only joint state is not an error
            self._refuse_state(verdict)

    def _on_rgb(self, msg: Image) -> None:
        try:
            self._rgb, self._rgb_time = conv.image_to_numpy(msg), time.monotonic()
        except ValueError as exc:
            self.get_logger().error(f"colour image ignored: {exc}", throttle_duration_sec=2.0)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = conv.image_to_numpy(msg)
        except ValueError as exc:
            return self.get_logger().error(f"depth image ignored: {exc}", throttle_duration_sec=2.0)
        if self._rgb is not None:
            stamp = conv.stamp_to_ns(msg.header.stamp) / 1e9  # robot clock, as the state's: the grounding check
            self._depth, self._depth_stamp, self._new_image = depth, stamp, True  # encoded by the policy thread
            self._image_time = min(time.monotonic(), self._rgb_time)  # bad colour beside good depth goes stale

    # ------------------------------------------------------------------ policy thread
    def _policy_loop(self) -> None:
        """One policy step per policy period (monotonic clock, or the state stamps under ``use_sim_time``)."""
        sim = self._sim_time = bool(self.get_parameter("use_sim_time").value)
        schedule = PolicySchedule(self.policy_period, sim)
        while not self._stop.is_set():
            wait = schedule.wait_s(self._state_stamp if sim else time.monotonic())
            if wait > 0:
                self._stop.wait(wait)
                continue
            try:
                self._policy_step()
            except Exception as exc:  # noqa: BLE001 - the loop must survive; the arm holds meanwhile
                self.get_logger().error(f"policy step failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    def _take_inputs(self, core: PlanExecutor) -> None:
        """Jumps, cancels, plans and images that arrived since the last step, in that order."""
        core.robot_time_s = self._state_stamp if math.isfinite(self._state_stamp) else None
        if self.stream.take_jump() and self._jump is not None:
            self.get_logger().warning(core.robot_jumped(*self._jump))
        if self._pending_cancel is not None:
            by, self._pending_cancel = self._pending_cancel, None
            self.get_logger().warning(core.cancel(by))
        if self._pending_plan is not None:
            plan, self._pending_plan = self._pending_plan, None
            self._start_plan(plan)
        if self._new_image and self._rgb is not None and self._depth is not None:
            self._new_image = False
            try:
                if self._policy_frames.due(self._depth_stamp):
                    core.policy.update_image(self._rgb, self._depth)
            except ValueError as exc:
                return self.get_logger().error(f"camera frame not usable: {exc}", throttle_duration_sec=2.0)
            cam = self._camera.model
            if cam is not None and self._depth.shape[:2] == (cam.height, cam.width):
                core.update_view(self._depth, cam, self._rgb if self._rgb.shape[:2] == self._depth.shape[:2] else None,
                                 self._depth_stamp)

    def _policy_step(self) -> None:
        core, state = self.executor_core, self._state
        if core is None or state is None:
            return
        t0 = time.perf_counter()
        self._take_inputs(core)
        now = time.monotonic()
        obs = Observation(*self._state, self._width)
        result = core.tick(obs, now - self._state_time, now - self._image_time, self.policy_period)
        self.loop_stats.policy_step(time.perf_counter() - t0 if result.command is not None else None)
        status = (result.state, result.subtask_index, result.progress, result.detail, self._state_stamp_msg)
        if result.state == State.RUNNING and self.stream.frozen:
            status = None  # a step begun before a cancel: neither its command nor its status goes out
        elif not self._status_throttle.due((result.state, result.subtask_index,  # a hold's detail counts ms
                                            "" if result.state == State.HOLDING else result.detail),
                                           self._state_stamp if self._sim_time else now):
            status = None  # a policy at the control rate: 1 status in status_period_s while only progress moves
        if not self.stream.update(result.safe.pos, result.safe.quat, result.gripper, result.state == State.RUNNING,
                                  now, (obs.ee_pos, obs.ee_quat), status):
            return  # the robot jumped during this step: its command is from before the jump
        if result.safe.verdict == Verdict.CLAMPED:
            self.get_logger().warning("command clamped: " + "; ".join(result.safe.reasons), throttle_duration_sec=2.0)
        if result.failure is not None:
            self._publish_failure(result, obs)

    # ------------------------------------------------------------------ control thread
    def _control_loop(self) -> None:
        """:meth:`_tick` on absolute deadlines (:class:`ControlSchedule`); a cancel adds one tick at once."""
        why = raise_priority(self._priority)
        if why:
            self.get_logger().info(f"control thread at normal priority: {why}")
        else:
            self.get_logger().info(f"control thread on SCHED_FIFO priority {min(self._priority, 99)}")
        schedule = ControlSchedule(1.0 / self.rate, time.monotonic())
        while not self._stop.is_set():
            delay = schedule.next_delay(time.monotonic())
            if delay > 0 and self._tick_now.wait(delay):
                self._tick_now.clear()
                schedule.extra_tick()
            self.loop_stats.tick(time.monotonic())
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - e.g. publishing while the context shuts down
                if self._stop.is_set():
                    return
                self.get_logger().error(f"control tick failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    def _tick(self) -> None:
        now = time.monotonic()
        cmd = self.stream.next(now)
        if cmd is None:
            return
        stamp = self.get_clock().now().to_msg()
        self.pub_target.publish(_pose_msg(stamp, cmd.pos, cmd.quat))
        self.pub_gripper.publish(Float64(data=cmd.gripper))
        if cmd.stale:
            self._report_stale_hold(now)
        else:
            self._holding_since = None
            self._hold_report.reset()
        _, index, progress = self._core_state()
        if cmd.cancelled_by is not None:  # the first held tick after /robo/cancel, stamped like its target
            self._publish_status(State.CANCELLED, index, progress, f"cancelled by {cmd.cancelled_by}: holding", stamp)
        if cmd.status is not None:  # a policy step's status follows its first target (a lock-stepped sim waits on it)
            self._publish_status(*cmd.status)

    def _report_stale_hold(self, now: float) -> None:
        """HOLDING on the status topic when the stale-state hold begins and twice a second while it lasts."""
        first = self._holding_since is None
        if first:
            self._holding_since = now
        if self._hold_report.ready(now):
            detail = f"robot state is {(now - self._state_time) * 1e3:.0f} ms old: holding arm and gripper"
            if first:
                self.get_logger().warning(detail)
            _, index, progress = self._core_state()
            self._publish_status(State.HOLDING, index, progress, detail)

    # ------------------------------------------------------------------ outputs
    def destroy_node(self) -> None:
        """Stop the threads, then the node (also after a constructor that failed half-way)."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=2.0)
        if hasattr(self, "_status_lock"):
            self._log_status_counts()
        super().destroy_node()

    def _publish_status(self, state: State, index: int, progress: float, detail: str, stamp: object = None) -> None:
        """Publish the execution status, stamped with the robot state it was computed from (else now)."""
        plan = self.executor_core.plan if self.executor_core is not None else None
        stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        plan_id = plan.plan_id if plan is not None else ""
        with self._status_lock:
            self._status_counts[plan_id] = self._status_counts.get(plan_id, 0) + 1
        self.pub_status.publish(conv.status_msg(stamp, C.BASE_FRAME, plan, state, index, progress, detail))

    def _publish_failure(self, result: TickResult, obs: Observation) -> None:
        cmd, measured = result.command, (obs.ee_pos, obs.ee_quat)
        self.pub_failure.publish(conv.failure_msg(
            self.get_clock().now().to_msg(), C.BASE_FRAME, self.executor_core.plan, result.subtask_index,
            result.failure.kind, result.failure.detail, cmd.failure_probability if cmd else 0.0,
            (cmd.target_pos, cmd.target_quat) if cmd else measured, measured))
        self.get_logger().warning(f"failure in subtask {result.subtask_index}: {result.detail}; holding")


def main(args: list[str] | None = None) -> None:
    """Run ``cerebellum_node`` until shut down."""
    sys.setswitchinterval(0.0005)  # let the control tick take the GIL from the policy thread quickly
    run_node(CerebellumNode, args, executor=events_executor)  # ~430 state/image messages a second


if __name__ == "__main__":
    main()
