"""Publish a bag's topics on DDS at recorded timing, with ``/clock``: ``robo-stack replay BAG --rate R``.

Like ``ros2 bag play --clock``: messages go out in log-time order, each at
``start + (t - t0) / rate`` on the wall clock, as the serialized bytes stored in the bag (no
decode/encode, unless a topic map renames frames); ``/clock`` carries the bag time, before every
message and at ``clock_hz`` in between, so nodes started with ``use_sim_time:=true`` run on the
bag's clock. Topics use robo_stack's QoS for known names (sensor streams best effort, plans
latched). ``--inputs-only`` publishes only what the robot and the brain provide (camera, state,
plan, instruction), so that live nodes' outputs are not confused with the recorded ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.node import Node
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock

from robo_common import bags
from robo_common import constants as C
from robo_common.ros.conversions import ns_to_stamp
from robo_common.ros.dynamic import message_class, publisher_qos
from robo_eval.bagread import BagError, TopicMap

LOG = logging.getLogger(__name__)

INPUT_TOPICS = (C.TOPIC_COLOR_IMAGE, C.TOPIC_DEPTH_IMAGE, C.TOPIC_CAMERA_INFO, C.TOPIC_CAMERA_POSE, C.TOPIC_EE_POSE,
                C.TOPIC_JOINT_STATES, C.TOPIC_PLAN, C.TOPIC_INSTRUCTION)
"""What a robot and a brain publish: the cerebellum's inputs (``--inputs-only``)."""


@dataclass(frozen=True)
class PlayConfig:
    """How to play a bag.

    Attributes:
        rate: Playback speed (1.0: recorded timing).
        topics: Our topic names to play (None: all, or :data:`INPUT_TOPICS` with ``inputs_only``).
        exclude: Our topic names never to play.
        inputs_only: Play only :data:`INPUT_TOPICS`.
        clock: Publish ``/clock``.
        clock_hz: ``/clock`` rate between messages (wall clock).
        start_delay_s: Wall time between creating the publishers and the first message (discovery).
        wait_for: Topics that must each have a subscriber before playing starts.
        wait_timeout_s: How long to wait for them.
    """

    rate: float = 1.0
    topics: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    inputs_only: bool = False
    clock: bool = True
    clock_hz: float = 100.0
    start_delay_s: float = 1.0
    wait_for: tuple[str, ...] = ()
    wait_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"PlayConfig.rate must be > 0, got {self.rate}")
        if not self.clock_hz > 0:
            raise ValueError(f"PlayConfig.clock_hz must be > 0, got {self.clock_hz}")
        if self.start_delay_s < 0 or self.wait_timeout_s < 0:
            raise ValueError("PlayConfig.start_delay_s and wait_timeout_s must be >= 0")

    def selects(self, topic: str) -> bool:
        """Whether our topic ``topic`` is played."""
        if topic in self.exclude:
            return False
        if self.topics is not None:
            return topic in self.topics
        return topic in INPUT_TOPICS if self.inputs_only else True


@dataclass
class PlayResult:
    """What a playback did."""

    messages: int
    clock_messages: int
    bag_duration_s: float
    wall_s: float
    topics: dict[str, int]


def load_messages(path: Path, cfg: PlayConfig, topic_map: TopicMap | None = None) -> tuple[
        list[tuple[int, str, bytes]], dict[str, str]]:
    """The selected messages of a bag as ``(log_ns, our_topic, cdr_bytes)`` in time order, and their types.

    Raises:
        BagError: the bag cannot be read, or a selected topic named in ``cfg.topics`` is absent.
    """
    tmap = topic_map or TopicMap()
    if not (Path(path) / "metadata.yaml").is_file():
        raise BagError(f"{path}: not a rosbag2 directory (no metadata.yaml)")
    store = bags.typestore()
    try:
        with Reader(path) as reader:
            conns = [c for c in reader.connections if cfg.selects(tmap.ours(c.topic))]
            types = {tmap.ours(c.topic): c.msgtype for c in conns}
            missing = [t for t in cfg.topics or () if t not in types and t not in cfg.exclude]
            if missing:
                raise BagError(f"{path}: missing topic(s) {missing}")
            out = []
            for conn, log_ns, raw in reader.messages(connections=conns):
                if tmap.frames:
                    msg = store.deserialize_cdr(raw, conn.msgtype)
                    head = getattr(msg, "header", None)
                    if head is not None:
                        head.frame_id = tmap.frame(head.frame_id)
                    raw = store.serialize_cdr(msg, conn.msgtype)
                out.append((int(log_ns), tmap.ours(conn.topic), bytes(raw)))
    except BagError:
        raise
    except Exception as exc:  # rosbags raises several types for truncated or corrupt storage
        raise BagError(f"{path}: cannot read bag (truncated or corrupt?): {type(exc).__name__}: {exc}") from exc
    if not out:
        raise BagError(f"{path}: no messages to play on the selected topics")
    out.sort(key=lambda m: m[0])
    return out, types


class BagPlayer(Node):
    """Publishes a list of serialized messages at recorded timing (call :meth:`play`)."""

    def __init__(self, types: dict[str, str], cfg: PlayConfig) -> None:
        """Create one publisher per topic (and ``/clock``)."""
        super().__init__("robo_bag_player")
        self.cfg = cfg
        self.pubs = {t: self.create_publisher(message_class(m), t, publisher_qos(t)) for t, m in types.items()}
        self.clock_pub = self.create_publisher(Clock, C.TOPIC_CLOCK, 10) if cfg.clock else None
        self.clock_count = 0

    def _publish_clock(self, ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=ns_to_stamp(ns)))
            self.clock_count += 1

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.cfg.wait_timeout_s
        waiting = [t for t in self.cfg.wait_for if t in self.pubs]
        while waiting and time.monotonic() < deadline:
            waiting = [t for t in waiting if self.pubs[t].get_subscription_count() == 0]
            time.sleep(0.05)
        if waiting:
            self.get_logger().warning(f"no subscriber on {waiting} after {self.cfg.wait_timeout_s:.0f} s; playing")

    def play(self, messages: Iterable[tuple[int, str, bytes]]) -> PlayResult:
        """Publish ``messages`` (time-ordered) at ``cfg.rate``; returns counts and timing."""
        messages = list(messages)
        time.sleep(self.cfg.start_delay_s)
        self._wait_for_subscribers()
        t0_bag = messages[0][0]
        start = time.monotonic()
        clock_period = 1.0 / self.cfg.clock_hz
        counts: dict[str, int] = {}
        for log_ns, topic, raw in messages:
            due = start + (log_ns - t0_bag) / 1e9 / self.cfg.rate
            while (now := time.monotonic()) < due and rclpy.ok():
                self._publish_clock(t0_bag + int((now - start) * self.cfg.rate * 1e9))
                time.sleep(min(clock_period, due - now))
            if not rclpy.ok():
                break
            self._publish_clock(log_ns)
            self.pubs[topic].publish(raw)
            counts[topic] = counts.get(topic, 0) + 1
        wall = time.monotonic() - start
        return PlayResult(sum(counts.values()), self.clock_count, (messages[-1][0] - t0_bag) / 1e9, wall, counts)


def play_bag(path: Path, cfg: PlayConfig, topic_map: TopicMap | None = None,
             args: list[str] | None = None) -> PlayResult:
    """Init rclpy, play the bag once, linger briefly so reliable samples are delivered, shut down.

    Raises:
        BagError: the bag cannot be read (see :func:`load_messages`).
        ValueError: a message type has no Python package here.
    """
    messages, types = load_messages(Path(path), cfg, topic_map)
    with rclpy.init(args=args):
        node = BagPlayer(types, cfg)
        try:
            result = node.play(messages)
            time.sleep(0.5)
        finally:
            node.destroy_node()
    return result
