"""``cerebellum_node``: the ROS 2 adapter of the fast system (a thin layer over :class:`PlanExecutor`).

A control thread at ``control_rate_hz`` publishes ``/robo/ee_target`` and ``/robo/gripper_command`` every
tick: the latest policy target, blended in from the previous one over ``interpolation_s`` (0: at
once, which is how the demonstrations were recorded: a command holds for one policy period, and
blending it in over that period makes the arm lag a period behind what the policy expects, e.g.
the gripper closes before the fingers are around the object). A second thread runs one policy step at
``policy_hz`` (the rate the policy was trained at, from its checkpoint) on the latest state and
image, and passes its command through the safety envelope. Both loops are threads of their own
beside the executor that receives plans, state and images, so the control loop never waits for
the policy, for images or for the brain. Status goes to
``/robo/execution_status`` at policy rate; a failure holds the arm where it is and publishes one ``/robo/failure``.

The control thread asks for SCHED_FIFO (``control_thread_priority``) and the callbacks run in rclpy's
events executor, which keeps the GIL free more of the time. With ``push_check``, a finished push is
checked on the next depth frame (camera model from ``camera_info`` and the camera pose topic); with
``keypoint_check``, a pick's (push's) keypoints are checked in the colour and depth frames as it starts.

Robot states pass a :class:`StateGate` first: a pose in another frame, non-finite, implausibly far
outside the workspace or stamped before the last one is refused (logged, and said on the status
topic), never used, so no hold is ever anchored on it; a pose far from the last one (a reset) stops
the plan and holds there. Stale-input watchdog: the ages of the last state and image are measured
on arrival (monotonic clock); the control thread holds arm and gripper on its own when the state
stops, so the hold also happens under ``use_sim_time`` (see :mod:`robo_cerebellum.command_stream`).

``/robo/cancel`` (std_msgs/String naming who; empty: "operator") freezes arm and gripper from the next
control tick on (that tick's status says CANCELLED, stamped like its target), drops a plan not yet
started, and the executor holds in CANCELLED until a plan with a new ``plan_id`` arrives.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from robo_stack.msg import ExecutionStatus, FailureReport, Plan
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String

from robo_cerebellum.command_stream import CommandStream
from robo_cerebellum.executor import PlanExecutor, State, TickResult
from robo_cerebellum.monitor import MonitorConfig
from robo_cerebellum.policy import CerebellumPolicy, CheckpointError, Observation
from robo_cerebellum.safety import SafetyConfig, Verdict
from robo_cerebellum.scene_checks import GroundingConfig, SceneCheckConfig
from robo_cerebellum.state_gate import GateResult, StateGate, StateGateConfig
from robo_common import constants as C
from robo_common.bags import finger_width01
from robo_common.camera import CameraModel
from robo_common.geometry import pose_to_matrix
from robo_common.resources import resource_path
from robo_common.ros.conversions import image_to_numpy, plan_from_msg, pose_array, pose_stamped, stamp_to_ns
from robo_common.ros.qos import qos_for_topic
from robo_common.ros.run import events_executor, run_node

DEFAULT_CHECKPOINT = str(resource_path("models", "cerebellum"))

PARAMETERS: dict[str, tuple[object, str]] = {
    "checkpoint": (DEFAULT_CHECKPOINT, "Cerebellum checkpoint folder (model.safetensors + config.json)."),
    "control_rate_hz": (200.0, "Rate of the control loop and of /robo/ee_target (Hz)."),
    "torch_threads": (1, "Torch CPU threads of the policy (1 is fastest at batch 1)."),
    "workspace_min": ([0.2, -0.45, 0.005], "Lower corner of the allowed end-effector box (m, base frame)."),
    "workspace_max": ([0.8, 0.45, 0.6], "Upper corner of the allowed end-effector box (m, base frame)."),
    "max_speed": (0.6, "Largest commanded end-effector speed (m/s)."),
    "max_angular_speed": (3.0, "Largest commanded end-effector angular speed (rad/s)."),
    "max_subtasks": (32, "Refuse a plan with more subtasks than this."),
    "state_timeout_s": (0.1, "Hold when no robot state arrived for this long (s)."),
    "state_margin_m": (0.3, "Refuse a measured end-effector pose farther than this outside the workspace box (m): "
                            "it is not a state of this robot (a bogus publisher, wrong units)."),
    "state_jump_m": (0.05, "A measured pose this far (m, plus 2 m/s x the time since the last one) from the last one "
                           "is a jump (robot reset or re-homed): the plan stops and the arm holds at the new pose."),
    "image_timeout_s": (0.5, "Hold when no camera image arrived for this long (s); 0 disables."),
    "tracking_error_m": (0.05, "Tracking error that, sustained, counts as a failure (m)."),
    "subtask_timeout_s": (30.0, "Longest time one subtask may take (s)."),
    "failure_threshold": (1.0, "Learned failure probability that, sustained, counts as a failure (1.0: the learned "
                                "head is off, only the explicit checks run)."),
    "control_thread_priority": (50, "SCHED_FIFO priority of the control thread (1-99, as ros2_control's "
                                    "thread_priority); 0: normal scheduling. Needs CAP_SYS_NICE or an rtprio limit; "
                                    "without it the node warns and runs at normal priority."),
    "push_check": (True, "After a push, look at the next depth frame for the object where the push should have left "
                         "it; nothing there is a no_progress failure. Needs camera_info and the camera pose topic."),
    "keypoint_check": (True, "When a pick or push starts, check in the colour and depth frames that its object stands "
                             "at its grasp keypoint (ahead of push_start): bare table there, or an object whose colour "
                             "contradicts the colour word of the object's name, is a grasp_missed (no_progress) "
                             "failure before the arm moves. Needs camera_info and the camera pose topic."),
    "interpolation_s": (0.0, "Blend a new policy target in from the previous one over this long (s); 0: at once "
                             "(as in the demonstrations). A smoother command costs up to this much lag."),
}


def _pose_msg(stamp: object, pos: np.ndarray, quat: np.ndarray) -> PoseStamped:
    return pose_stamped(stamp, C.BASE_FRAME, pos, quat)


class CerebellumNode(Node):
    """Parameters, subscriptions, publishers and the control timer around a :class:`PlanExecutor`."""

    def __init__(self) -> None:
        """Declare parameters, load the policy (or stay up with an error) and start the loop."""
        super().__init__("cerebellum_node")
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        par = {name: self.get_parameter(name).value for name in PARAMETERS}
        import torch

        torch.set_num_threads(int(par["torch_threads"]))
        self.rate = float(par["control_rate_hz"])
        self.executor_core: PlanExecutor | None = None
        self._make_interfaces()
        self._state: tuple[np.ndarray, np.ndarray, float] | None = None
        self._state_time = self._image_time = -math.inf
        self._state_stamp = -math.inf  # header stamp (s) of the latest state
        self._state_stamp_msg = None
        self._width = 1.0
        self._rgb: np.ndarray | None = None
        self.stream = CommandStream(0.1)
        self._pending_plan: Plan | None = None
        self._pending_cancel: str | None = None  # who cancelled; the policy thread tells the executor
        self._depth: np.ndarray | None = None
        self._camera_info: CameraInfo | None = None
        self._camera_T: np.ndarray | None = None
        self._camera: CameraModel | None = None
        self._new_image = False
        self._stop = threading.Event()
        self._tick_now = threading.Event()  # a cancel: the control thread sends the hold at once
        self._gate = StateGate()
        self._jump: tuple[np.ndarray, np.ndarray, float] | None = None  # a jump not yet seen by the policy thread
        self._holding_since: float | None = None  # when the control thread's stale-state hold began
        self._hold_status_time = -math.inf
        self._refusal_time = -math.inf
        self._load(par)
        # The control loop is a thread of its own on absolute monotonic deadlines, not an executor timer:
        # rclpy's executor dispatches timers from Python between subscription callbacks and drops late ticks
        # (an A/B on this machine: 196-197 Hz with the timer, 199 Hz with the thread). Its p99 period beside
        # sim_node on 2 cores (~10 ms) came down to ~5.5 ms with a real-time priority for this thread and the
        # events executor for the callbacks (less Python holding the GIL); see bench/README.md. It runs on the
        # monotonic clock because under use_sim_time a ROS-time timer would stop while a lock-stepped
        # simulator waits for this node's status, which this loop sends (see _tick).
        self._control_priority = int(par["control_thread_priority"])
        self._control_thread = threading.Thread(target=self._control_loop, name="cerebellum_control", daemon=True)
        self._control_thread.start()
        self._policy_thread: threading.Thread | None = None
        if self.executor_core is not None:
            self._policy_thread = threading.Thread(target=self._policy_loop, name="cerebellum_policy", daemon=True)
            self._policy_thread.start()

    # ------------------------------------------------------------------ set-up
    def _load(self, par: dict) -> None:
        try:
            policy = CerebellumPolicy.load(par["checkpoint"])
            safety = SafetyConfig(tuple(par["workspace_min"]), tuple(par["workspace_max"]), float(par["max_speed"]),
                                  float(par["max_angular_speed"]), float(par["state_timeout_s"]),
                                  float(par["image_timeout_s"]))
            self._gate = StateGate(StateGateConfig(tuple(par["workspace_min"]), tuple(par["workspace_max"]),
                                                   float(par["state_margin_m"]), float(par["state_jump_m"])))
            monitor = MonitorConfig(tracking_error_m=float(par["tracking_error_m"]),
                                    subtask_timeout_s=float(par["subtask_timeout_s"]),
                                    failure_threshold=float(par["failure_threshold"]))
        except (CheckpointError, ValueError, OSError) as exc:
            self._error(f"cerebellum not ready: {exc}")
            return
        self.executor_core = PlanExecutor(policy, safety, monitor, SceneCheckConfig() if par["push_check"] else None,
                                          GroundingConfig() if par["keypoint_check"] else None,
                                          int(par["max_subtasks"]))
        self.policy_period = 1.0 / policy.cfg.policy_hz
        self.stream = CommandStream(safety.state_timeout_s, float(par["interpolation_s"]))
        self.get_logger().info(f"cerebellum up: {par['checkpoint']} ({policy.cfg.backbone} "
                               f"{policy.cfg.hidden_size}x{policy.cfg.num_layers}), loop {self.rate:.0f} Hz, "
                               f"policy {policy.cfg.policy_hz:.0f} Hz")

    def _make_interfaces(self) -> None:
        self.pub_target = self.create_publisher(PoseStamped, C.relative(C.TOPIC_EE_TARGET),
                                                qos_for_topic(C.TOPIC_EE_TARGET))
        self.pub_gripper = self.create_publisher(Float64, C.relative(C.TOPIC_GRIPPER_COMMAND),
                                                 qos_for_topic(C.TOPIC_GRIPPER_COMMAND))
        self.pub_status = self.create_publisher(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS),
                                                qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        self.pub_failure = self.create_publisher(FailureReport, C.relative(C.TOPIC_FAILURE),
                                                 qos_for_topic(C.TOPIC_FAILURE))
        self.create_subscription(Plan, C.relative(C.TOPIC_PLAN), self._on_plan, qos_for_topic(C.TOPIC_PLAN))
        self.create_subscription(String, C.relative(C.TOPIC_CANCEL), self._on_cancel, qos_for_topic(C.TOPIC_CANCEL))
        self.create_subscription(PoseStamped, C.relative(C.TOPIC_EE_POSE), self._on_pose,
                                 qos_for_topic(C.TOPIC_EE_POSE))
        self.create_subscription(JointState, C.relative(C.TOPIC_JOINT_STATES), self._on_joints,
                                 qos_for_topic(C.TOPIC_JOINT_STATES))
        self.create_subscription(Image, C.relative(C.TOPIC_COLOR_IMAGE), self._on_rgb,
                                 qos_for_topic(C.TOPIC_COLOR_IMAGE))
        self.create_subscription(Image, C.relative(C.TOPIC_DEPTH_IMAGE), self._on_depth,
                                 qos_for_topic(C.TOPIC_DEPTH_IMAGE))
        self.create_subscription(CameraInfo, C.relative(C.TOPIC_CAMERA_INFO), self._on_camera_info,
                                 qos_for_topic(C.TOPIC_CAMERA_INFO))
        self.create_subscription(PoseStamped, C.relative(C.TOPIC_CAMERA_POSE), self._on_camera_pose,
                                 qos_for_topic(C.TOPIC_CAMERA_POSE))

    def _error(self, text: str) -> None:
        """Log an error and say it on the status topic, with the state of the plan that keeps running."""
        self.get_logger().error(text)
        core = self.executor_core
        if core is None or core.plan is None:
            self._publish_status(State.IDLE, 0, 0.0, text)
        else:
            self._publish_status(core.state, core.index, core.last_progress, text)

    # ------------------------------------------------------------------ inputs
    def _on_plan(self, msg: Plan) -> None:
        if self.executor_core is None:
            self._error("plan received but the cerebellum has no policy loaded")
            return
        if msg.header.frame_id not in ("", C.BASE_FRAME):
            self._error(f"plan {msg.plan_id} refused: keypoints in frame {msg.header.frame_id!r}, "
                        f"expected {C.BASE_FRAME!r}")
            return
        limit = self.executor_core.limits.max_subtasks
        if len(msg.subtasks) > limit:  # refused here, before converting thousands of subtasks
            self._error(f"plan {msg.plan_id} refused: {len(msg.subtasks)} subtasks, more than max_subtasks {limit}")
            return
        if self._state is None:
            self.get_logger().warning(f"plan {msg.plan_id} kept until the first robot state on {C.TOPIC_EE_POSE}")
        self._pending_plan = msg  # the policy thread starts it (once robot state has arrived)

    def _on_cancel(self, msg: String) -> None:
        """Hold at once (the control thread's next tick); the policy thread then cancels the plan."""
        by = msg.data.strip()[:100] or C.CANCEL_DEFAULT_BY
        self.stream.hold_now(by)
        self._tick_now.set()
        self._pending_plan = None  # a plan that arrived before the cancel is cancelled with it
        self._pending_cancel = by

    def _start_plan(self, msg: Plan) -> None:
        plan = plan_from_msg(msg)
        try:
            line = self.executor_core.set_plan(plan, self._state[0], self._state[1])
        except ValueError as exc:
            self._error(f"plan {msg.plan_id} refused: {exc}")
            return
        if self.executor_core.plan is plan:  # started (an ignored revision keeps the stream as it is)
            self.stream.clear()
        self.get_logger().info(line)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])
        arrival, stamp = time.monotonic(), stamp_to_ns(msg.header.stamp) / 1e9
        verdict = self._gate.check_pose(msg.header.frame_id, pos, quat, stamp, arrival)
        if not verdict.accepted:
            self._refuse_state(verdict)
            return
        quat = quat / np.linalg.norm(quat)
        if verdict.jumped and self.executor_core is not None:
            self._jump = (pos, quat, verdict.jump_m)  # hold there from the next tick on, not after the next policy step
            self.stream.jump(np.clip(pos, self._gate.config.workspace_min, self._gate.config.workspace_max), quat)
        self._state = (pos, quat, self._width)
        self._state_time = self.stream.state_time = arrival
        self._state_stamp = stamp
        self._state_stamp_msg = msg.header.stamp

    def _refuse_state(self, verdict: GateResult) -> None:
        """Log a refused robot state and say so on the status topic (both at most once a second)."""
        self.get_logger().error(f"ignored robot state: {verdict.reason}", throttle_duration_sec=1.0)
        now = time.monotonic()
        if now - self._refusal_time >= 1.0:
            self._refusal_time = now
            core = self.executor_core
            state, index = (core.state, core.index) if core is not None else (State.IDLE, 0)
            self._publish_status(state, index, core.last_progress if core else 0.0,
                                 f"ignored robot state: {verdict.reason}")

    def _on_joints(self, msg: JointState) -> None:
        if msg.header.frame_id not in ("", C.BASE_FRAME):
            self._refuse_state(GateResult(False, f"joint state in frame {msg.header.frame_id!r}, "
                                                 f"expected {C.BASE_FRAME!r}"))
            return
        verdict = StateGate.check_width(finger_width01(msg.name, msg.position))
        if verdict.accepted:
            self._width = float(np.clip(finger_width01(msg.name, msg.position), 0.0, 1.0))
        elif "no finger joints" not in verdict.reason:  # an arm-only joint state is not an error
            self._refuse_state(verdict)

    def _on_rgb(self, msg: Image) -> None:
        try:
            self._rgb = image_to_numpy(msg)
        except ValueError as exc:
            self.get_logger().error(f"colour image ignored: {exc}", throttle_duration_sec=2.0)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = image_to_numpy(msg)
        except ValueError as exc:
            self.get_logger().error(f"depth image ignored: {exc}", throttle_duration_sec=2.0)
            return
        if self._rgb is not None:
            self._depth, self._new_image = depth, True  # encoded by the policy thread
            self._image_time = time.monotonic()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        if self._camera_info is None or list(msg.k) != list(self._camera_info.k):
            self._camera_info = msg
            self._make_camera()

    def _on_camera_pose(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        if msg.header.frame_id not in ("", C.BASE_FRAME) or not np.all(np.isfinite(pose)) \
                or np.linalg.norm(pose[3:]) < 1e-6:
            self.get_logger().error(f"camera pose ignored: frame {msg.header.frame_id!r}, values {pose.tolist()} "
                                    f"(expected a finite pose in {C.BASE_FRAME!r})", throttle_duration_sec=5.0)
            return
        self._camera_T = pose_to_matrix(pose[:3], pose[3:] / np.linalg.norm(pose[3:]))
        self._make_camera()

    def _make_camera(self) -> None:
        """The camera model of the push check, once intrinsics and extrinsics are both known."""
        if self._camera_info is None or self._camera_T is None:
            return
        info = self._camera_info
        try:
            self._camera = CameraModel.from_camera_info(info, self._camera_T)
        except ValueError as exc:
            self._camera = None
            self.get_logger().error(f"camera model not usable, push results are not checked: {exc}")

    # ------------------------------------------------------------------ loop
    def _policy_loop(self) -> None:
        """The policy thread: one step every policy period, on the latest inputs.

        The period is measured on the monotonic clock, or under ``use_sim_time`` on the stamps of
        the robot state: the policy then steps on the first state stamped a policy period after
        the previous step's, i.e. once per 1/policy_hz of simulated motion and on fresh state, as
        in training, however fast the simulator runs. It never tries to catch up on missed steps.
        """
        sim = self.get_parameter("use_sim_time").value

        def now() -> float:
            return self._state_stamp if sim else time.monotonic()

        next_time = now()
        while not self._stop.is_set():
            t = now()
            if not math.isfinite(t):  # no robot state yet
                self._stop.wait(0.002)
                continue
            if t + 1e-6 < next_time:
                # under sim time, poll the wall clock in small slices (the sim may run slower or faster)
                self._stop.wait(min(next_time - t, 0.002) if sim else next_time - t)
                continue
            if sim:  # steps on the simulated-time grid k / policy_hz (what a lock-stepped sim_node waits on)
                next_time = (math.floor(t / self.policy_period + 1e-6) + 1) * self.policy_period
            else:
                next_time = max(next_time + self.policy_period, t - self.policy_period)  # never try to catch up
            try:
                self._policy_step()
            except Exception as exc:  # noqa: BLE001 - the loop must survive; the arm holds meanwhile
                self.get_logger().error(f"policy step failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=2.0)

    def _policy_step(self) -> None:
        core, state = self.executor_core, self._state
        if core is None or state is None:
            return
        if self.stream.take_jump() and self._jump is not None:
            pos, quat, dist = self._jump
            self.get_logger().warning(core.robot_jumped(pos, quat, dist))
        if self._pending_cancel is not None:
            by, self._pending_cancel = self._pending_cancel, None
            self.get_logger().warning(core.cancel(by))
        if self._pending_plan is not None:
            plan, self._pending_plan = self._pending_plan, None
            self._start_plan(plan)
        if self._new_image and self._rgb is not None and self._depth is not None:
            self._new_image = False
            try:
                core.policy.update_image(self._rgb, self._depth)
            except ValueError as exc:
                self.get_logger().error(f"camera frame not usable: {exc}", throttle_duration_sec=2.0)
            else:
                if self._camera is not None and self._depth.shape[:2] == (self._camera.height, self._camera.width):
                    rgb = self._rgb if self._rgb.shape[:2] == self._depth.shape[:2] else None
                    core.update_view(self._depth, self._camera, rgb)
        now = time.monotonic()
        pos, quat, _ = state
        state_stamp = self._state_stamp_msg
        obs = Observation(pos, quat, self._width)
        result = core.tick(obs, now - self._state_time, now - self._image_time, self.policy_period)
        status = (result.state, result.subtask_index, result.progress, result.detail, state_stamp)
        if result.state == State.RUNNING and self.stream.frozen:
            status = None  # a step begun before a cancel: neither its command nor its status goes out
        if not self.stream.update(result.safe.pos, result.safe.quat, result.gripper, result.state == State.RUNNING,
                                  now, (obs.ee_pos, obs.ee_quat), status):
            return  # the robot jumped during this step: its command is from before the jump
        if result.safe.verdict == Verdict.CLAMPED:
            self.get_logger().warning("command clamped: " + "; ".join(result.safe.reasons),
                                      throttle_duration_sec=2.0)
        if result.failure is not None:
            self._publish_failure(result, obs)

    def _control_loop(self) -> None:
        """The control thread: :meth:`_tick` on absolute deadlines ``k / control_rate_hz`` (monotonic clock).

        A late tick does not shift the ones after it (the rate stays ``control_rate_hz``); after a stall of
        more than one period the schedule restarts from now instead of firing a burst of catch-up ticks.
        A cancel wakes the thread for one extra tick at once (the hold goes out without waiting for the
        next deadline); the schedule stays as it was.
        """
        period = 1.0 / self.rate
        self._raise_priority(self._control_priority)
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                if self._tick_now.wait(delay):
                    self._tick_now.clear()
                    deadline -= period  # an extra tick now; the next one stays on its deadline
            elif delay < -period:
                deadline = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - e.g. publishing while the context shuts down
                if self._stop.is_set():
                    return
                self.get_logger().error(f"control tick failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=2.0)

    def _raise_priority(self, priority: int) -> None:
        """Put the calling thread on SCHED_FIFO ``priority`` (Linux), or say why not.

        The control thread sleeps most of the time, so a real-time priority costs the rest of the
        machine little and keeps its wake-ups on time when the cores are busy (beside sim_node on 2
        cores: period p99 8-11 ms at normal priority, 6.7-7.5 ms with it, before the events
        executor). It still needs the GIL, so other threads of this process can delay it.
        """
        if priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(priority, 99)))
        except (AttributeError, OSError) as exc:
            self.get_logger().warning(f"control thread at normal priority (SCHED_FIFO {priority} refused: {exc}); "
                                      "grant CAP_SYS_NICE or an rtprio limit (ulimit -r) for steadier periods")
            return
        self.get_logger().info(f"control thread on SCHED_FIFO priority {min(priority, 99)}")

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
        if cmd.cancelled_by is not None:  # the first held tick after /robo/cancel, stamped like its target
            core = self.executor_core
            self._publish_status(State.CANCELLED, core.index if core else 0, core.last_progress if core else 0.0,
                                 f"cancelled by {cmd.cancelled_by}: holding", stamp)
        if cmd.status is not None:  # a policy step's status follows its first target (a lock-stepped sim waits on it)
            self._publish_status(*cmd.status)

    def _report_stale_hold(self, now: float) -> None:
        """HOLDING on the status topic when the hold begins and twice a second while it lasts.

        The control thread holds on its own clock (monotonic), so the hold also happens under
        ``use_sim_time``, when a frozen simulator stops the simulated clock and the policy thread.
        """
        first = self._holding_since is None
        if first:
            self._holding_since = now
        if first or now - self._hold_status_time >= 0.5:
            self._hold_status_time = now
            age = (now - self._state_time) * 1e3
            detail = f"robot state is {age:.0f} ms old: holding arm and gripper"
            if first:
                self.get_logger().warning(detail)
            core = self.executor_core
            self._publish_status(State.HOLDING, core.index if core else 0, core.last_progress if core else 0.0,
                                 detail)

    def destroy_node(self) -> None:
        """Stop the policy thread, then the node (also after a constructor that failed half-way)."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        for name in ("_control_thread", "_policy_thread"):
            thread = getattr(self, name, None)
            if thread is not None:
                thread.join(timeout=2.0)
        super().destroy_node()

    def _publish_status(self, state: State, index: int, progress: float, detail: str, stamp: object = None) -> None:
        """Publish the execution status, stamped with the robot state it was computed from (else now)."""
        msg = ExecutionStatus(state=int(state), subtask_index=int(index), progress=float(progress), detail=detail)
        plan = self.executor_core.plan if self.executor_core is not None else None
        msg.plan_id, msg.revision = (plan.plan_id, plan.revision) if plan else ("", 0)
        msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        msg.header.frame_id = C.BASE_FRAME
        self.pub_status.publish(msg)

    def _publish_failure(self, result: TickResult, obs: Observation) -> None:
        plan = self.executor_core.plan
        msg = FailureReport(plan_id=plan.plan_id, revision=plan.revision, subtask_index=int(result.subtask_index),
                            kind=result.failure.kind, detail=result.failure.detail,
                            failure_probability=float(result.command.failure_probability if result.command else 0.0))
        msg.header.stamp, msg.header.frame_id = self.get_clock().now().to_msg(), C.BASE_FRAME
        commanded = result.command.target_pos if result.command else obs.ee_pos
        commanded_q = result.command.target_quat if result.command else obs.ee_quat
        msg.commanded_pose = _pose_msg(msg.header.stamp, commanded, commanded_q).pose
        msg.measured_pose = _pose_msg(msg.header.stamp, obs.ee_pos, obs.ee_quat).pose
        self.pub_failure.publish(msg)
        self.get_logger().warning(f"failure in subtask {result.subtask_index}: {result.detail}; holding")


def main(args: list[str] | None = None) -> None:
    """Run ``cerebellum_node`` until shut down."""
    sys.setswitchinterval(0.0005)  # let the control tick take the GIL from the policy thread quickly
    run_node(CerebellumNode, args, executor=events_executor)  # ~430 state/image messages a second


if __name__ == "__main__":
    main()
