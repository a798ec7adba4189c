"""``sim_node``: the ROS 2 bridge of the simulated Franka Panda cell (a thin adapter over robo_sim).

The simulation runs in :class:`~robo_sim.sim_session.SimSession`, lock-step timing in
:class:`~robo_sim.lockstep.Lockstep`; this module only converts messages and keeps the timer.

Publishes colour, depth and camera info at ``camera_rate_hz``, ``/robo/ee_pose`` and
``/joint_states`` at ``state_rate_hz``, ``/clock`` (simulated time: run the other nodes with
``use_sim_time:=true``) and the camera extrinsics on ``/camera/color/pose``. Follows
``/robo/ee_target`` and ``/robo/gripper_command``. The ``/sim/reset`` service loads a task from
a seed and split; the task, its ground-truth expert plan and the live success check are
published on ``/sim/task``, ``/sim/expert_plan`` and ``/sim/episode``.

Topic names are the constants of :mod:`robo_common.constants`; remap them on the command
line (``--ros-args -r /robo/ee_target:=/my_arm/target``) or in a launch file.
"""

from __future__ import annotations

import json
import time

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from robo_stack.srv import ResetSim
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String

from robo_common import constants as C
from robo_common.geometry import matrix_to_quat
from robo_common.ros.conversions import ns_to_stamp, plan_from_msg, plan_to_msg, pose_stamped, stamp_to_ns
from robo_common.ros.qos import qos_for_topic
from robo_common.ros.run import events_executor, run_node
from robo_sim.lockstep import Lockstep
from robo_sim.sim_session import SimSession, SimSessionConfig

PARAMETERS: dict[str, tuple[object, str]] = {
    "state_rate_hz": (200.0, "Rate of physics advance and of /robo/ee_pose and /joint_states (Hz)."),
    "camera_rate_hz": (15.0, "Rate of colour/depth/camera_info images (Hz); rendered in a child process."),
    "image_width": (128, "Camera image width (pixels)."),
    "image_height": (128, "Camera image height (pixels)."),
    "real_time_factor": (1.0, "Simulated seconds per wall-clock second."),
    "seed": (C.DEMO_SEED, "Seed of the task loaded at start-up (default: the demo's scene)."),
    "split": ("seen", "Split of the task loaded at start-up: seen or unseen."),
    "family": (C.DEMO_FAMILY, "Task family loaded at start-up (pick_place, stack, rearrange, push); empty: from "
                              "the seed."),
    "render": (True, "Publish camera images (false: state only, for fast tests)."),
    "lockstep_period_s": (0.0, "Synchronous simulation: pause at every multiple of this much simulated time until the "
                               "controller's /robo/execution_status stamped there arrives (the cerebellum's policy "
                               "period, 0.05); 0: free-running real time, like a robot."),
    "lockstep_timeout_s": (1.0, "Longest wall-clock wait for the controller at a lock-step point (s)."),
}


def _stamp(seconds: float) -> Time:
    return ns_to_stamp(int(round(seconds * 1e9)))  # round once: 0.9999999999 s must not become 0 s


def _pose_msg(stamp: object, pos: np.ndarray, quat: np.ndarray) -> PoseStamped:
    return pose_stamped(stamp, C.BASE_FRAME, pos, quat)


class SimNode(Node):
    """ROS 2 adapter: parameters, publishers, subscriptions and a timer around a :class:`SimSession`."""

    def __init__(self) -> None:
        """Declare parameters, build the simulation and start publishing."""
        super().__init__("sim_node")
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        par = {name: self.get_parameter(name).value for name in PARAMETERS}
        cfg = SimSessionConfig(
            state_rate_hz=float(par["state_rate_hz"]), camera_rate_hz=float(par["camera_rate_hz"]),
            image_width=int(par["image_width"]), image_height=int(par["image_height"]),
            render=bool(par["render"]),
        )
        self.rtf = float(par["real_time_factor"])
        if not self.rtf > 0:
            raise ValueError(f"real_time_factor must be > 0, got {self.rtf}")
        self.session = SimSession(cfg)
        period, timeout = float(par["lockstep_period_s"]), float(par["lockstep_timeout_s"])
        if period < 0 or timeout <= 0:
            raise ValueError(f"lockstep_period_s must be >= 0 and lockstep_timeout_s > 0, got {period}, {timeout}")
        self.lockstep = Lockstep(period, timeout) if period > 0 else None
        self._make_interfaces()
        self._load(int(par["seed"]), str(par["split"]), str(par["family"]) or None)
        self._last_wall = time.monotonic()
        self._last_episode_pub = 0.0
        self.timer = self.create_timer(1.0 / cfg.state_rate_hz, self._tick)
        self.get_logger().info(
            f"sim_node up: state {cfg.state_rate_hz:.0f} Hz, camera {cfg.camera_rate_hz:.0f} Hz "
            f"({cfg.image_width}x{cfg.image_height}), real-time factor {self.rtf}"
        )

    # ------------------------------------------------------------------ set-up
    def _make_interfaces(self) -> None:
        sensor = qos_for_topic(C.TOPIC_EE_POSE)
        self.pub_clock = self.create_publisher(Clock, C.TOPIC_CLOCK, 10)
        self.pub_pose = self.create_publisher(PoseStamped, C.relative(C.TOPIC_EE_POSE), sensor)
        self.pub_joints = self.create_publisher(JointState, C.relative(C.TOPIC_JOINT_STATES), sensor)
        self.pub_rgb = self.create_publisher(Image, C.relative(C.TOPIC_COLOR_IMAGE), qos_for_topic(C.TOPIC_COLOR_IMAGE))
        self.pub_depth = self.create_publisher(Image, C.relative(C.TOPIC_DEPTH_IMAGE),
                                               qos_for_topic(C.TOPIC_DEPTH_IMAGE))
        self.pub_info = self.create_publisher(CameraInfo, C.relative(C.TOPIC_CAMERA_INFO),
                                              qos_for_topic(C.TOPIC_CAMERA_INFO))
        self.pub_camera_pose = self.create_publisher(PoseStamped, C.relative(C.TOPIC_CAMERA_POSE),
                                                     qos_for_topic(C.TOPIC_CAMERA_POSE))
        self.pub_task = self.create_publisher(String, C.relative(C.TOPIC_SIM_TASK), qos_for_topic(C.TOPIC_SIM_TASK))
        from robo_stack.msg import Plan

        self.pub_plan = self.create_publisher(Plan, C.relative(C.TOPIC_SIM_EXPERT_PLAN),
                                              qos_for_topic(C.TOPIC_SIM_EXPERT_PLAN))
        self.pub_episode = self.create_publisher(String, C.relative(C.TOPIC_SIM_EPISODE),
                                                 qos_for_topic(C.TOPIC_SIM_EPISODE))
        self.create_subscription(PoseStamped, C.relative(C.TOPIC_EE_TARGET), self._on_target,
                                 qos_for_topic(C.TOPIC_EE_TARGET))
        self.create_subscription(Float64, C.relative(C.TOPIC_GRIPPER_COMMAND), self._on_gripper,
                                 qos_for_topic(C.TOPIC_GRIPPER_COMMAND))
        self.create_service(ResetSim, C.relative(C.SERVICE_SIM_RESET), self._on_reset)
        # evaluation: the plans sent to the robot and the failures reported on them, judged by the world
        from robo_stack.msg import FailureReport

        self.create_subscription(Plan, C.relative(C.TOPIC_PLAN), self._on_plan, qos_for_topic(C.TOPIC_PLAN))
        self.create_subscription(FailureReport, C.relative(C.TOPIC_FAILURE), self._on_failure,
                                 qos_for_topic(C.TOPIC_FAILURE))
        from robo_stack.msg import ExecutionStatus  # the lock-step's answers; step-level perturbations

        self.create_subscription(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS), self._on_status,
                                 qos_for_topic(C.TOPIC_EXECUTION_STATUS))

    def _load(self, seed: int, split: str, family: str | None, perturb: str | None = None) -> str:
        task = self.session.reset(seed, split, family, perturb)
        self.pub_task.publish(String(data=json.dumps(self.session.task_dict())))
        plan = self.session.expert_plan
        plan.stamp_ns = int(self.session.sim_time * 1e9)
        self.pub_plan.publish(plan_to_msg(plan))
        self.pub_camera_pose.publish(self._camera_pose())
        self.get_logger().info(f"loaded task seed={seed} split={split} family={task.family}"
                               f"{f' perturb={perturb}' if perturb else ''}: {task.instruction!r}")
        return task.instruction

    def _camera_pose(self) -> PoseStamped:
        T = self.session.camera.T_base_camera
        return _pose_msg(_stamp(self.session.sim_time), T[:3, 3], matrix_to_quat(T[:3, :3]))

    # ------------------------------------------------------------------ callbacks
    def _on_target(self, msg: PoseStamped) -> None:
        if msg.header.frame_id not in ("", C.BASE_FRAME):
            self.get_logger().error(
                f"rejected ee target in frame {msg.header.frame_id!r}: targets must be in {C.BASE_FRAME!r}")
            self.session.rejected += 1
            return
        p, o = msg.pose.position, msg.pose.orientation
        try:
            self.session.command_pose(np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]))
        except ValueError as exc:
            self.get_logger().error(f"rejected ee target: {exc}")

    def _on_status(self, msg) -> None:  # noqa: ANN001 - robo_stack/ExecutionStatus
        if self.lockstep is not None:
            self.lockstep.answer(stamp_to_ns(msg.header.stamp) / 1e9)
        self.session.note_status(msg.plan_id, int(msg.subtask_index), float(msg.progress), msg.state == msg.RUNNING)

    def _on_plan(self, msg) -> None:  # noqa: ANN001 - robo_stack/Plan
        try:
            self.session.note_plan(plan_from_msg(msg))
        except ValueError:
            pass  # a plan the cerebellum refuses too (it says why); nothing to judge

    def _on_failure(self, msg) -> None:  # noqa: ANN001 - robo_stack/FailureReport
        row = self.session.judge_failure(msg.plan_id, int(msg.revision), int(msg.subtask_index), msg.kind)
        verdict = (f"confirmed: {row['confirmed']}" if row["confirmed"] else
                   "not confirmed by the world" if row["judged"] else "plan unknown to the simulator")
        self.get_logger().info(f"failure {msg.kind} at subtask {msg.subtask_index} of {msg.plan_id}: {verdict}")

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self.session.command_gripper(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"rejected gripper command: {exc}")

    def _on_reset(self, request: ResetSim.Request, response: ResetSim.Response) -> ResetSim.Response:
        try:
            response.instruction = self._load(int(request.seed), request.split or "seen", request.family or None,
                                              request.perturb or None)
        except (ValueError, KeyError, RuntimeError) as exc:
            response.success = False
            response.message = f"reset failed: {exc}"
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.task_json = json.dumps(self.session.task_dict())
        response.message = f"loaded {self.session.task.family} task seed {request.seed}"
        self._last_wall = time.monotonic()
        return response

    def _tick(self) -> None:
        now = time.monotonic()
        dt = min(now - self._last_wall, 0.1) * self.rtf  # never jump more than 0.1 s after a stall
        self._last_wall = now
        if self.lockstep is not None:
            state = self.lockstep.state(self.session.sim_time, now)
            if state == "hold":
                return
            if state == "timeout" and self.lockstep.answered < 0:  # no controller up yet (start-up): expected
                self.get_logger().info(f"lock-step: no controller yet at t={self.session.sim_time:.3f} s; going on",
                                       throttle_duration_sec=5.0)
            elif state == "timeout":
                self.get_logger().warning(f"lock-step: no controller status for t={self.session.sim_time:.3f} s "
                                          f"within {self.lockstep.timeout} s; going on", throttle_duration_sec=5.0)
            dt = self.lockstep.step(self.session.sim_time, dt)  # stop at the next point
        self.session.advance(dt)
        stamp = _stamp(self.session.sim_time)
        self.pub_clock.publish(Clock(clock=stamp))
        self._publish_state(stamp)
        try:
            frame = self.session.poll_camera()
        except RuntimeError as exc:
            self.get_logger().error(f"camera: {exc}", throttle_duration_sec=5.0)
            frame = None
        if frame is not None:
            self._publish_frame(*frame)
        if now - self._last_episode_pub > 0.5:
            self._last_episode_pub = now
            self.pub_episode.publish(String(data=json.dumps(self.session.episode_dict())))

    def _publish_state(self, stamp: Time) -> None:
        self.pub_pose.publish(_pose_msg(stamp, *self.session.world.ee_pose()))
        names, q, dq, tau = self.session.world.joint_state()
        joints = JointState(name=names, position=q.tolist(), velocity=dq.tolist(), effort=tau.tolist())
        joints.header.stamp, joints.header.frame_id = stamp, C.BASE_FRAME
        self.pub_joints.publish(joints)

    def _publish_frame(self, sim_stamp: float, rgb: np.ndarray, depth: np.ndarray) -> None:
        stamp = _stamp(sim_stamp)
        h, w = depth.shape
        color = Image(height=h, width=w, encoding=C.COLOR_ENCODING, is_bigendian=0, step=w * 3,
                      data=rgb.tobytes())
        dimg = Image(height=h, width=w, encoding=C.DEPTH_ENCODING, is_bigendian=0, step=w * 4,
                     data=depth.astype(np.float32).tobytes())
        cam = self.session.camera
        info = CameraInfo(height=h, width=w, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=cam.K.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                          p=np.hstack([cam.K, np.zeros((3, 1))]).reshape(-1).tolist())
        for msg in (color, dimg, info):
            msg.header.stamp, msg.header.frame_id = stamp, C.CAMERA_FRAME
        self.pub_rgb.publish(color)
        self.pub_depth.publish(dimg)
        self.pub_info.publish(info)

    def destroy_node(self) -> None:
        """Stop the render process, then the node."""
        self.session.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run ``sim_node`` until shut down."""
    run_node(SimNode, args, executor=events_executor)  # 400 commands a second in, 400 states out


if __name__ == "__main__":
    main()
