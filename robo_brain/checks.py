"""Expert checks run before a correction; their findings go into the model's prompt.

* **on object**: is a ``grasp`` keypoint on something standing above the table (depth), or on
  a provided object mask? A depth jump inside the window flags an object edge.
* **named colour**: with the colour image, do the object pixels at a ``grasp`` keypoint read as
  the colour word of the object the step names (``pick(object="red block")``)? See
  :mod:`robo_common.colours`.
* **reachable**: is every remaining keypoint inside the workspace box and the arm's reach?
* **moved**: does the depth at a keypoint's pixel still give the keypoint's 3D point, or has
  the object moved (or gone)?
* **gripper offset**: how far was the measured gripper from the failed step's keypoint?
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from robo_brain.keypoints import KeypointConfig, KeypointError, window_depth
from robo_common.camera import CameraModel
from robo_common.colours import contradicts, named_colour, read_colour
from robo_common.plan_language import object_argument
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

logger = logging.getLogger(__name__)

OBJECT_KEYPOINTS = ("grasp",)
"""Keypoints that must lie on an object."""
TRACKED_KEYPOINTS = ("grasp", "place")
"""Keypoints whose surface should not have moved since planning."""


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the expert checks (metres).

    Attributes:
        keypoints: Depth window, depth range, workspace box and table height.
        arm_reach: Largest distance from the base origin the arm reaches (Panda: 0.855 m).
        min_object_height: Height above the table below which a point is bare table.
        edge_jump: Depth range inside the window that marks an object edge.
        moved_distance: 3D change of a keypoint that counts as "moved".
    """

    keypoints: KeypointConfig = field(default_factory=KeypointConfig)
    arm_reach: float = 0.855
    min_object_height: float = 0.01
    edge_jump: float = 0.03
    moved_distance: float = 0.02

    def __post_init__(self) -> None:
        for name in ("arm_reach", "min_object_height", "edge_jump", "moved_distance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CheckConfig.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class Finding:
    """One check result: ``ok`` False flags a likely cause of the failure."""

    check: str
    ok: bool
    text: str

    def line(self) -> str:
        """``[problem] text`` / ``[ok] text`` for the prompt."""
        return f"[{'ok' if self.ok else 'problem'}] {self.text}"


def _surface_point(kp: KeypointData, depth: np.ndarray, camera: CameraModel,
                   cfg: CheckConfig) -> tuple[np.ndarray, float] | None:
    """Base-frame point seen now at the keypoint's pixel and the depth range of its window, or None."""
    try:
        z = window_depth(depth, kp.u, kp.v, cfg.keypoints)
    except KeypointError:
        return None
    r = cfg.keypoints.window
    col, row = int(round(kp.u)), int(round(kp.v))
    patch = depth[max(row - r, 0):row + r + 1, max(col - r, 0):col + r + 1]
    finite = patch[np.isfinite(patch)]
    jump = float(finite.max() - finite.min()) if finite.size else 0.0
    return camera.deproject(kp.u, kp.v, z), jump


def check_on_object(kp: KeypointData, depth: np.ndarray, camera: CameraModel, cfg: CheckConfig,
                    mask: np.ndarray | None = None) -> Finding:
    """Is the keypoint on an object (mask, else height above the table from depth)?"""
    where = f"{kp.name} keypoint at pixel ({kp.u:.0f}, {kp.v:.0f})"
    if mask is not None:
        col, row = int(round(kp.u)), int(round(kp.v))
        inside = 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1] and bool(mask[row, col])
        return Finding("on_object", inside, f"{where} is {'on' if inside else 'not on'} the object mask")
    seen = _surface_point(kp, depth, camera, cfg)
    if seen is None:
        return Finding("on_object", False, f"{where} has no valid depth now")
    point, jump = seen
    height = float(point[2] - cfg.keypoints.table_z)
    edge = f"; depth jumps {jump * 100:.1f} cm in the window (object edge)" if jump > cfg.edge_jump else ""
    if height < cfg.min_object_height:
        return Finding("on_object", False, f"{where} is on the bare table (height {height * 100:.1f} cm){edge}")
    return Finding("on_object", not edge, f"{where} is on something {height * 100:.1f} cm high{edge}")


def check_named_colour(sub: SubtaskData, kp: KeypointData, rgb: np.ndarray, depth: np.ndarray,
                       camera: CameraModel, cfg: CheckConfig) -> Finding | None:
    """Do the object pixels around the keypoint read as the colour its step's ``object`` names?

    None when the step names no basic colour or no object pixel is in the window (the on-object
    check says so).
    """
    term = named_colour(object_argument(sub.code))
    if term is None or rgb.shape[:2] != depth.shape[:2]:
        return None
    r = cfg.keypoints.window + 1
    col, row = int(round(kp.u)), int(round(kp.v))
    rows, cols = np.mgrid[max(row - r, 0):min(row + r + 1, depth.shape[0]),
                          max(col - r, 0):min(col + r + 1, depth.shape[1])]
    rows, cols = rows.ravel(), cols.ravel()
    z = depth[rows, cols].astype(float)
    valid = np.isfinite(z) & (z > 0)
    rows, cols, z = rows[valid], cols[valid], z[valid]
    high = camera.deproject_many(cols, rows, z)[:, 2] - cfg.keypoints.table_z >= cfg.min_object_height
    pixels = rgb[rows[high], cols[high], :3]
    if len(pixels) == 0:
        return None
    reading = read_colour(pixels)
    where = f"{kp.name} keypoint of {sub.code} at pixel ({kp.u:.0f}, {kp.v:.0f})"
    if contradicts(reading, term):
        return Finding("named_colour", False, f"{where} is on a {reading.describe()} object, not a {term} one: "
                                              "it is on another object")
    return Finding("named_colour", True, f"{where} is on a {reading.describe()} object")


def check_reachable(kp: KeypointData, cfg: CheckConfig) -> Finding:
    """Is the keypoint's 3D point in the workspace box and within the arm's reach?"""
    point = np.asarray(kp.point)
    dist = float(np.linalg.norm(point))
    text = f"{kp.name} point ({point[0]:.2f}, {point[1]:.2f}, {point[2]:.2f}) m"
    if not cfg.keypoints.workspace.contains(point):
        return Finding("reachable", False, f"{text} is outside the workspace box")
    if dist > cfg.arm_reach:
        return Finding("reachable", False, f"{text} is {dist:.2f} m from the base, beyond the {cfg.arm_reach} m reach")
    return Finding("reachable", True, f"{text} is reachable ({dist:.2f} m from the base)")


def check_moved(kp: KeypointData, depth: np.ndarray, camera: CameraModel, cfg: CheckConfig) -> Finding:
    """Does the depth at the keypoint's pixel still match its 3D point (else the object moved)?"""
    seen = _surface_point(kp, depth, camera, cfg)
    where = f"{kp.name} keypoint at pixel ({kp.u:.0f}, {kp.v:.0f})"
    if seen is None:
        return Finding("moved", False, f"{where} has no valid depth now")
    dist = float(np.linalg.norm(seen[0] - np.asarray(kp.point)))
    if dist > cfg.moved_distance:
        dz = float(seen[0][2] - kp.point[2])
        return Finding("moved", False, f"the surface at the {where} changed by {dist * 100:.1f} cm "
                       f"(height {dz * 100:+.1f} cm) since planning: the object moved or is gone")
    return Finding("moved", True, f"the surface at the {where} is unchanged ({dist * 100:.1f} cm)")


def check_gripper_offset(kp: KeypointData, measured: np.ndarray | None) -> Finding | None:
    """How far the measured gripper position was from the keypoint at failure (None without a pose)."""
    if measured is None or not np.all(np.isfinite(measured)):
        return None
    dist = float(np.linalg.norm(np.asarray(measured)[:2] - np.asarray(kp.point)[:2]))
    ok = dist < 0.02
    return Finding("gripper_offset", ok, f"the gripper was {dist * 100:.1f} cm (horizontally) from the {kp.name} "
                   "point at the failure")


def run_checks(plan: PlanData, failed_index: int, depth: np.ndarray, camera: CameraModel, cfg: CheckConfig,
               measured_position: np.ndarray | None = None, mask: np.ndarray | None = None,
               rgb: np.ndarray | None = None) -> list[Finding]:
    """Run every check on the keypoints of the failed subtask and the ones after it (the colour check
    only with ``rgb``)."""
    findings: list[Finding] = []
    for pos, sub in enumerate(plan.subtasks[failed_index:]):
        for kp in sub.keypoints:
            findings.append(check_reachable(kp, cfg))
            if kp.u < 0 or kp.v < 0:
                continue
            if kp.name in OBJECT_KEYPOINTS:
                findings.append(check_on_object(kp, depth, camera, cfg, mask))
                colour = None if rgb is None else check_named_colour(sub, kp, np.asarray(rgb), depth, camera, cfg)
                if colour is not None:
                    findings.append(colour)
            if kp.name in TRACKED_KEYPOINTS:
                findings.append(check_moved(kp, depth, camera, cfg))
            if pos == 0:
                offset = check_gripper_offset(kp, measured_position)
                if offset is not None:
                    findings.append(offset)
    return findings
