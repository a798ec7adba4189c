"""Messages travel intact between separate processes over real DDS (no ROS mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from robo_common.plan_types import PlanData
from robo_common.ros.roundtrip import run_roundtrip_check, sample_plan

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from rclpy.node import Node
    from robo_common.constants import QOS_LATCHED
    from robo_common.plan_types import PlanData
    from robo_common.ros.conversions import plan_to_msg
    from robo_common.ros.qos import to_qos_profile
    from robo_stack.msg import Plan

    plan = PlanData.from_dict(json.loads(sys.argv[1]))
    rclpy.init()
    node = Node("test_plan_publisher")
    pub = node.create_publisher(Plan, "/robo/test_plan", to_qos_profile(QOS_LATCHED))
    pub.publish(plan_to_msg(plan))
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:  # stay up so the transient-local sample can be fetched
        rclpy.spin_once(node, timeout_sec=0.05)
    rclpy.try_shutdown()
    """
)


def test_setup_roundtrip_check() -> None:
    """The check `make setup` ends with: this process publishes, a child listens."""
    got = run_roundtrip_check(timeout_s=30)
    assert len(got.subtasks) == 4


def test_plan_from_another_process_arrives_intact() -> None:
    """A separate publisher process; this process subscribes (late) and gets the latched plan."""
    import rclpy
    from rclpy.node import Node
    from robo_stack.msg import Plan

    from robo_common.constants import QOS_LATCHED
    from robo_common.ros.conversions import plan_from_msg
    from robo_common.ros.qos import to_qos_profile

    plan = sample_plan("plan-xyz")
    plan.reasoning = "Étape 1: the bowl is left of the block → move right. 两个方块."
    plan.instruction = 'put "the" red block\tin the green bowl'
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, json.dumps(plan.to_dict()), "20"],
        env=os.environ.copy(), stderr=subprocess.PIPE, text=True,
    )
    received: list[Plan] = []
    rclpy.init()
    try:
        node = Node("test_plan_listener")
        node.create_subscription(Plan, "/robo/test_plan", received.append, to_qos_profile(QOS_LATCHED))
        import time

        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert received, f"no plan received; publisher stderr: {err[-2000:]}"
    got = plan_from_msg(received[0])
    assert got == plan
    assert isinstance(got, PlanData)


def test_domain_isolation_env() -> None:
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
