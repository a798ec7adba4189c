"""Record live topics into a rosbag2 (mcap or sqlite3): ``robo-stack record OUT --topics ...``.

Subscribes to each requested topic as soon as a publisher appears (its type from the ROS graph,
its QoS adapted to the publishers', as ``ros2 bag record`` does), and writes the serialized bytes
as they arrive, stamped with the node clock (the bag's ``/clock`` time under
``use_sim_time:=true``). Stops on Ctrl-C, after ``duration_s``, or ``idle_timeout_s`` after the
last message; on SIGINT or SIGTERM the bag is closed properly, so the offline scorer can read it.
Every ``flush_s`` the recorder also writes out what it holds in memory (closes the open MCAP chunk,
commits the sqlite3 transaction): a recorder killed with SIGKILL loses at most that much, and
:mod:`robo_common.bag_salvage` reads the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from robo_common import bags
from robo_common.ros.dynamic import message_class, subscriber_qos

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordConfig:
    """What and how long to record.

    Attributes:
        topics: Topics to record (empty with ``all_topics``: every topic seen).
        all_topics: Record every topic that appears (except ``/rosout`` and ``/parameter_events``).
        storage: ``mcap`` (zstd chunks) or ``sqlite3``.
        use_sim_time: Stamp with ``/clock`` time.
        duration_s: Stop after this long (wall clock); 0: no limit.
        idle_timeout_s: Stop this long after the last message (once one arrived); 0: never.
        flush_s: Write out buffered messages this often (wall clock), so a killed recorder loses at
            most this long; 0: only when a 1 MiB chunk fills (mcap) or at close (sqlite3).
    """

    topics: tuple[str, ...] = ()
    all_topics: bool = False
    storage: str = "mcap"
    use_sim_time: bool = False
    duration_s: float = 0.0
    idle_timeout_s: float = 0.0
    flush_s: float = 1.0

    def __post_init__(self) -> None:
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"RecordConfig.storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if not self.topics and not self.all_topics:
            raise ValueError("RecordConfig: name topics or set all_topics")
        if self.duration_s < 0 or self.idle_timeout_s < 0 or self.flush_s < 0:
            raise ValueError("RecordConfig.duration_s, idle_timeout_s and flush_s must be >= 0")


class TopicRecorder:
    """Writes the topics ``node`` sees into a bag: subscribes (raw) to each as its publishers appear.

    Attach it to any node (the demo's client records this way); :class:`BagRecorder` is the
    standalone recorder node of ``robo-stack record``. Topic names are absolute, as in the bag.
    """

    IGNORED = ("/rosout", "/parameter_events")

    def __init__(self, node: Node, out: Path, cfg: RecordConfig) -> None:
        """Open the bag at ``out`` (must not exist) and start discovering topics."""
        self.node = node
        self.cfg = cfg
        self.out = Path(out)
        plugin = StoragePlugin.MCAP if cfg.storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.out, version=9, storage_plugin=plugin)
        if cfg.storage == "mcap":
            self.writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self.writer.open()
        self.counts: dict[str, int] = {}
        self.last_message = 0.0
        self.closed = False
        self._conns: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._store = bags.typestore()
        # graph polling on the steady clock: under use_sim_time a ROS-time timer waits for /clock
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = node.create_timer(0.1, self._discover, clock=steady)
        self._flush_timer = node.create_timer(cfg.flush_s, self.flush, clock=steady) if cfg.flush_s else None
        self._discover()

    def _wanted(self, topic: str) -> bool:
        return topic in self.cfg.topics or (self.cfg.all_topics and topic not in self.IGNORED)

    def _discover(self) -> None:
        if self.closed:
            return
        node = self.node
        for topic, types in node.get_topic_names_and_types():
            if topic in self._conns or not self._wanted(topic) or not types:
                continue
            publishers = node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            msgtype = types[0]
            try:
                cls = message_class(msgtype)
                conn = self.writer.add_connection(topic, msgtype, typestore=self._store)
            except Exception as exc:  # noqa: BLE001 - an unknown type skips the topic, never the recording
                node.get_logger().error(f"cannot record {topic} ({msgtype}): {exc}")
                self._conns[topic] = None
                continue
            self._conns[topic] = conn
            self._subs.append(node.create_subscription(cls, topic, self._callback(topic), subscriber_qos(publishers),
                                                       raw=True))
            node.get_logger().info(f"recording {topic} ({msgtype})")

    def _callback(self, topic: str):  # noqa: ANN202 - a subscription callback
        def write(raw: bytes) -> None:
            if self.closed:
                return
            self.writer.write(self._conns[topic], self.node.get_clock().now().nanoseconds, raw)
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.last_message = time.monotonic()

        return write

    def flush(self) -> None:
        """Write what the bag's storage holds in memory to the file (rosbags has no public call for it)."""
        storage = getattr(self.writer, "storage", None)
        if self.closed or storage is None:
            return
        chunk = getattr(storage, "chunk", None)
        if chunk is not None and hasattr(storage, "close_chunk"):  # mcap: close the open chunk
            if chunk.bio.tell():
                storage.close_chunk()
                storage.bio.flush()
        elif hasattr(storage, "conn"):  # sqlite3: commit the open transaction
            storage.conn.commit()

    @property
    def topics(self) -> set[str]:
        """Topics being recorded so far."""
        return {t for t, conn in self._conns.items() if conn is not None}

    def set_metadata(self, key: str, value: str) -> None:
        """Store ``value`` in the bag's custom data (metadata.yaml) under ``key``."""
        self.writer.set_custom_data(key, value)

    def close(self) -> dict[str, int]:
        """Stop recording and close the bag (writes its metadata); returns messages per topic."""
        if not self.closed:
            self.closed = True
            self.node.destroy_timer(self._timer)
            if self._flush_timer is not None:
                self.node.destroy_timer(self._flush_timer)
            for sub in self._subs:
                self.node.destroy_subscription(sub)
            self.writer.close()
        return dict(self.counts)


class BagRecorder(Node):
    """The standalone recorder node: a :class:`TopicRecorder` on its own node."""

    def __init__(self, out: Path, cfg: RecordConfig) -> None:
        """Open the bag at ``out`` (must not exist)."""
        super().__init__("robo_bag_recorder", parameter_overrides=[
            Parameter("use_sim_time", Parameter.Type.BOOL, cfg.use_sim_time)])
        self.cfg = cfg
        self.recorder = TopicRecorder(self, out, cfg)

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return self.recorder.counts

    def done(self, started: float) -> bool:
        """Whether the duration or the idle timeout has passed."""
        now = time.monotonic()
        if self.cfg.duration_s and now - started >= self.cfg.duration_s:
            return True
        last = self.recorder.last_message
        return bool(self.cfg.idle_timeout_s and last and now - last >= self.cfg.idle_timeout_s)

    def close(self) -> None:
        """Close the bag (writes its metadata)."""
        self.recorder.close()


def record(out: Path, cfg: RecordConfig, args: list[str] | None = None) -> dict[str, int]:
    """Record until Ctrl-C, the duration or the idle timeout; returns the message count per topic.

    Raises:
        FileExistsError: ``out`` exists.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; the recorder writes a new bag")
    counts: dict[str, int] = {}
    try:
        with rclpy.init(args=args):
            node = BagRecorder(out, cfg)
            started = time.monotonic()
            try:
                while rclpy.ok() and not node.done(started):
                    rclpy.spin_once(node, timeout_sec=0.05)
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            finally:
                counts = dict(node.counts)
                node.close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return counts
