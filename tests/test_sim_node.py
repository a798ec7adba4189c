"""sim_node as a real process over DDS: it follows end-effector targets, streams camera and state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from robo_stack.msg import Plan
from robo_stack.srv import ResetSim
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String

from robo_common import constants as C
from robo_common.geometry import quat_angle
from robo_common.ros.qos import qos_for_topic
from tests.ros_helpers import NodeProcess, spin_until

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    proc = NodeProcess("robo_sim.node", {"seed": 4, "split": "seen", "camera_rate_hz": 10.0},
                       log_dir=tmp_path_factory.mktemp("sim"))
    rclpy.init()
    node = Node("test_sim_client")
    yield proc, node
    node.destroy_node()
    rclpy.try_shutdown()
    code = proc.stop()
    log = proc.log()
    # SIGINT stops the spin loop between two callbacks: exit 0, no callback cut off mid-publish
    assert code == 0 and "Exception in" not in log and "Traceback" not in log, log


class Latest:
    def __init__(self, node: Node, msg_type: type, topic: str) -> None:
        self.msgs: list = []
        self.sub = node.create_subscription(msg_type, topic, self.msgs.append, qos_for_topic(topic)
                                            if topic in C.TOPIC_QOS else 10)

    @property
    def last(self):
        return self.msgs[-1] if self.msgs else None


def _pose(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])


def test_streams_state_camera_clock_and_task(sim) -> None:
    proc, node = sim
    pose, joints = Latest(node, PoseStamped, C.TOPIC_EE_POSE), Latest(node, JointState, C.TOPIC_JOINT_STATES)
    rgb, depth = Latest(node, Image, C.TOPIC_COLOR_IMAGE), Latest(node, Image, C.TOPIC_DEPTH_IMAGE)
    info, clock = Latest(node, CameraInfo, C.TOPIC_CAMERA_INFO), Latest(node, Clock, C.TOPIC_CLOCK)
    task, plan = Latest(node, String, C.TOPIC_SIM_TASK), Latest(node, Plan, C.TOPIC_SIM_EXPERT_PLAN)
    cam_pose = Latest(node, PoseStamped, C.TOPIC_CAMERA_POSE)
    everything = (pose, joints, rgb, depth, info, clock, task, plan, cam_pose)
    assert spin_until(node, lambda: all(s.last is not None for s in everything), 30), proc.log()
    n0 = len(pose.msgs)
    spin_until(node, lambda: False, 1.0)
    assert len(pose.msgs) - n0 > 10  # a stream, not a one-off (its rate is measured by bench/, not asserted)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in pose.msgs[n0:]]
    assert stamps == sorted(stamps)
    assert pose.last.header.frame_id == C.BASE_FRAME
    assert len(joints.last.name) == 9 and joints.last.name[0].startswith("panda_joint")
    assert (rgb.last.encoding, rgb.last.height, rgb.last.width) == ("rgb8", 128, 128)
    assert depth.last.encoding == "32FC1" and rgb.last.header.frame_id == C.CAMERA_FRAME
    d = np.frombuffer(bytes(depth.last.data), np.float32)
    assert np.all(np.isfinite(d)) and 0.3 < np.median(d) < 3.0
    k = np.array(info.last.k).reshape(3, 3)
    assert k[0, 0] > 50 and abs(k[0, 2] - 63.5) < 1
    assert json.loads(task.last.data)["seed"] == 4
    assert plan.last.subtasks and plan.last.header.frame_id == C.BASE_FRAME
    assert cam_pose.last.header.frame_id == C.BASE_FRAME
    assert clock.last.clock.sec >= 0


def test_follows_ee_target_within_1cm_5deg(sim) -> None:
    proc, node = sim
    pose = Latest(node, PoseStamped, C.TOPIC_EE_POSE)
    assert spin_until(node, lambda: pose.last is not None, 20), proc.log()
    start_pos, start_quat = _pose(pose.last)
    pub = node.create_publisher(PoseStamped, C.TOPIC_EE_TARGET, qos_for_topic(C.TOPIC_EE_TARGET))
    target = PoseStamped()
    target.header.frame_id = C.BASE_FRAME
    goal_pos = start_pos + np.array([0.08, -0.10, -0.12])
    yaw = math.radians(20)  # rotate the gripper about the base z axis
    qz = np.array([0, 0, math.sin(yaw / 2), math.cos(yaw / 2)])
    x1, y1, z1, w1 = qz
    x2, y2, z2, w2 = start_quat
    goal_quat = np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                          w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])
    target.pose.position.x, target.pose.position.y, target.pose.position.z = goal_pos.tolist()
    o = target.pose.orientation
    o.x, o.y, o.z, o.w = goal_quat.tolist()

    def reached() -> bool:
        pub.publish(target)
        pos, quat = _pose(pose.last)
        return np.linalg.norm(pos - goal_pos) < 0.01 and math.degrees(quat_angle(quat, goal_quat)) < 5.0

    assert spin_until(node, reached, 20), (
        f"measured {_pose(pose.last)} vs target {goal_pos}, {goal_quat}\n{proc.log()[-3000:]}")


def test_bad_commands_rejected_and_node_survives(sim) -> None:
    proc, node = sim
    episode = Latest(node, String, C.TOPIC_SIM_EPISODE)
    pub = node.create_publisher(PoseStamped, C.TOPIC_EE_TARGET, qos_for_topic(C.TOPIC_EE_TARGET))
    grip = node.create_publisher(Float64, C.TOPIC_GRIPPER_COMMAND, qos_for_topic(C.TOPIC_GRIPPER_COMMAND))
    bad = PoseStamped()
    bad.header.frame_id = C.BASE_FRAME
    bad.pose.position.x = math.nan
    bad.pose.orientation.w = 1.0
    wrong_frame = PoseStamped()
    wrong_frame.header.frame_id = "camera_color_optical_frame"
    wrong_frame.pose.orientation.w = 1.0
    for _ in range(3):
        pub.publish(bad)
        pub.publish(wrong_frame)
        grip.publish(Float64(data=math.inf))
        spin_until(node, lambda: False, 0.1)
    assert spin_until(node, lambda: episode.last is not None
                      and json.loads(episode.last.data)["rejected_commands"] >= 6, 10), proc.log()[-3000:]
    assert proc.alive()
    log = proc.log()
    assert "rejected ee target" in log and "must be in 'panda_link0'" in log


def test_reset_service_loads_a_new_task(sim) -> None:
    proc, node = sim
    client = node.create_client(ResetSim, C.SERVICE_SIM_RESET)
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(ResetSim.Request(seed=11, split="unseen", family="stack"))
    assert spin_until(node, future.done, 30)
    res = future.result()
    assert res.success, res.message
    assert json.loads(res.task_json)["family"] == "stack" and res.instruction
    bad = client.call_async(ResetSim.Request(seed=1, split="nonsense", family=""))
    assert spin_until(node, bad.done, 30)
    assert not bad.result().success and "split" in bad.result().message
    assert proc.alive()


def test_lockstep_waits_for_the_controller_at_each_period(tmp_path) -> None:
    """With lockstep_period_s, simulated time stops at every 0.05 s until a status stamped there arrives."""
    import time

    from robo_stack.msg import ExecutionStatus

    # its own namespace and clock topic: the module's other sim_node runs beside it
    proc = NodeProcess("robo_sim.node", {"render": False, "lockstep_period_s": 0.05, "lockstep_timeout_s": 0.5},
                       log_dir=tmp_path, extra_args=["-r", "__ns:=/ls", "-r", "/clock:=/ls/clock"])
    owns = not rclpy.ok()  # the module's fixture may already have initialised rclpy
    if owns:
        rclpy.init()
    try:
        if True:
            node = Node("lockstep_probe")
            clock = Latest(node, Clock, "/ls/clock")
            pub = node.create_publisher(ExecutionStatus, "/ls" + C.TOPIC_EXECUTION_STATUS,
                                        qos_for_topic(C.TOPIC_EXECUTION_STATUS))

            def sim_t() -> float:
                return clock.last.clock.sec + clock.last.clock.nanosec * 1e-9 if clock.last else -1.0

            assert spin_until(node, lambda: clock.last is not None, 30.0), proc.log()
            t0, w0 = sim_t(), time.monotonic()
            spin_until(node, lambda: False, 1.5)  # nobody answers: one period per 0.5 s timeout at most
            silent_rate = (sim_t() - t0) / (time.monotonic() - w0)
            assert silent_rate < 0.25, silent_rate

            def answer(msg: Clock) -> None:  # a controller that steps on every grid point
                t = msg.clock.sec + msg.clock.nanosec * 1e-9
                if abs(t * 20 - round(t * 20)) < 1e-4:
                    status = ExecutionStatus(state=ExecutionStatus.IDLE)
                    status.header.stamp = msg.clock
                    pub.publish(status)

            node.create_subscription(Clock, "/ls/clock", answer, 10)
            t1, w1 = sim_t(), time.monotonic()
            spin_until(node, lambda: False, 1.5)
            answered_rate = (sim_t() - t1) / (time.monotonic() - w1)
            assert answered_rate > 2 * silent_rate and answered_rate > 0.3, (silent_rate, answered_rate)
            assert "lock-step: no controller yet" in proc.log()  # before any controller answered: info, not a warning
            node.destroy_node()
    finally:
        if owns:
            rclpy.shutdown()
        proc.stop()
