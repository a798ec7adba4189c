"""Check that a ``robo_stack/Plan`` travels intact between two processes over DDS.

``run_roundtrip_check()`` starts a listener process (``python -m
robo_common.ros.roundtrip listen``), publishes a multi-subtask plan with keypoints on a
reliable, transient-local topic from this process, and compares what the listener
printed with what was sent. ``make setup`` ends with it and the tests use it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import uuid

from robo_common.constants import BASE_FRAME, QOS_LATCHED
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

LOG = logging.getLogger(__name__)
CHECK_TOPIC = "/robo/_roundtrip_check"


def sample_plan(plan_id: str | None = None) -> PlanData:
    """Return a four-subtask plan with keypoints, as the brain would publish it.

    Pixel and confidence values are exactly representable as float32 (their message type),
    so the plan compares equal after a round trip.
    """
    return PlanData(
        plan_id=plan_id or uuid.uuid4().hex,
        revision=2,
        instruction="put all the red blocks in the green bowl",
        reasoning="Two red blocks are visible. Pick each and place it in the green bowl, then stop.",
        subtasks=[
            SubtaskData(
                0, 'pick(object="red block")', "pick", [KeypointData("grasp", (0.45, -0.12, 0.02), 61.5, 88.0, 0.9375)]
            ),
            SubtaskData(
                1, 'place(target="green bowl")', "place",
                [KeypointData("place", (0.52, 0.18, 0.06), 97.0, 70.25, 0.875)],
            ),
            SubtaskData(2, 'pick(object="small red block")', "pick", [
                KeypointData("grasp", (0.38, 0.05, 0.02), 77.0, 101.0, 0.8125),
                KeypointData("approach", (0.38, 0.05, 0.12), 77.0, 95.5, 0.5),
            ]),
            SubtaskData(3, "done()", "done", []),
        ],
        frame_id=BASE_FRAME,
        stamp_ns=1_700_000_000_123_456_789,
    )


def _listen(timeout_s: float) -> int:
    import rclpy
    from rclpy.node import Node
    from robo_stack.msg import Plan

    from robo_common.ros.conversions import plan_from_msg
    from robo_common.ros.qos import to_qos_profile

    received: list[Plan] = []
    rclpy.init()
    try:
        node = Node("robo_roundtrip_listener")
        node.create_subscription(Plan, CHECK_TOPIC, received.append, to_qos_profile(QOS_LATCHED))
        deadline = time.monotonic() + timeout_s
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    if not received:
        sys.stderr.write(f"no Plan received on {CHECK_TOPIC} within {timeout_s:.0f} s\n")
        return 1
    sys.stdout.write(json.dumps(plan_from_msg(received[0]).to_dict()) + "\n")
    return 0


def run_roundtrip_check(timeout_s: float = 30.0) -> PlanData:
    """Publish a plan here, receive it in a child process, and return what arrived.

    Raises:
        RuntimeError: if the listener fails, times out or receives a different plan.
    """
    import rclpy
    from rclpy.node import Node
    from robo_stack.msg import Plan

    from robo_common.ros.conversions import plan_to_msg
    from robo_common.ros.qos import to_qos_profile

    sent = sample_plan()
    listener = subprocess.Popen(
        [sys.executable, "-m", "robo_common.ros.roundtrip", "listen", "--timeout", str(timeout_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    rclpy.init()
    try:
        node = Node("robo_roundtrip_publisher")
        pub = node.create_publisher(Plan, CHECK_TOPIC, to_qos_profile(QOS_LATCHED))
        pub.publish(plan_to_msg(sent))
        while listener.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    out, err = listener.communicate()
    if listener.returncode != 0:
        raise RuntimeError(f"round-trip listener failed (exit {listener.returncode}): {err.strip()[-2000:]}")
    got = PlanData.from_dict(json.loads(out.strip().splitlines()[-1]))
    if got != sent:
        raise RuntimeError(f"plan changed in transit:\n sent {sent.to_dict()}\n got  {got.to_dict()}")
    return got


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``listen`` (child side) or ``check`` (both sides)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["listen", "check"])
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.mode == "listen":
        return _listen(args.timeout)
    run_roundtrip_check(args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
