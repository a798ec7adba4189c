"""Read a rosbag2 (mcap or sqlite3) into per-topic message lists, with a topic/frame map for other robots.

Every problem with a bag is a :class:`BagError` whose message names the bag and what is wrong
(missing directory, not a rosbag2 directory, empty, truncated or corrupt, a missing topic, an
unknown message type, a topic of the wrong type, a pose in a frame we do not know).

A :class:`TopicMap` (YAML) renames another robot's topics and frames to ours::

    topics:            # their name: our name
      /franka/ee_pose: /robo/ee_pose
      /franka/cmd_pose: /robo/ee_target
    frames:            # their frame_id: ours
      fr3_link0: panda_link0
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_idl, get_types_from_msg

from robo_common import bags
from robo_common import constants as C
from robo_common.bag_salvage import SalvageReport, salvage

LOG = logging.getLogger(__name__)

EXPECTED_TYPES: dict[str, str] = {
    C.TOPIC_EE_POSE: "geometry_msgs/msg/PoseStamped",
    C.TOPIC_EE_TARGET: "geometry_msgs/msg/PoseStamped",
    C.TOPIC_CAMERA_POSE: "geometry_msgs/msg/PoseStamped",
    C.TOPIC_JOINT_STATES: "sensor_msgs/msg/JointState",
    C.TOPIC_GRIPPER_COMMAND: "std_msgs/msg/Float64",
    C.TOPIC_COLOR_IMAGE: "sensor_msgs/msg/Image",
    C.TOPIC_DEPTH_IMAGE: "sensor_msgs/msg/Image",
    C.TOPIC_CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    C.TOPIC_EXECUTION_STATUS: "robo_stack/msg/ExecutionStatus",
    C.TOPIC_PLAN: "robo_stack/msg/Plan",
    C.TOPIC_SIM_EXPERT_PLAN: "robo_stack/msg/Plan",
    C.TOPIC_FAILURE: "robo_stack/msg/FailureReport",
    C.TOPIC_SIM_EPISODE: "std_msgs/msg/String",
    C.TOPIC_INSTRUCTION: "std_msgs/msg/String",
}
"""The message type each of our topics must have (after the topic map)."""


class BagError(ValueError):
    """A bag that cannot be scored; the message names the bag and the problem."""


@dataclass(frozen=True)
class TopicMap:
    """Renames another robot's topics and frame ids to robo_stack's (identity when empty)."""

    topics: dict[str, str] = field(default_factory=dict)
    frames: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, mapping in (("topics", self.topics), ("frames", self.frames)):
            for key, value in mapping.items():
                if not isinstance(key, str) or not isinstance(value, str) or not key or not value:
                    raise ValueError(f"topic map {kind}: entries must be non-empty strings, got {key!r}: {value!r}")
        targets = list(self.topics.values())
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise ValueError(f"topic map: several topics map to {dup}")

    @classmethod
    def load(cls, path: str | Path) -> TopicMap:
        """Read a YAML file with optional ``topics:`` and ``frames:`` mappings.

        Raises:
            ValueError: unknown keys or entries that are not strings (the message names them).
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a topic map is a mapping with 'topics' and 'frames', got {type(data).__name__}")
        unknown = sorted(set(data) - {"topics", "frames"})
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; expected 'topics' and/or 'frames'")
        return cls(dict(data.get("topics") or {}), dict(data.get("frames") or {}))

    def ours(self, topic: str) -> str:
        """Our name of a bag topic."""
        return self.topics.get(topic, topic)

    def theirs(self, topic: str) -> str:
        """The bag's name of one of our topics."""
        for theirs, ours in self.topics.items():
            if ours == topic:
                return theirs
        return topic

    def frame(self, frame_id: str) -> str:
        """Our name of a bag frame id."""
        return self.frames.get(frame_id, frame_id)


@dataclass
class Recording:
    """The messages of one bag, by our topic names, in timestamp order.

    Attributes:
        path: The bag directory.
        messages: Our topic -> ``(stamp_ns, message)``; the stamp is the header stamp when the
            message has a header, else the bag's log time.
        types: Our topic -> message type.
        start_ns: Earliest log time in the bag.
        end_ns: Latest log time in the bag.
        metadata: The bag's ``custom_data`` (strings), e.g. robo_stack's episode JSON.
        salvage: For a bag its recorder did not close (killed): what was read and what is missing.
    """

    path: Path
    messages: dict[str, list[tuple[int, Any]]]
    types: dict[str, str]
    start_ns: int
    end_ns: int
    metadata: dict[str, str] = field(default_factory=dict)
    salvage: SalvageReport | None = None

    @property
    def duration_s(self) -> float:
        """Recorded duration in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def get(self, topic: str) -> list[tuple[int, Any]]:
        """Messages of a topic (empty when absent)."""
        return self.messages.get(topic, [])


def stamp_ns(msg: Any, fallback: int) -> int:
    """Header stamp of a message in ns, or ``fallback`` when it has no header."""
    head = getattr(msg, "header", None)
    if head is None:
        return int(fallback)
    return int(head.stamp.sec) * 1_000_000_000 + int(head.stamp.nanosec)


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path to bag directories: a bag itself, or every bag below a folder of bags.

    A path that is neither (missing, empty folder, a folder without ``metadata.yaml``) is kept as
    it is, so that scoring it reports a clear error for it instead of silently dropping it.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not (path / "metadata.yaml").is_file():
            found = sorted(p.parent for p in path.rglob("metadata.yaml") if ".partial" not in p.parts)
            if found:
                out.extend(found)
                continue
        out.append(path)
    return out


def _register_unknown(conn: Any, store: Any) -> bool:
    """Register a connection's message type from the definition stored in the bag; False if impossible."""
    msgdef = getattr(conn, "msgdef", None)
    text = getattr(msgdef, "data", "") if msgdef is not None else ""
    if not text:
        return False
    try:
        fmt = str(getattr(msgdef, "format", "msg")).lower()
        types = get_types_from_idl(text) if "idl" in fmt else get_types_from_msg(text, conn.msgtype)
        store.register(types)
    except Exception:  # noqa: BLE001 - any parse failure means "unknown type", reported by the caller
        LOG.debug("cannot register %s from the bag's definition", conn.msgtype, exc_info=True)
        return False
    return conn.msgtype in store.types


def _check_type(path: Path, topic: str, msgtype: str) -> None:
    want = EXPECTED_TYPES.get(topic)
    if want is not None and msgtype != want:
        raise BagError(f"{path}: topic {topic} has type {msgtype}, expected {want}")


def read_recording(path: str | Path, topics: Iterable[str] | None = None, required: Iterable[str] = (),
                   topic_map: TopicMap | None = None) -> Recording:
    """Read (our names of) ``topics`` from a bag, every topic when ``None``.

    A bag whose recorder was killed (no ``metadata.yaml``) is read up to its last complete chunk
    (:mod:`robo_common.bag_salvage`); a warning and ``Recording.salvage`` say what is missing.

    Raises:
        BagError: the bag is missing, empty, truncated or corrupt; a ``required`` topic is absent
            or has no messages; a message type is unknown or not the one the topic must have.
    """
    path = Path(path)
    tmap = topic_map or TopicMap()
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    wanted = set(topics) if topics is not None else None
    required = list(required)
    report = None
    if (path / "metadata.yaml").is_file():
        messages, types, start, end, count = _read_closed(path, wanted, required, tmap)
    else:
        messages, types, start, end, report = _read_unclosed(path, wanted, required, tmap)
        count = report.message_count
    if count == 0 or (wanted is None and not any(messages.values())):
        raise BagError(f"{path}: bag is empty (no messages)" + (f"; {report.describe()}" if report else ""))
    empty = [tmap.theirs(t) for t in required if not messages.get(t)]
    if empty:
        raise BagError(f"{path}: no messages on topic(s) {empty}" + (f"; {report.describe()}" if report else ""))
    for topic in messages:
        messages[topic].sort(key=lambda sm: sm[0])
    _map_frames(path, messages, tmap)
    return Recording(path, messages, types, int(start), int(end), _custom_data(path), report)


Messages = dict[str, list[tuple[int, Any]]]


def _check_connections(path: Path, conns: list[tuple[str, str, Any]], wanted: set[str] | None,
                       required: list[str], tmap: TopicMap) -> list[tuple[str, str, Any]]:
    """Check ``(topic, msgtype, conn)`` triples: required topics present, types known and right; the selected ones."""
    store = bags.typestore()
    have = {tmap.ours(topic) for topic, _, _ in conns}
    missing = [t for t in required if t not in have]
    if missing:
        theirs = [tmap.theirs(t) for t in missing]
        raise BagError(f"{path}: missing topic(s) {theirs} (bag has {sorted(topic for topic, _, _ in conns)}"
                       f"; map other names with a topic map)")
    selected = [c for c in conns if wanted is None or tmap.ours(c[0]) in wanted]
    for topic, msgtype, conn in selected:
        _check_type(path, tmap.ours(topic), msgtype)
        if msgtype not in store.types and not _register_unknown(conn, store):
            raise BagError(f"{path}: unknown message type {msgtype!r} on topic {topic}")
    return selected


def _read_closed(path: Path, wanted: set[str] | None, required: list[str],
                 tmap: TopicMap) -> tuple[Messages, dict[str, str], int, int, int]:
    """Read a bag its recorder closed, with rosbags' reader."""
    store = bags.typestore()
    try:
        with Reader(path) as reader:
            triples = [(c.topic, c.msgtype, c) for c in reader.connections]
            selected = [c for _, _, c in _check_connections(path, triples, wanted, required, tmap)]
            messages: Messages = {}
            types = {tmap.ours(c.topic): c.msgtype for c in selected}
            for conn, log_ns, raw in reader.messages(connections=selected):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                messages.setdefault(tmap.ours(conn.topic), []).append((stamp_ns(msg, log_ns), msg))
            return messages, types, reader.start_time, reader.end_time, reader.message_count
    except BagError:
        raise
    except Exception as exc:  # rosbags raises several types for truncated or corrupt storage
        raise BagError(f"{path}: cannot read bag (truncated or corrupt?): {type(exc).__name__}: {exc}") from exc


def _read_unclosed(path: Path, wanted: set[str] | None, required: list[str],
                   tmap: TopicMap) -> tuple[Messages, dict[str, str], int, int, SalvageReport]:
    """Read a bag without ``metadata.yaml`` (its recorder was killed) up to its last complete chunk."""
    try:
        found = salvage(path)
    except FileNotFoundError as exc:
        raise BagError(f"{path}: not a rosbag2 directory (no metadata.yaml): {exc}") from exc
    report = found.report
    LOG.warning("%s", report.describe())
    store = bags.typestore()
    triples = [(t.topic, t.msgtype, SimpleNamespace(msgtype=t.msgtype, msgdef=SimpleNamespace(data=t.msgdef)))
               for t in found.topics.values()]
    selected = {topic for topic, _, _ in _check_connections(path, triples, wanted, required, tmap)}
    messages: Messages = {}
    types = {tmap.ours(t.topic): t.msgtype for t in found.topics.values() if t.topic in selected}
    try:
        for tid, log_ns, raw in found.messages:
            topic = found.topics[tid]
            if topic.topic in selected:
                msg = store.deserialize_cdr(raw, topic.msgtype)
                messages.setdefault(tmap.ours(topic.topic), []).append((stamp_ns(msg, log_ns), msg))
    except Exception as exc:  # noqa: BLE001 - a message that does not deserialize: corrupt data
        raise BagError(f"{path}: a message does not deserialize ({type(exc).__name__}: {exc}); "
                       f"{report.describe()}") from exc
    return messages, types, report.start_ns, report.end_ns + (1 if report.message_count else 0), report


def _map_frames(path: Path, messages: dict[str, list[tuple[int, Any]]], tmap: TopicMap) -> None:
    """Apply the frame map to pose headers and check that poses are in the base frame."""
    for topic in (C.TOPIC_EE_POSE, C.TOPIC_EE_TARGET, C.TOPIC_CAMERA_POSE):
        for _, msg in messages.get(topic, []):
            frame = tmap.frame(msg.header.frame_id)
            if frame not in ("", C.BASE_FRAME):
                raise BagError(f"{path}: {tmap.theirs(topic)} is in frame {msg.header.frame_id!r}, expected "
                               f"{C.BASE_FRAME!r} (map it with 'frames:' in the topic map)")
            msg.header.frame_id = frame


def _custom_data(path: Path) -> dict[str, str]:
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text()).get("rosbag2_bagfile_information", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}
