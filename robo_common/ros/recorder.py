"""Record live ROS 2 topics into a rosbag2 (mcap or sqlite3), like ``ros2 bag record`` for chosen topics.

Subscriptions take the serialized CDR bytes (``raw=True``), which is exactly what rosbag2
stores, so nothing is deserialized on the way; each message is written with its receive time
on the node's clock (simulated time when the node runs with ``use_sim_time``). The message
definitions come from :func:`robo_common.bags.typestore`, so the bag opens with ``rosbags``
(and ``ros2 bag info``) on any machine. Latched topics (plans) are subscribed transient-local,
so a plan published before the recorder started is still recorded.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from robo_common import bags
from robo_common.constants import TOPIC_QOS, Durability, relative

LOG = logging.getLogger(__name__)


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name`` (``ValueError`` naming it when it is not installed)."""
    try:
        pkg, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"unknown message type {msgtype!r}: {exc}") from None


def _qos(topic: str) -> QoSProfile:
    """Best-effort (receives from reliable and best-effort publishers); transient local for latched topics."""
    choice = TOPIC_QOS.get(topic)
    latched = choice is not None and choice.durability == Durability.TRANSIENT_LOCAL
    return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if latched else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class LiveRecorder:
    """Writes every message of ``topics`` (name -> ``pkg/msg/Type``) seen by ``node`` into a bag at ``path``."""

    def __init__(self, node: Node, path: Path, topics: dict[str, str], storage: str = "mcap",
                 compress: bool = True) -> None:
        """Open the bag (``path`` must not exist) and subscribe (names relative to the node's namespace)."""
        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        self.path = Path(path)
        self.node = node
        self._writer = Writer(self.path, version=9,
                              storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        if compress and storage == "mcap":
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        store = bags.typestore()
        self._conns: dict[str, Any] = {}
        self._subs = []
        self.counts: dict[str, int] = {}
        for topic, msgtype in topics.items():
            cls = message_class(msgtype)
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=store)
            self._subs.append(node.create_subscription(cls, relative(topic), lambda raw, t=topic: self._on(t, raw),
                                                       _qos(topic), raw=True))
        self.closed = False

    def _on(self, topic: str, raw: bytes) -> None:
        if self.closed:
            return
        self._writer.write(self._conns[topic], self.node.get_clock().now().nanoseconds, bytes(raw))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_json(self, key: str, value: str) -> None:
        """Store ``value`` in the bag's custom data (metadata.yaml) under ``key``."""
        self._writer.set_custom_data(key, value)

    def close(self) -> dict[str, int]:
        """Unsubscribe and close the bag; returns messages written per topic."""
        if not self.closed:
            self.closed = True
            for sub in self._subs:
                self.node.destroy_subscription(sub)
            self._writer.close()
        return dict(self.counts)
