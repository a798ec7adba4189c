"""Constants of the simulated world: object sizes, workspace and failure kinds.

Every other module of :mod:`robo_sim` reads its numbers from here, so sizes are spelled once;
object colours and the data splits are :mod:`robo_common.vocabulary` (the brain shares them).
"""

from __future__ import annotations

BLOCK_SIZES: dict[str, float] = {"small": 0.04, "large": 0.05}
"""Edge length (m) of the two block sizes; the Panda opens 8 cm."""

BLOCK_MASS = 0.08
"""Block mass in kg."""

OBJECT_FRICTION = 1.2
"""Lateral friction of blocks, fingers and containers."""

CONTAINER_KINDS: dict[str, dict[str, float]] = {
    "bowl": {"inner": 0.13, "wall_height": 0.035, "wall": 0.01, "base": 0.008},
    "tray": {"inner": 0.14, "wall_height": 0.02, "wall": 0.01, "base": 0.008},
}
"""Containers: inner side or diameter (m), wall height, wall thickness and base plate thickness."""

ROUND_CONTAINERS = frozenset({"bowl"})
"""Container kinds built round (a disc and a ring of wall segments); the others are square boxes.
A bowl and a tray must look different to the camera: the planner has to tell them apart from the
image when an instruction says only "the yellow container"."""

BOWL_WALL_SEGMENTS = 16
"""Wall segments of a round container (a 16-gon reads as round in the 128 px camera image)."""

TABLE_TOP_Z = 0.0
"""The table top is the plane z=0 of the base frame (the robot stands on it)."""

WORKSPACE_X = (0.35, 0.65)
WORKSPACE_Y = (-0.25, 0.25)
"""Range of object centres in the base frame (m)."""

DIRECTIONS: dict[str, tuple[float, float]] = {
    "forward": (1.0, 0.0),
    "backward": (-1.0, 0.0),
    "left": (0.0, 1.0),
    "right": (0.0, -1.0),
}
"""Push directions in the base frame: forward is +x, left is +y."""

FAILURE_KINDS = (
    "grasp_missed",
    "object_dropped",
    "tracking_error",
    "no_progress",
    "timeout",
    "unsafe_command",
    "low_confidence",
)
"""The ``kind`` strings of a FailureReport message."""

PERTURB_MODES = ("grasp_offset", "nudge", "slip", "wrong_keypoint")
"""Perturbation modes of the expert episodes."""
