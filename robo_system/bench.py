"""``robo-stack bench cerebellum``: the policy's step latency and ``cerebellum_node``'s loop rate beside ``sim_node``.

Part 1, step latency, is :func:`robo_cerebellum.bench.step_latency` (see there). Part 2, the node
loop: ``sim_node`` (physics, and a camera at 15 Hz), ``cerebellum_node`` (its defaults: control
thread on SCHED_FIFO where permitted) and, with ``with_brain``, ``brain_node`` with its model loaded
(idle: it plans nothing, as between instructions) run as processes on a private ROS domain; the
expert's plan is sent, and again under a new id every second (so that the policy runs the whole window,
whatever becomes of the plan); the stamps of ``/robo/ee_target`` give the loop rate and the p99 period,
and the node's own ``/robo/cerebellum_diagnostics`` the policy steps that ran the network per second and
the duration of each (p50 / p99 over the window). Also reported: the rates at which ``sim_node``'s images and
``/robo/ee_pose`` arrived.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robo_cerebellum.bench import step_latency
from robo_system.stack import stop_processes


def node_loop(checkpoint: Path, seconds: float, with_brain: bool = False) -> dict:
    """Loop rate, period jitter and policy rate of ``cerebellum_node`` beside ``sim_node`` streaming 15 Hz images
    (and ``brain_node``, loaded and idle, with ``with_brain``)."""
    import json

    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from robo_stack.msg import Plan
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from robo_cerebellum.loop_stats import merge, percentile_ms
    from robo_common import constants as C
    from robo_common.ros.conversions import stamp_to_ns
    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import events_executor
    from robo_system.stack import StackConfig

    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(150, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "FASTDDS_BUILTIN_TRANSPORTS": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")}  # as StackProcesses
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    procs = [subprocess.Popen([sys.executable, "-m", mod, "--ros-args", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for mod, args in (("robo_sim.node", ["-p", "camera_rate_hz:=15.0", "-p", "seed:=1"]),
                               ("robo_cerebellum.node", ["-p", f"checkpoint:={checkpoint}",  # the re-sent plans'
                                                         "-p", "keypoint_check:=false"]))]  # objects have moved
    if with_brain:  # as the stack starts it (its config/brain.yaml), on wall time like the two above
        procs.append(subprocess.Popen(StackConfig(use_sim_time=False).command("brain_node"), env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    stamps: list[int] = []
    images: list[float] = []
    states: list[float] = []
    diagnostics: list[dict] = []
    brain: list[str] = []
    try:
        rclpy.init()
        node = Node("bench_cerebellum")
        plan_pub = node.create_publisher(Plan, C.TOPIC_PLAN, qos_for_topic(C.TOPIC_PLAN))
        expert: list[Plan] = []

        def on_expert(msg: Plan) -> None:
            expert.append(msg)
            plan_pub.publish(msg)

        def resend() -> None:  # the policy runs the whole window: the plan again, under a new id, every second
            if expert:
                msg = expert[-1]
                msg.plan_id = f"bench-{time.monotonic_ns()}"
                msg.header.stamp = node.get_clock().now().to_msg()
                plan_pub.publish(msg)

        node.create_subscription(Plan, C.TOPIC_SIM_EXPERT_PLAN, on_expert, qos_for_topic(C.TOPIC_PLAN))
        node.create_timer(1.0, resend)
        node.create_subscription(PoseStamped, C.TOPIC_EE_TARGET, lambda m: stamps.append(stamp_to_ns(m.header.stamp)),
                                 qos_for_topic(C.TOPIC_EE_TARGET))
        node.create_subscription(Image, C.TOPIC_COLOR_IMAGE, lambda m: images.append(time.monotonic()),
                                 qos_for_topic(C.TOPIC_COLOR_IMAGE))
        node.create_subscription(PoseStamped, C.TOPIC_EE_POSE, lambda m: states.append(time.monotonic()),
                                 qos_for_topic(C.TOPIC_EE_POSE))
        node.create_subscription(String, C.TOPIC_CEREBELLUM_DIAGNOSTICS,
                                 lambda m: diagnostics.append(json.loads(m.data)),
                                 qos_for_topic(C.TOPIC_CEREBELLUM_DIAGNOSTICS))
        node.create_subscription(String, C.TOPIC_BRAIN_STATUS,
                                 lambda m: brain.append(str(json.loads(m.data).get("state"))),
                                 qos_for_topic(C.TOPIC_BRAIN_STATUS))
        executor = events_executor()  # this process's own load is part of what the node competes with
        executor.add_node(node)
        def brain_loading() -> bool:
            return with_brain and (not brain or brain[-1] in ("loading", "starting"))

        deadline = time.monotonic() + 120
        while (len(stamps) < 50 or brain_loading()) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        if len(stamps) < 50:
            raise RuntimeError("cerebellum_node published no targets within 120 s")
        if brain_loading():
            raise RuntimeError(f"brain_node not ready within 120 s (states seen: {brain[-3:]})")
        stamps.clear()
        images.clear()
        states.clear()
        diagnostics.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        stop_processes(procs)
    periods = np.diff(np.array(stamps, np.int64)) / 1e6
    steps = merge(d.get("policy_step_hist", {}).get("counts", {}) for d in diagnostics)
    window = sum(d.get("window_s") or 0.0 for d in diagnostics)
    return {"loop_hz": float(1e3 / periods.mean()), "period_p50_ms": float(np.percentile(periods, 50)),
            "period_p99_ms": float(np.percentile(periods, 99)), "period_max_ms": float(periods.max()),
            "targets": len(stamps), "image_hz": _rate(images), "sim_state_hz": _rate(states),
            "with_brain": with_brain,
            "node_policy_steps_per_s": sum(d.get("policy_runs", 0) for d in diagnostics) / window if window else None,
            "node_policy_thread_steps_per_s": (sum(d.get("policy_steps", 0) for d in diagnostics) / window
                                               if window else None),
            "node_policy_step_p50_ms": percentile_ms(steps, 50), "node_policy_step_p99_ms": percentile_ms(steps, 99),
            "node_period_p99_ms": percentile_ms(merge(d["period_hist"]["counts"] for d in diagnostics), 99)}


def _rate(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


def run_benchmark(checkpoint: Path, steps: int = 10_050, node_seconds: float = 20.0, repeats: int = 100,
                  with_brain: bool = True) -> dict:
    """Run both parts; returns the JSON-ready result."""
    result: dict = {"checkpoint": str(checkpoint), "steps": steps, **step_latency(Path(checkpoint), steps, repeats),
                    "loop_hz": None, "period_p99_ms": None}
    if node_seconds > 0:
        result.update(node_loop(Path(checkpoint), node_seconds, with_brain))
    return result
