"""``robo-stack bench cerebellum``: the policy's step latency and ``cerebellum_node``'s loop rate beside ``sim_node``.

Part 1, step latency, is :func:`robo_cerebellum.bench.step_latency` (see there). Part 2, the node
loop: ``sim_node`` (physics, and a camera at 15 Hz) and ``cerebellum_node`` (its defaults: control
thread on SCHED_FIFO where permitted) run as processes on a private ROS domain; the expert's plan
is sent; the stamps of ``/robo/ee_target`` give the loop rate and the p99 period. Also reported:
the rates at which ``sim_node``'s images and ``/robo/ee_pose`` arrived.
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


def node_loop(checkpoint: Path, seconds: float) -> dict:
    """Loop rate and period jitter of ``cerebellum_node`` beside ``sim_node`` streaming 15 Hz images."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from robo_stack.msg import Plan
    from sensor_msgs.msg import Image

    from robo_common import constants as C
    from robo_common.ros.conversions import stamp_to_ns
    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import events_executor

    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(150, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "FASTDDS_BUILTIN_TRANSPORTS": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")}  # as StackProcesses
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    procs = [subprocess.Popen([sys.executable, "-m", mod, "--ros-args", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for mod, args in (("robo_sim.node", ["-p", "camera_rate_hz:=15.0", "-p", "seed:=1"]),
                               ("robo_cerebellum.node", ["-p", f"checkpoint:={checkpoint}"]))]
    stamps: list[int] = []
    images: list[float] = []
    states: list[float] = []
    try:
        rclpy.init()
        node = Node("bench_cerebellum")
        plan_pub = node.create_publisher(Plan, C.TOPIC_PLAN, qos_for_topic(C.TOPIC_PLAN))
        node.create_subscription(Plan, C.TOPIC_SIM_EXPERT_PLAN, plan_pub.publish, qos_for_topic(C.TOPIC_PLAN))
        node.create_subscription(PoseStamped, C.TOPIC_EE_TARGET, lambda m: stamps.append(stamp_to_ns(m.header.stamp)),
                                 qos_for_topic(C.TOPIC_EE_TARGET))
        node.create_subscription(Image, C.TOPIC_COLOR_IMAGE, lambda m: images.append(time.monotonic()),
                                 qos_for_topic(C.TOPIC_COLOR_IMAGE))
        node.create_subscription(PoseStamped, C.TOPIC_EE_POSE, lambda m: states.append(time.monotonic()),
                                 qos_for_topic(C.TOPIC_EE_POSE))
        executor = events_executor()  # this process's own load is part of what the node competes with
        executor.add_node(node)
        deadline = time.monotonic() + 60
        while len(stamps) < 50 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        if len(stamps) < 50:
            raise RuntimeError("cerebellum_node published no targets within 60 s")
        stamps.clear()
        images.clear()
        states.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        stop_processes(procs)
    periods = np.diff(np.array(stamps, np.int64)) / 1e6
    return {"loop_hz": float(1e3 / periods.mean()), "period_p50_ms": float(np.percentile(periods, 50)),
            "period_p99_ms": float(np.percentile(periods, 99)), "period_max_ms": float(periods.max()),
            "targets": len(stamps), "image_hz": _rate(images), "sim_state_hz": _rate(states)}


def _rate(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


def run_benchmark(checkpoint: Path, steps: int = 10_050, node_seconds: float = 20.0, repeats: int = 100) -> dict:
    """Run both parts; returns the JSON-ready result."""
    result: dict = {"checkpoint": str(checkpoint), "steps": steps, **step_latency(Path(checkpoint), steps, repeats),
                    "loop_hz": None, "period_p99_ms": None}
    if node_seconds > 0:
        result.update(node_loop(Path(checkpoint), node_seconds))
    return result
