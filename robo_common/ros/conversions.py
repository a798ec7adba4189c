"""Conversions between the ROS-free plan dataclasses and the ``robo_stack`` messages."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped
from robo_stack.msg import ExecutionStatus, FailureReport, Keypoint, Plan, Subtask
from sensor_msgs.msg import Image

from robo_common.plan_types import KeypointData, PlanData, SubtaskData

_NS = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """Return a ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Return integer nanoseconds as a ``builtin_interfaces/Time``."""
    return Time(sec=int(ns // _NS), nanosec=int(ns % _NS))


def keypoint_to_msg(kp: KeypointData) -> Keypoint:
    """Convert a keypoint to its message."""
    x, y, z = kp.point
    return Keypoint(
        name=kp.name, point=Point(x=x, y=y, z=z), u=float(kp.u), v=float(kp.v), confidence=float(kp.confidence)
    )


def keypoint_from_msg(msg: Keypoint) -> KeypointData:
    """Convert a keypoint message; raises ``ValueError`` on non-finite values."""
    return KeypointData(
        name=msg.name,
        point=(msg.point.x, msg.point.y, msg.point.z),
        u=float(msg.u),
        v=float(msg.v),
        confidence=float(msg.confidence),
    )


def plan_to_msg(plan: PlanData) -> Plan:
    """Convert a plan to a ``robo_stack/Plan`` message (header stamp from ``plan.stamp_ns``)."""
    msg = Plan()
    msg.header.frame_id = plan.frame_id
    msg.header.stamp = ns_to_stamp(plan.stamp_ns)
    msg.plan_id = plan.plan_id
    msg.revision = int(plan.revision)
    msg.instruction = plan.instruction
    msg.reasoning = plan.reasoning
    msg.subtasks = [
        Subtask(index=int(s.index), code=s.code, skill=s.skill, keypoints=[keypoint_to_msg(k) for k in s.keypoints])
        for s in plan.subtasks
    ]
    return msg


def plan_from_msg(msg: Plan) -> PlanData:
    """Convert a ``robo_stack/Plan`` message to plan data.

    Raises:
        ValueError: if a keypoint is not finite or has an out-of-range confidence.
    """
    return PlanData(
        plan_id=msg.plan_id,
        revision=int(msg.revision),
        instruction=msg.instruction,
        reasoning=msg.reasoning,
        subtasks=[
            SubtaskData(
                index=int(s.index), code=s.code, skill=s.skill, keypoints=[keypoint_from_msg(k) for k in s.keypoints]
            )
            for s in msg.subtasks
        ],
        frame_id=msg.header.frame_id,
        stamp_ns=stamp_to_ns(msg.header.stamp),
    )


def pose_stamped(stamp: Time, frame_id: str, pos: np.ndarray, quat_xyzw: np.ndarray) -> PoseStamped:
    """Return a ``geometry_msgs/PoseStamped`` from a position and an ``(x, y, z, w)`` quaternion."""
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat_xyzw)
    return msg


def pose_array(msg: PoseStamped) -> np.ndarray:
    """``[x, y, z, qx, qy, qz, qw]`` of a ``geometry_msgs/PoseStamped`` (not validated)."""
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w], float)


def image_to_numpy(msg: Image) -> np.ndarray:
    """Colour (``rgb8``/``bgr8`` -> RGB uint8) or depth (``32FC1`` m, ``16UC1`` mm -> float32 m) image.

    Raises:
        ValueError: unsupported encoding, big-endian data or a size mismatch.
    """
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    channels = {"rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "32FC1": (1, np.float32), "16UC1": (1, np.uint16)}
    if enc not in channels:
        raise ValueError(f"unsupported image encoding {enc!r}; expected one of {', '.join(channels)}")
    if msg.is_bigendian:
        raise ValueError("big-endian images are not supported")
    n, dtype = channels[enc]
    row = w * n * np.dtype(dtype).itemsize
    if msg.step < row or len(msg.data) < msg.step * h or h == 0 or w == 0:
        raise ValueError(f"{enc} image {w}x{h} with step {msg.step} has {len(msg.data)} bytes")
    buf = np.frombuffer(bytes(msg.data), np.uint8).reshape(h, msg.step)[:, :row]
    arr = buf.copy().view(dtype).reshape(h, w, n) if n > 1 else buf.copy().view(dtype).reshape(h, w)
    if enc == "bgr8":
        return arr[:, :, ::-1].copy()
    if enc == "16UC1":
        depth = arr.astype(np.float32) / 1000.0
        depth[arr == 0] = np.nan
        return depth
    return arr


def status_msg(stamp: Time, frame_id: str, plan: PlanData | None, state: int, index: int, progress: float,
               detail: str) -> ExecutionStatus:
    """A ``robo_stack/ExecutionStatus`` of ``plan`` (empty id and revision 0 without a plan)."""
    msg = ExecutionStatus(state=int(state), subtask_index=int(index), progress=float(progress), detail=detail)
    msg.plan_id, msg.revision = (plan.plan_id, plan.revision) if plan is not None else ("", 0)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def failure_msg(stamp: Time, frame_id: str, plan: PlanData, index: int, kind: str, detail: str, probability: float,
                commanded: tuple[np.ndarray, np.ndarray], measured: tuple[np.ndarray, np.ndarray]) -> FailureReport:
    """A ``robo_stack/FailureReport`` of subtask ``index`` of ``plan`` with the commanded and measured poses."""
    msg = FailureReport(plan_id=plan.plan_id, revision=plan.revision, subtask_index=int(index), kind=kind,
                        detail=detail, failure_probability=float(probability))
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.commanded_pose = pose_stamped(stamp, frame_id, *commanded).pose
    msg.measured_pose = pose_stamped(stamp, frame_id, *measured).pose
    return msg
