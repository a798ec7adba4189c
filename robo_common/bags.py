"""rosbag2 I/O without ROS: a typestore that knows robo_stack's messages, and builders.

Bags are written and read with the pure-Python ``rosbags`` library (mcap or sqlite3),
so data collection, training and offline evaluation run on machines without a ROS
install, and bags recorded on a robot with ``ros2 bag record`` read the same way.
The robo_stack message definitions are read from ``msg/*.msg`` (the repository, or
``share/robo_stack/msg`` of an installed package) and registered in a Kilted typestore.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from robo_common.constants import PACKAGE_NAME
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

MSG_NAMES = ("Keypoint", "Subtask", "Plan", "FailureReport", "ExecutionStatus")
EPISODE_METADATA_KEY = "robo_stack.episode"
"""Key of an episode bag's ``custom_data`` entry: the episode's metadata as JSON."""


def msg_dir() -> Path:
    """Return the directory holding robo_stack's ``.msg`` files.

    Looks at ``$ROBO_STACK_MSG_DIR``, the source tree next to this package, then the
    ``share/robo_stack/msg`` directory of the ament prefixes and of this interpreter.

    Raises:
        FileNotFoundError: if none of them has ``Plan.msg``.
    """
    candidates = []
    if os.environ.get("ROBO_STACK_MSG_DIR"):
        candidates.append(Path(os.environ["ROBO_STACK_MSG_DIR"]))
    candidates.append(Path(__file__).resolve().parent.parent / "msg")
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE_NAME / "msg")
    for cand in candidates:
        if (cand / "Plan.msg").is_file():
            return cand
    raise FileNotFoundError(f"robo_stack message definitions not found; looked in {[str(c) for c in candidates]}")


@functools.cache
def typestore() -> Typestore:
    """Return a ROS 2 Kilted typestore with the robo_stack messages registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    directory = msg_dir()
    types: dict[str, Any] = {}
    for name in MSG_NAMES:
        text = (directory / f"{name}.msg").read_text()
        types.update(get_types_from_msg(text, f"{PACKAGE_NAME}/msg/{name}"))
    store.register(types)
    return store


def msg_class(msgtype: str) -> type:
    """Return the rosbags dataclass of a message type, e.g. ``robo_stack/msg/Plan``."""
    return typestore().types[msgtype]


# ---------------------------------------------------------------- builders
def time_msg(ns: int) -> Any:
    """Return a ``builtin_interfaces/Time`` for integer nanoseconds."""
    return msg_class("builtin_interfaces/msg/Time")(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header(ns: int, frame_id: str) -> Any:
    """Return a ``std_msgs/Header``."""
    return msg_class("std_msgs/msg/Header")(stamp=time_msg(ns), frame_id=frame_id)


def pose(pos: np.ndarray, quat_xyzw: np.ndarray) -> Any:
    """Return a ``geometry_msgs/Pose`` from a position and an xyzw quaternion."""
    point = msg_class("geometry_msgs/msg/Point")(x=float(pos[0]), y=float(pos[1]), z=float(pos[2]))
    q = msg_class("geometry_msgs/msg/Quaternion")(
        x=float(quat_xyzw[0]), y=float(quat_xyzw[1]), z=float(quat_xyzw[2]), w=float(quat_xyzw[3])
    )
    return msg_class("geometry_msgs/msg/Pose")(position=point, orientation=q)


def pose_stamped(ns: int, frame_id: str, pos: np.ndarray, quat_xyzw: np.ndarray) -> Any:
    """Return a ``geometry_msgs/PoseStamped``."""
    return msg_class("geometry_msgs/msg/PoseStamped")(header=header(ns, frame_id), pose=pose(pos, quat_xyzw))


def image(ns: int, frame_id: str, array: np.ndarray, encoding: str) -> Any:
    """Return a ``sensor_msgs/Image`` for an ``rgb8`` (HxWx3 uint8) or ``32FC1`` (HxW float32) array."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    return msg_class("sensor_msgs/msg/Image")(
        header=header(ns, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * channels * array.itemsize, data=array.view(np.uint8).reshape(-1),
    )


def image_to_array(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` (rgb8, bgr8, mono8, 32FC1, 16UC1) into an array.

    Raises:
        ValueError: for an unsupported encoding or a data size that does not match.
    """
    dtypes = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "32FC1": (np.float32, 1),
              "16UC1": (np.uint16, 1)}
    if msg.encoding not in dtypes:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(dtypes)}")
    dtype, channels = dtypes[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    if msg.step != msg.width * channels * itemsize or len(msg.data) != msg.step * msg.height:
        raise ValueError(
            f"{msg.encoding} image {msg.width}x{msg.height}: step {msg.step} / {len(msg.data)} bytes do not match"
        )
    arr = np.frombuffer(bytes(msg.data), dtype=dtype)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    arr = arr.reshape(shape)
    return arr[..., ::-1].copy() if msg.encoding == "bgr8" else arr.copy()


def plan_to_bag_msg(plan: PlanData) -> Any:
    """Return a rosbags ``robo_stack/msg/Plan`` for plan data."""
    keypoint, subtask = msg_class("robo_stack/msg/Keypoint"), msg_class("robo_stack/msg/Subtask")
    point = msg_class("geometry_msgs/msg/Point")
    subtasks = [
        subtask(
            index=s.index, code=s.code, skill=s.skill,
            keypoints=[
                keypoint(name=k.name, point=point(x=k.point[0], y=k.point[1], z=k.point[2]), u=k.u, v=k.v,
                         confidence=k.confidence)
                for k in s.keypoints
            ],
        )
        for s in plan.subtasks
    ]
    return msg_class("robo_stack/msg/Plan")(
        header=header(plan.stamp_ns, plan.frame_id), plan_id=plan.plan_id, revision=plan.revision,
        instruction=plan.instruction, reasoning=plan.reasoning, subtasks=subtasks,
    )


def plan_from_bag_msg(msg: Any) -> PlanData:
    """Return plan data for a rosbags ``robo_stack/msg/Plan``; raises ``ValueError`` on bad values."""
    return PlanData(
        plan_id=msg.plan_id, revision=int(msg.revision), instruction=msg.instruction, reasoning=msg.reasoning,
        subtasks=[
            SubtaskData(
                index=int(s.index), code=s.code, skill=s.skill,
                keypoints=[
                    KeypointData(k.name, (k.point.x, k.point.y, k.point.z), float(k.u), float(k.v),
                                 float(k.confidence))
                    for k in s.keypoints
                ],
            )
            for s in msg.subtasks
        ],
        frame_id=msg.header.frame_id,
        stamp_ns=int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec),
    )


def camera_info(ns: int, frame_id: str, width: int, height: int, k: np.ndarray) -> Any:
    """Return a ``sensor_msgs/CameraInfo`` for an undistorted pinhole camera with intrinsics ``k`` (3x3)."""
    k = np.asarray(k, float).reshape(3, 3)
    p_mat = np.zeros((3, 4))
    p_mat[:, :3] = k
    roi = msg_class("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return msg_class("sensor_msgs/msg/CameraInfo")(
        header=header(ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=k.reshape(-1), r=np.eye(3).reshape(-1), p=p_mat.reshape(-1), binning_x=0, binning_y=0,
        roi=roi,
    )


def joint_state(ns: int, names: list[str], position: np.ndarray, velocity: np.ndarray, effort: np.ndarray) -> Any:
    """Return a ``sensor_msgs/JointState``."""
    return msg_class("sensor_msgs/msg/JointState")(
        header=header(ns, ""), name=list(names), position=np.asarray(position, float),
        velocity=np.asarray(velocity, float), effort=np.asarray(effort, float),
    )


def float64(value: float) -> Any:
    """Return a ``std_msgs/Float64``."""
    return msg_class("std_msgs/msg/Float64")(data=float(value))


def string(value: str) -> Any:
    """Return a ``std_msgs/String``."""
    return msg_class("std_msgs/msg/String")(data=value)


FINGERS_OPEN_M = 0.08
"""Sum of the two finger joint positions of a fully open Panda gripper (m)."""


def finger_width01(names: list[str], positions: list[float], clip: bool = True) -> float | None:
    """Gripper opening in [0, 1] (0 closed, 1 open) from a JointState's finger joints; None without fingers.

    ``clip=False`` gives the raw ratio (NaN, or far outside [0, 1] for a bogus joint state), to check it.
    """
    fingers = [p for n, p in zip(names, positions, strict=False) if "finger" in n]
    if not fingers:
        return None
    ratio = float(sum(fingers) / FINGERS_OPEN_M)
    return float(np.clip(ratio, 0.0, 1.0)) if clip else ratio


def pose_arrays(msgs: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamps (ns), positions (N, 3) and xyzw quaternions (N, 4) of ``(stamp, PoseStamped)`` pairs."""
    stamps = np.array([s for s, _ in msgs], np.int64)
    pos = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z] for _, m in msgs], float)
    quat = np.array([[m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w]
                     for _, m in msgs], float)
    return stamps, pos.reshape(-1, 3), quat.reshape(-1, 4)


def gripper_widths(msgs: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and gripper opening (see :func:`finger_width01`; 1.0 where a message has no fingers)."""
    stamps = np.array([s for s, _ in msgs], np.int64)
    widths = [finger_width01(m.name, m.position) for _, m in msgs]
    return stamps, np.array([1.0 if w is None else w for w in widths], float)


def read_episode_metadata(bag: Path) -> dict[str, Any]:
    """Return the episode metadata of an episode bag (as :class:`robo_sim.recording.EpisodeRecorder` writes it).

    Reads ``custom_data`` from the bag's ``metadata.yaml`` (rosbags' reader does not expose it).

    Raises:
        FileNotFoundError: if ``bag`` has no ``metadata.yaml``.
        ValueError: if the bag carries no robo_stack episode metadata.
    """
    import json

    import yaml

    path = Path(bag) / "metadata.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{bag} is not a rosbag2 directory (no metadata.yaml)")
    info = yaml.safe_load(path.read_text()).get("rosbag2_bagfile_information", {})
    custom = info.get("custom_data") or {}
    if EPISODE_METADATA_KEY not in custom:
        raise ValueError(f"{bag} has no {EPISODE_METADATA_KEY!r} custom data: not a robo_stack episode bag")
    return json.loads(custom[EPISODE_METADATA_KEY])
