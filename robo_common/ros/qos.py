"""Turn the named QoS choices of :mod:`robo_common.constants` into rclpy profiles."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from robo_common.constants import TOPIC_QOS, Durability, QosChoice, Reliability

_RELIABILITY = {
    Reliability.RELIABLE: ReliabilityPolicy.RELIABLE,
    Reliability.BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT,
}
_DURABILITY = {
    Durability.VOLATILE: DurabilityPolicy.VOLATILE,
    Durability.TRANSIENT_LOCAL: DurabilityPolicy.TRANSIENT_LOCAL,
}


def to_qos_profile(choice: QosChoice) -> QoSProfile:
    """Return the rclpy ``QoSProfile`` for a named QoS choice."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=choice.depth,
        reliability=_RELIABILITY[choice.reliability],
        durability=_DURABILITY[choice.durability],
    )


def qos_for_topic(topic: str) -> QoSProfile:
    """Return the default profile of a topic of the design's table.

    Raises:
        KeyError: if the topic has no default QoS (name it explicitly instead).
    """
    try:
        return to_qos_profile(TOPIC_QOS[topic])
    except KeyError:
        raise KeyError(f"no default QoS for topic {topic!r}; known topics: {sorted(TOPIC_QOS)}") from None
