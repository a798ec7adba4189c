"""brain_node as a real process over DDS: instruction in, Plan out; failure in, corrected Plan out; bad inputs
and a model that fails to load never take it down."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from robo_stack.msg import FailureReport, Plan
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from robo_brain.node import TOPIC_BRAIN_STATUS
from robo_brain.tiny_models import make_tiny
from robo_common import constants as C
from robo_common.geometry import matrix_to_quat
from robo_common.ros.qos import qos_for_topic
from robo_sim.world import SimWorld, WorldConfig
from tests.ros_helpers import NodeProcess, spin_until

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def scene():
    world = SimWorld(WorldConfig())
    red = world.add_block("red", 0.05, (0.45, 0.10, 0.025), 0.2)
    world.add_container("blue", "bowl", (0.55, -0.12), 0.0)
    world.settle(0.2)
    rgb, depth = world.render()
    info = world.camera_info()
    u, v = world.project((world.object_pose(red)[0] + [0, 0, 0.02])[None, :])
    pu, pv = world.project(np.array([[0.55, -0.12, 0.01]]))
    answer = (f"Reasoning: red block left, bowl right.\nPlan:\npick(object=\"red block\") @ grasp=({u[0]:.0f}, "
              f"{v[0]:.0f})\nplace(target=\"blue bowl\") @ place=({pu[0]:.0f}, {pv[0]:.0f})\ndone()")
    world.close()
    return rgb, depth, info, answer


@pytest.fixture(scope="module")
def client():
    rclpy.init()
    node = Node("test_brain_client")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


class Camera:
    """Publishes one rendered RGB-D frame, its camera info and the camera pose."""

    def __init__(self, node: Node, scene) -> None:
        rgb, depth, info, _ = scene
        h, w = depth.shape
        self.rgb = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes())
        self.depth = Image(height=h, width=w, encoding="32FC1", step=w * 4, data=depth.tobytes())
        self.info = CameraInfo(height=h, width=w, k=info.K.reshape(-1).tolist())
        T = info.T_base_camera
        self.pose = PoseStamped()
        self.pose.header.frame_id = C.BASE_FRAME
        p, o = self.pose.pose.position, self.pose.pose.orientation
        p.x, p.y, p.z = T[:3, 3].tolist()
        o.x, o.y, o.z, o.w = matrix_to_quat(T[:3, :3]).tolist()
        self.pubs = [(node.create_publisher(Image, C.TOPIC_COLOR_IMAGE, qos_for_topic(C.TOPIC_COLOR_IMAGE)), self.rgb),
                     (node.create_publisher(Image, C.TOPIC_DEPTH_IMAGE, qos_for_topic(C.TOPIC_DEPTH_IMAGE)),
                      self.depth),
                     (node.create_publisher(CameraInfo, C.TOPIC_CAMERA_INFO, qos_for_topic(C.TOPIC_CAMERA_INFO)),
                      self.info)]
        node.create_publisher(PoseStamped, C.TOPIC_CAMERA_POSE, qos_for_topic(C.TOPIC_CAMERA_POSE)).publish(self.pose)
        self.node = node

    def tick(self) -> None:
        for pub, msg in self.pubs:
            pub.publish(msg)


class Listener:
    def __init__(self, node: Node) -> None:
        self.plans: list[Plan] = []
        self.status: list[dict] = []
        self.markers: list[MarkerArray] = []
        node.create_subscription(Plan, C.TOPIC_PLAN, self.plans.append, qos_for_topic(C.TOPIC_PLAN))
        node.create_subscription(MarkerArray, C.TOPIC_MARKERS, self.markers.append, qos_for_topic(C.TOPIC_MARKERS))
        node.create_subscription(String, TOPIC_BRAIN_STATUS, lambda m: self.status.append(json.loads(m.data)),
                                 qos_for_topic(TOPIC_BRAIN_STATUS))
        self.instruction = node.create_publisher(String, C.TOPIC_INSTRUCTION, qos_for_topic(C.TOPIC_INSTRUCTION))
        self.failure = node.create_publisher(FailureReport, C.TOPIC_FAILURE, qos_for_topic(C.TOPIC_FAILURE))

    def states(self) -> list[str]:
        return [s["state"] for s in self.status]


def _said(status: dict) -> str:
    """A brain status's detail and the recent rejections it carries."""
    return " | ".join([str(status.get("detail", "")), *map(str, status.get("recent_errors", []))])


def _wait(node: Node, cam: Camera | None, cond, timeout: float) -> bool:
    def check() -> bool:
        if cam is not None:
            cam.tick()
        return cond()
    return spin_until(node, check, timeout)


def test_instruction_to_plan_then_correction_and_bad_inputs(client, scene, tmp_path) -> None:
    answers = tmp_path / "answers.txt"
    answers.write_text(scene[3] + "\n---\n" + scene[3].replace("red block left", "retry the grasp"))
    proc = NodeProcess("robo_brain.node", {"backend": "scripted", "model_path": str(answers)}, log_dir=tmp_path)
    try:
        cam, out = Camera(client, scene), Listener(client)
        assert _wait(client, cam, lambda: "ready" in out.states(), 30), proc.log()
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert _wait(client, cam, lambda: out.plans, 20), proc.log()
        plan = out.plans[-1]
        assert [s.code for s in plan.subtasks] == ['pick(object="red block")', 'place(target="blue bowl")', "done()"]
        grasp = plan.subtasks[0].keypoints[0].point
        assert abs(grasp.x - 0.45) < 0.015 and abs(grasp.y - 0.10) < 0.015 and plan.header.frame_id == C.BASE_FRAME
        assert _wait(client, None, lambda: out.markers and len(out.markers[-1].markers) == 6, 5)
        assert _wait(client, None, lambda: "planned" in out.states(), 5)
        assert next(s for s in out.status if s["state"] == "planned")["latency_s"] > 0.0

        for bad in ("x" * 1_000_000, "\x00\x01\x02", "", 'pick(object=__import__("os"))'):
            out.instruction.publish(String(data=bad))
        # the latched status keeps the latest message only; each carries the recent rejections too
        assert _wait(client, cam, lambda: any("at most 4096" in _said(s) for s in out.status), 10), proc.log()
        assert _wait(client, cam, lambda: any("instruction is empty" in _said(s) for s in out.status), 10)
        assert proc.alive()
        bad_image = Image(height=2, width=2, encoding="mono16", step=4, data=bytes(8))
        bad_pub = client.create_publisher(Image, C.TOPIC_COLOR_IMAGE, qos_for_topic(C.TOPIC_COLOR_IMAGE))

        def bad_image_reported() -> bool:  # sensor QoS is best effort: resend until it is seen
            bad_pub.publish(bad_image)
            return any("unsupported image encoding" in _said(s) for s in out.status)

        assert _wait(client, None, bad_image_reported, 15), proc.log()
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert proc.alive()

        _wait(client, cam, lambda: False, 1.0)  # good frames again before the failure report
        current = out.plans[-1]
        n_plans = len(out.plans)
        report = FailureReport(plan_id=current.plan_id, revision=current.revision, subtask_index=0,
                               kind="grasp_missed", detail="closed on nothing")
        report.header.frame_id = C.BASE_FRAME
        report.measured_pose.position.x = float("nan")
        out.failure.publish(report)
        assert _wait(client, cam, lambda: len(out.plans) > n_plans and out.plans[-1].revision == 1, 20), proc.log()
        revised = out.plans[-1]
        assert revised.plan_id == current.plan_id and "[revision 1] grasp_missed" in revised.reasoning
        assert proc.alive()
    finally:
        assert proc.stop() in (0, -2), proc.log()


def test_tiny_random_model_gives_empty_plan_and_failed_status(client, scene, tmp_path) -> None:
    model = make_tiny("llava", tmp_path / "tiny")
    proc = NodeProcess("robo_brain.node", {"backend": "transformers", "model_path": str(model),
                                           "max_new_tokens": 16}, log_dir=tmp_path)
    try:
        cam, out = Camera(client, scene), Listener(client)
        assert _wait(client, cam, lambda: "ready" in out.states(), 60), proc.log()
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert _wait(client, cam, lambda: "failed" in out.states(), 30), proc.log()
        failed = next(s for s in out.status if s["state"] == "failed")
        assert "after 2 attempts" in failed["detail"] and failed["latency_s"] > 0.0
        assert _wait(client, cam, lambda: out.plans and not out.plans[-1].subtasks, 5)
        assert out.plans[-1].reasoning.startswith("planning failed") and proc.alive()
    finally:
        assert proc.stop() in (0, -2), proc.log()


def test_model_that_fails_to_load_leaves_the_node_up(client, tmp_path) -> None:
    proc = NodeProcess("robo_brain.node", {"backend": "transformers", "model_path": str(tmp_path / "nothing")},
                       log_dir=tmp_path)
    try:
        out = Listener(client)
        assert _wait(client, None, lambda: "error" in out.states(), 30), proc.log()
        assert "no config.json" in out.status[-1]["detail"]
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert _wait(client, None, lambda: any("no model" in s["detail"] for s in out.status), 10), proc.log()
        assert proc.alive() and "model failed to load" in proc.log()
    finally:
        assert proc.stop() in (0, -2), proc.log()


def test_a_plan_reported_complete_is_checked_in_the_image_and_an_unmet_goal_redone(client, scene, tmp_path) -> None:
    from robo_stack.msg import ExecutionStatus

    answers = tmp_path / "answers.txt"
    answers.write_text(scene[3])
    proc = NodeProcess("robo_brain.node", {"backend": "scripted", "model_path": str(answers)}, log_dir=tmp_path)
    try:
        cam, out = Camera(client, scene), Listener(client)
        status = client.create_publisher(ExecutionStatus, C.TOPIC_EXECUTION_STATUS,
                                         qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        assert _wait(client, cam, lambda: "ready" in out.states(), 30), proc.log()
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert _wait(client, cam, lambda: out.plans, 20), proc.log()
        plan = out.plans[-1]
        # the cerebellum says the plan is done, but the frames still show the red block beside the bowl
        status.publish(ExecutionStatus(plan_id=plan.plan_id, revision=0, subtask_index=2, state=2, progress=1.0,
                                       detail="plan complete"))
        assert _wait(client, cam, lambda: len(out.plans) > 1, 20), proc.log()
        revised = out.plans[-1]
        assert (revised.plan_id, revised.revision) == (plan.plan_id, 1)
        assert [s.code for s in revised.subtasks] == ['pick(object="red block")', 'place(target="blue bowl")', "done()"]
        assert "goal_not_reached" in revised.reasoning
        assert _wait(client, None, lambda: out.states()[-1] == "corrected", 5), out.states()
        assert "verifying" in out.states() and proc.alive()
    finally:
        assert proc.stop() in (0, -2), proc.log()


def test_an_instruction_is_planned_on_frames_that_arrived_after_it(client, scene, tmp_path) -> None:
    """A frame from before the instruction (the scene before a reset) is not planned on while the camera runs;
    a camera that stopped gets the latest frames after ``plan_frame_wait_s``, with a warning."""
    answers = tmp_path / "answers.txt"
    answers.write_text(scene[3] + "\n---\n" + scene[3])
    proc = NodeProcess("robo_brain.node", {"backend": "scripted", "model_path": str(answers),
                                           "plan_frame_wait_s": 1.0}, log_dir=tmp_path)
    try:
        cam, out = Camera(client, scene), Listener(client)
        for msg in (cam.rgb, cam.depth):
            msg.header.stamp.sec = 1  # "before the reset"
        assert _wait(client, cam, lambda: "ready" in out.states(), 30), proc.log()
        _wait(client, cam, lambda: False, 0.5)  # frames stamped 1 s are the brain's latest; then the camera pauses
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        _wait(client, None, lambda: False, 0.3)
        for msg in (cam.rgb, cam.depth):
            msg.header.stamp.sec = 7  # "after the reset"
        assert _wait(client, cam, lambda: out.plans, 20), proc.log()
        assert out.plans[-1].header.stamp.sec == 7, "planned on a frame from before the instruction"

        t0 = time.monotonic()  # the camera stops: the latest frames, once plan_frame_wait_s is over
        out.instruction.publish(String(data="put the red block in the blue bowl"))
        assert _wait(client, None, lambda: len(out.plans) > 1, 20), proc.log()
        assert time.monotonic() - t0 >= 0.9 and out.plans[-1].header.stamp.sec == 7
        assert _wait(client, None, lambda: "no camera frame arrived within" in proc.log(), 5), proc.log()
    finally:
        assert proc.stop() in (0, -2), proc.log()
