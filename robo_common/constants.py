"""Topic names, frame names and QoS profile choices used by every robo_stack node.

One place for the names in the design's topic table, so the brain, the cerebellum,
the simulator bridge, the recorder and the tests never spell a topic twice. Nodes
declare these as parameter defaults; users remap or override them.

The QoS profiles are described here as plain data (:class:`QosChoice`) so this module
stays importable without ROS; :mod:`robo_common.ros.qos` turns them into
``rclpy.qos.QoSProfile`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PACKAGE_NAME = "robo_stack"

# ---------------------------------------------------------------- topics
TOPIC_INSTRUCTION = "/robo/instruction"
TOPIC_PLAN = "/robo/plan"
TOPIC_EXECUTION_STATUS = "/robo/execution_status"
TOPIC_FAILURE = "/robo/failure"
TOPIC_EE_TARGET = "/robo/ee_target"
TOPIC_GRIPPER_COMMAND = "/robo/gripper_command"
TOPIC_EE_POSE = "/robo/ee_pose"
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_MARKERS = "/robo/markers"
TOPIC_CANCEL = "/robo/cancel"
"""Operator stop (std_msgs/String naming who cancels; empty: "operator"): the cerebellum holds at once,
the brain drops the plan."""
DEMO_SEED, DEMO_SPLIT, DEMO_FAMILY = 100_001, "seen", "pick_place"
"""The demo's scene (``make demo``, ``sim.launch.py`` and ``sim_node`` with no arguments): a pick-and-place
whose instruction is "put the blue block into the pink container"."""
TOPIC_BRAIN_STATUS = "/robo/brain_status"
"""Brain state as JSON (std_msgs/String, latched): loading, ready, planning, failed, ..."""
TOPIC_CEREBELLUM_DIAGNOSTICS = "/robo/cerebellum_diagnostics"
"""The cerebellum's loop timing as JSON (std_msgs/String), once a second: control period p50/p99/max and a
histogram of the periods of that second, policy steps (see ``robo_cerebellum.loop_stats``)."""
TOPIC_COLOR_IMAGE = "/camera/color/image_raw"
TOPIC_DEPTH_IMAGE = "/camera/depth/image_raw"
TOPIC_CAMERA_INFO = "/camera/color/camera_info"
TOPIC_CLOCK = "/clock"
TOPIC_CAMERA_POSE = "/camera/color/pose"
"""Camera extrinsics: pose of the optical frame in the base frame (geometry_msgs/PoseStamped,
latched). Stands in for /tf_static, whose message package has no wheel on the dev machines."""

# Simulator-only topics (ground truth for evaluation), namespaced under /sim.
TOPIC_SIM_TASK = "/sim/task"
TOPIC_SIM_EXPERT_PLAN = "/sim/expert_plan"
TOPIC_SIM_EPISODE = "/sim/episode"
SERVICE_SIM_RESET = "/sim/reset"
ACTION_EXECUTE_INSTRUCTION = "/robo/execute_instruction"
"""robo_stack/action/ExecuteInstruction, served by the brain beside /robo/instruction."""
CANCEL_DEFAULT_BY = "operator"
"""Who a /robo/cancel with empty data names."""

# ---------------------------------------------------------------- frames
def relative(name: str) -> str:
    """The node-relative form of a topic or service name (``/robo/plan`` -> ``robo/plan``).

    Nodes create their interfaces with relative names, so a node started in the default
    namespace uses exactly the absolute names above, and a node started in a namespace
    (``ros2 launch robo_stack bringup.launch.py namespace:=arm1``, ``--ros-args -r __ns:=/arm1``)
    moves all of them under it (``/arm1/robo/plan``). Bags and the design table keep the
    absolute names.
    """
    return name.lstrip("/")


BASE_FRAME = "panda_link0"
"""Robot base frame: every 3D keypoint, target and pose is expressed in it."""
EE_FRAME = "panda_hand_tcp"
"""Tool centre point between the fingertips."""
CAMERA_FRAME = "camera_color_optical_frame"
"""Optical frame of the colour (and registered depth) camera: z forward, x right, y down."""
WORLD_FRAME = "world"

# ---------------------------------------------------------------- encodings
COLOR_ENCODING = "rgb8"
DEPTH_ENCODING = "32FC1"
"""Depth images carry metres as float32 (REP 118)."""


# ---------------------------------------------------------------- QoS
class Reliability(StrEnum):
    """Delivery guarantee of a QoS profile."""

    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(StrEnum):
    """Whether late joiners receive the last samples."""

    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosChoice:
    """A named QoS profile, independent of rclpy.

    Attributes:
        name: Short identifier used in logs and parameters.
        depth: History depth (KEEP_LAST).
        reliability: Delivery guarantee.
        durability: Late-joiner behaviour.
    """

    name: str
    depth: int
    reliability: Reliability
    durability: Durability


QOS_SENSOR = QosChoice("sensor", 5, Reliability.BEST_EFFORT, Durability.VOLATILE)
"""Camera images and high-rate state: newest sample wins, never block the sender."""
QOS_LATCHED = QosChoice("latched", 1, Reliability.RELIABLE, Durability.TRANSIENT_LOCAL)
"""Plans and episode metadata: a late subscriber still gets the current one."""
QOS_COMMAND = QosChoice("command", 10, Reliability.RELIABLE, Durability.VOLATILE)
"""Commands, status and events: every sample matters, no replay to late joiners."""
QOS_STATUS = QosChoice("status", 1, Reliability.RELIABLE, Durability.TRANSIENT_LOCAL)
"""The brain's current state: a late subscriber (``ros2 topic echo --once``) gets the current one, not an old one;
every state change is also on the log."""
QOS_DIAGNOSTICS = QosChoice("diagnostics", 10, Reliability.RELIABLE, Durability.TRANSIENT_LOCAL)
"""Once-a-second diagnostics: every one to a live subscriber, the last few to a late one."""
QOS_EVENT = QosChoice("event", 50, Reliability.RELIABLE, Durability.VOLATILE)
"""Failure reports and instructions: reliable with room for bursts."""

TOPIC_QOS: dict[str, QosChoice] = {
    TOPIC_INSTRUCTION: QOS_EVENT,
    TOPIC_CANCEL: QOS_COMMAND,
    TOPIC_PLAN: QOS_LATCHED,
    TOPIC_EXECUTION_STATUS: QOS_COMMAND,
    TOPIC_FAILURE: QOS_EVENT,
    TOPIC_EE_TARGET: QOS_COMMAND,
    TOPIC_GRIPPER_COMMAND: QOS_COMMAND,
    TOPIC_EE_POSE: QOS_SENSOR,
    TOPIC_JOINT_STATES: QOS_SENSOR,
    TOPIC_MARKERS: QOS_LATCHED,
    TOPIC_BRAIN_STATUS: QOS_STATUS,
    TOPIC_CEREBELLUM_DIAGNOSTICS: QOS_DIAGNOSTICS,
    TOPIC_COLOR_IMAGE: QOS_SENSOR,
    TOPIC_DEPTH_IMAGE: QOS_SENSOR,
    TOPIC_CAMERA_INFO: QOS_SENSOR,
    TOPIC_CAMERA_POSE: QOS_LATCHED,
    TOPIC_SIM_TASK: QOS_LATCHED,
    TOPIC_SIM_EXPERT_PLAN: QOS_LATCHED,
    TOPIC_SIM_EPISODE: QOS_LATCHED,
}
"""Default QoS for every topic in the design's topic table (plus the simulator's)."""
