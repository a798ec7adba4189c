"""``robo-stack bench cancel``: time from an operator's ``/robo/cancel`` to the first held ``/robo/ee_target``.

``sim_node`` and ``cerebellum_node`` (shipped checkpoint, node defaults: 200 Hz control loop) run as
processes on a private ROS domain. Each trial starts the simulator's expert plan under a new plan id,
lets it run for a random 0.3-0.6 s (so the cancel falls anywhere in a control period), publishes
``/robo/cancel`` and takes the system clock just before. The cerebellum's first held tick publishes
an ExecutionStatus CANCELLED stamped like that tick's target; its stamp minus the publication time
is the trial's latency (DDS delivery + the wait for the next control tick). The trial also checks
that every target from that stamp on, for ``hold_check_s``, is the same pose.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robo_system.stack import stop_processes

LOG = logging.getLogger(__name__)


def cancel_latency(checkpoint: Path, trials: int = 20, hold_check_s: float = 0.2, seed: int = 1) -> dict:
    """Run ``trials`` cancels; returns latencies (ms), their p50/p99/max, the control period and hold checks."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from robo_stack.msg import ExecutionStatus, Plan
    from std_msgs.msg import String

    from robo_common import constants as C
    from robo_common.ros.conversions import stamp_to_ns
    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import events_executor

    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(150, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "FASTDDS_BUILTIN_TRANSPORTS": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")}  # as StackProcesses
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    procs = [subprocess.Popen([sys.executable, "-m", mod, "--ros-args", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for mod, args in (("robo_sim.node", ["-p", "camera_rate_hz:=15.0", "-p", f"seed:={seed}"]),
                               ("robo_cerebellum.node", ["-p", f"checkpoint:={checkpoint}"]))]
    rng = random.Random(seed)
    targets: list[tuple[int, tuple[float, ...]]] = []
    statuses: list[ExecutionStatus] = []
    expert: list[Plan] = []
    latencies, held_ticks, moved = [], [], 0
    try:
        rclpy.init()
        node = Node("bench_cancel")
        plan_pub = node.create_publisher(Plan, C.TOPIC_PLAN, qos_for_topic(C.TOPIC_PLAN))
        cancel_pub = node.create_publisher(String, C.TOPIC_CANCEL, qos_for_topic(C.TOPIC_CANCEL))

        def on_target(m: PoseStamped) -> None:
            p, o = m.pose.position, m.pose.orientation
            targets.append((stamp_to_ns(m.header.stamp), (p.x, p.y, p.z, o.x, o.y, o.z, o.w)))

        node.create_subscription(PoseStamped, C.TOPIC_EE_TARGET, on_target, qos_for_topic(C.TOPIC_EE_TARGET))
        node.create_subscription(ExecutionStatus, C.TOPIC_EXECUTION_STATUS, statuses.append,
                                 qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        node.create_subscription(Plan, C.TOPIC_SIM_EXPERT_PLAN, expert.append, qos_for_topic(C.TOPIC_SIM_EXPERT_PLAN))
        executor = events_executor()
        executor.add_node(node)

        def spin_until(cond, timeout: float) -> bool:  # noqa: ANN001
            end = time.monotonic() + timeout
            while not cond() and time.monotonic() < end:
                executor.spin_once(timeout_sec=0.002)
            return bool(cond())

        if not spin_until(lambda: expert, 60):
            raise RuntimeError("sim_node published no expert plan within 60 s")
        for k in range(trials):
            plan, plan_id, who = expert[-1], f"cancel-bench-{k}", f"bench-{k}"
            plan.plan_id, plan.revision = plan_id, 0
            plan_pub.publish(plan)
            if not spin_until(lambda: any(s.plan_id == plan_id and s.state == ExecutionStatus.RUNNING  # noqa: B023
                                          for s in statuses[-20:]), 60):
                raise RuntimeError(f"trial {k}: the plan did not start within 60 s")
            spin_until(lambda: False, rng.uniform(0.3, 0.6))
            n_targets = len(targets)
            t_pub = time.time_ns()
            cancel_pub.publish(String(data=who))

            def held_status() -> ExecutionStatus | None:
                return next((s for s in statuses[-50:] if s.state == ExecutionStatus.CANCELLED  # noqa: B023
                             and s.detail == f"cancelled by {who}: holding"), None)  # noqa: B023

            if not spin_until(lambda: held_status() is not None, 5):
                raise RuntimeError(f"trial {k}: no CANCELLED status within 5 s")
            stamp = stamp_to_ns(held_status().header.stamp)
            latencies.append((stamp - t_pub) / 1e6)
            spin_until(lambda: False, hold_check_s)
            after = {pose for t, pose in targets[n_targets:] if t >= stamp}
            held_ticks.append(sum(1 for t, _ in targets[n_targets:] if t >= stamp))
            moved += len(after) != 1
        stamps = np.array([t for t, _ in targets], np.int64)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        stop_processes(procs)
    periods = np.diff(stamps) / 1e6
    periods = periods[(periods > 0) & (periods < 100)]  # the gaps between trials' plans are not periods
    lat = np.array(latencies)
    return {"trials": trials, "cancel_to_hold_ms": lat.round(3).tolist(),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "max_ms": float(lat.max()),
            "control_period_p50_ms": float(np.percentile(periods, 50)),
            "control_period_p99_ms": float(np.percentile(periods, 99)),
            "within_one_period": int(np.sum(lat <= float(np.percentile(periods, 50)))),
            "trials_with_a_moving_target_after_the_hold": moved, "held_ticks_checked": int(sum(held_ticks))}
