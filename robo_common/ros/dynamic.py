"""Message classes and QoS for topics whose type is known only at run time (from a bag or the graph)."""

from __future__ import annotations

import importlib

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from robo_common.constants import TOPIC_QOS
from robo_common.ros.qos import to_qos_profile


def message_class(msgtype: str) -> type:
    """The generated rclpy class of ``pkg/msg/Name`` (or ``pkg/Name``).

    Raises:
        ValueError: the type is malformed or its Python package is not installed.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"malformed message type {msgtype!r}; expected 'package/msg/Name'")
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"unknown message type {msgtype!r}: its Python package {pkg}.{kind} is not installed "
                         f"or has no {name}") from exc


def publisher_qos(topic: str) -> QoSProfile:
    """The robo_stack QoS of a known topic, else reliable, volatile, depth 10."""
    if topic in TOPIC_QOS:
        return to_qos_profile(TOPIC_QOS[topic])
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def subscriber_qos(publishers: list) -> QoSProfile:
    """A subscription QoS that matches every publisher offered (as ``ros2 bag record`` adapts it).

    Best effort if any publisher is best effort; transient local only if all of them are.
    """
    best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
    latched = bool(publishers) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                       for p in publishers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
