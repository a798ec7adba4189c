"""The ExecuteInstruction action over DDS: sim_node + brain_node (scripted answers from the simulator's expert
plan) + cerebellum_node (tiny untrained policy); a goal runs, gives feedback and is cancelled."""

from __future__ import annotations

import json
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.node import Node
from robo_stack.action import ExecuteInstruction
from robo_stack.msg import ExecutionStatus, Plan
from std_msgs.msg import String

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.policy import CerebellumPolicy
from robo_common import constants as C
from robo_common.plan_language import format_plan_text
from robo_common.ros.conversions import plan_from_msg
from robo_common.ros.qos import qos_for_topic
from tests.ros_helpers import NodeProcess, spin_until
from tests.test_cerebellum_node import TINY

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cancel_action")
    CerebellumPolicy.from_config(CerebellumConfig(**TINY), seed=0).save(tmp / "ckpt")
    procs = {"sim": NodeProcess("robo_sim.node", {"seed": 2, "camera_rate_hz": 10.0}, log_dir=tmp)}
    rclpy.init()
    node = Node("test_cancel_action_client")
    rec: dict[str, list] = {"status": [], "brain": [], "expert": []}
    node.create_subscription(ExecutionStatus, C.TOPIC_EXECUTION_STATUS, rec["status"].append,
                             qos_for_topic(C.TOPIC_EXECUTION_STATUS))
    node.create_subscription(String, C.TOPIC_BRAIN_STATUS, lambda m: rec["brain"].append(json.loads(m.data)),
                             qos_for_topic(C.TOPIC_BRAIN_STATUS))
    node.create_subscription(Plan, C.TOPIC_SIM_EXPERT_PLAN, rec["expert"].append,
                             qos_for_topic(C.TOPIC_SIM_EXPERT_PLAN))
    try:
        assert spin_until(node, lambda: rec["expert"], 40), procs["sim"].log()[-2000:]
        answers = tmp / "answers.txt"  # the expert's plan, as a model would write it
        answers.write_text(format_plan_text(plan_from_msg(rec["expert"][0]), reasoning="the expert's plan"))
        procs["brain"] = NodeProcess("robo_brain.node", {"backend": "scripted", "model_path": str(answers)},
                                     log_dir=tmp)
        procs["cb"] = NodeProcess("robo_cerebellum.node", {"checkpoint": str(tmp / "ckpt"), "subtask_timeout_s": 60.0,
                                                           "keypoint_check": False, "push_check": False}, log_dir=tmp)
        client = ActionClient(node, ExecuteInstruction, C.ACTION_EXECUTE_INSTRUCTION)
        assert client.wait_for_server(timeout_sec=40), procs["brain"].log()[-2000:]
        assert spin_until(node, lambda: any(s["state"] == "ready" for s in rec["brain"]), 40), \
            procs["brain"].log()[-2000:]
        yield {"node": node, "rec": rec, "client": client, **procs}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in reversed(procs.values()):
            proc.stop()


def test_goal_gives_feedback_and_its_cancel_holds_the_cerebellum(stack) -> None:
    node, rec, client, brain, cb = stack["node"], stack["rec"], stack["client"], stack["brain"], stack["cb"]
    feedback: list[ExecuteInstruction.Feedback] = []
    sent = client.send_goal_async(ExecuteInstruction.Goal(instruction=rec["expert"][0].instruction),
                                  feedback_callback=lambda m: feedback.append(m.feedback))
    assert spin_until(node, sent.done, 10)
    goal = sent.result()
    assert goal.accepted
    # feedback from the brain (planning, planned) and then from the cerebellum executing the plan
    assert spin_until(node, lambda: any(f.phase == "running" for f in feedback), 40), \
        (brain.log()[-2000:], cb.log()[-2000:], [f.phase for f in feedback])
    running = next(f for f in feedback if f.phase == "running")
    assert running.plan_id and running.revision == 0 and 0.0 <= running.progress <= 1.0
    time.sleep(0.3)
    cancel = goal.cancel_goal_async()
    assert spin_until(node, cancel.done, 10) and cancel.result().goals_canceling
    result = goal.get_result_async()
    assert spin_until(node, result.done, 10), brain.log()[-2000:]
    assert result.result().status == GoalStatus.STATUS_CANCELED
    res = result.result().result
    assert not res.success and "cancelled by action client" in res.reason and res.plan_id == running.plan_id
    # the same path as /robo/cancel: the cerebellum holds, the brain dropped the plan
    assert spin_until(node, lambda: any(s.state == ExecutionStatus.CANCELLED and s.plan_id == running.plan_id
                                        and "cancelled by action client" in s.detail for s in rec["status"]), 5), \
        cb.log()[-2000:]
    cancelled = [s for s in rec["brain"] if s["state"] == "cancelled"]
    assert cancelled and cancelled[-1]["by"] == "action client" and cancelled[-1]["plan_id"] == running.plan_id
    assert brain.alive() and cb.alive()


def test_a_new_goal_aborts_the_running_one(stack) -> None:
    node, client, rec = stack["node"], stack["client"], stack["rec"]
    first = client.send_goal_async(ExecuteInstruction.Goal(instruction=rec["expert"][0].instruction))
    assert spin_until(node, first.done, 10) and first.result().accepted
    second = client.send_goal_async(ExecuteInstruction.Goal(instruction=rec["expert"][0].instruction))
    assert spin_until(node, second.done, 10) and second.result().accepted
    result = first.result().get_result_async()
    assert spin_until(node, result.done, 10), stack["brain"].log()[-2000:]
    assert result.result().status == GoalStatus.STATUS_ABORTED
    assert "preempted by a newer ExecuteInstruction goal" in result.result().result.reason
    empty = client.send_goal_async(ExecuteInstruction.Goal(instruction="  "))
    assert spin_until(node, empty.done, 10) and not empty.result().accepted
    # a /robo/cancel from someone else ends the running goal too (aborted, saying who)
    pub = node.create_publisher(String, C.TOPIC_CANCEL, qos_for_topic(C.TOPIC_CANCEL))
    pub.publish(String(data=""))
    result = second.result().get_result_async()
    assert spin_until(node, result.done, 10), stack["brain"].log()[-2000:]
    assert result.result().status == GoalStatus.STATUS_ABORTED
    assert "cancelled by operator" in result.result().result.reason
