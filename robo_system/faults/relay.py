"""A lossy relay for the ``sensor_drop`` fault: forwards the simulator's sensor topics, dropping a share at random.

``python -m robo_system.faults.relay --drop 0.3 --seed 7 --prefix /faults/raw`` subscribes to
``<prefix><topic>`` for each topic of :data:`RELAYED` (where sim_node publishes when started with
``-r <topic>:=<prefix><topic>``) and republishes each message on ``<topic>`` with the same QoS, except a
share ``--drop`` of them, drawn per message from a seeded generator (one stream per topic, so the share
holds on each). Messages are forwarded as serialized bytes: nothing is converted or copied into Python
objects. Once a second, and at exit, it prints one JSON line of counts per topic (``relay: {...}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from robo_common import constants as C

RELAYED = (C.TOPIC_EE_POSE, C.TOPIC_JOINT_STATES, C.TOPIC_COLOR_IMAGE, C.TOPIC_DEPTH_IMAGE, C.TOPIC_CAMERA_INFO)
"""The sensor streams the relay forwards (the latched camera pose and ``/clock`` are not dropped)."""


def relay_remaps(prefix: str) -> dict[str, str]:
    """sim_node's remappings that send its sensor topics to the relay's inputs."""
    return {topic: prefix.rstrip("/") + topic for topic in RELAYED}


class DropCounter:
    """Per-topic decisions to drop (seeded, reproducible) and the counts of forwarded and dropped messages."""

    def __init__(self, drop: float, seed: int, topics: tuple[str, ...] = RELAYED) -> None:
        """A generator per topic, seeded with ``seed`` and the topic's index."""
        if not 0.0 <= drop < 1.0:
            raise ValueError(f"drop must be in [0, 1), got {drop}")
        self.drop = drop
        self.rng = {t: np.random.default_rng([seed, i]) for i, t in enumerate(topics)}
        self.counts = {t: {"forwarded": 0, "dropped": 0} for t in topics}

    def keep(self, topic: str) -> bool:
        """Whether to forward the next message of ``topic`` (counted)."""
        kept = bool(self.rng[topic].random() >= self.drop)
        self.counts[topic]["forwarded" if kept else "dropped"] += 1
        return kept


def _message_type(topic: str) -> type:
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState

    return {C.TOPIC_EE_POSE: PoseStamped, C.TOPIC_JOINT_STATES: JointState, C.TOPIC_COLOR_IMAGE: Image,
            C.TOPIC_DEPTH_IMAGE: Image, C.TOPIC_CAMERA_INFO: CameraInfo}[topic]


def main(argv: list[str] | None = None) -> None:
    """Run the relay until SIGINT/SIGTERM."""
    from rclpy.node import Node

    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import events_executor, run_node

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix", default="/faults/raw")
    args, ros_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    counter = DropCounter(args.drop, args.seed)

    class Relay(Node):
        def __init__(self) -> None:
            super().__init__("fault_relay")
            for topic in RELAYED:
                kind, qos = _message_type(topic), qos_for_topic(topic)
                pub = self.create_publisher(kind, topic, qos)
                self.create_subscription(kind, relay_remaps(args.prefix)[topic],
                                         lambda raw, t=topic, p=pub: counter.keep(t) and p.publish(raw), qos, raw=True)
            self.create_timer(1.0, self.report)

        def report(self) -> None:
            print("relay: " + json.dumps(counter.counts), flush=True)

        def destroy_node(self) -> None:
            self.report()
            super().destroy_node()

    print(f"relay up: drop {args.drop}, seed {args.seed}, from {args.prefix}, {time.strftime('%H:%M:%S')}",
          flush=True)
    run_node(Relay, ros_args, executor=events_executor)


if __name__ == "__main__":
    main()
