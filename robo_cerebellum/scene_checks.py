"""Checks of a finished subtask's result in the depth image (ROS-free).

The failure monitor sees the arm (pose, fingers, progress) but not the objects, so a push that
missed its object, or whose object slid off sideways, ends "successfully" for it. After a push the
executor therefore looks at the first depth frame taken after the push finished:

* ``push_outcome``: something object-high must stand just past the push's end keypoint, where the
  pushed object ends up when it went along (from ``along`` metres behind to ``along`` ahead of
  ``push_end``, within ``lateral`` either side of the push line). Each sample is a base-frame point
  at ``probe_height`` above the table, projected into the image; the depth there is deprojected
  and counts as the object when it lies ``min_height``..``max_height`` above the table and within
  ``tolerance`` of the region (so a ray that passes the region and hits the table or another
  object farther away does not count). Samples seeing something higher than ``max_height`` (the
  arm) are occluded; when most are, the check is inconclusive and passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo_brain.keypoints import CameraModel
from robo_cerebellum.monitor import Failure
from robo_common.plan_types import SubtaskData


@dataclass(frozen=True)
class SceneCheckConfig:
    """Thresholds of the result checks (metres, base frame).

    Attributes:
        table_z: Height of the table top.
        min_height: Lowest surface above the table that counts as an object.
        max_height: Highest surface that counts as an object (above: the arm, occluding).
        along: Region along the push direction, relative to ``push_end`` (behind, ahead).
        lateral: Half width of the region across the push line.
        tolerance: How far outside the region a seen surface point may lie.
        probe_height: Height of the sample points that are projected into the image.
        step: Spacing of the sample grid.
        min_hits: Samples on an object needed to say the object is there.
        max_occluded: Fraction of occluded samples above which the check is inconclusive.
    """

    table_z: float = 0.0
    min_height: float = 0.012
    max_height: float = 0.09
    along: tuple[float, float] = (-0.02, 0.05)
    lateral: float = 0.03
    tolerance: float = 0.01
    probe_height: float = 0.02
    step: float = 0.01
    min_hits: int = 2
    max_occluded: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_height < self.max_height:
            raise ValueError(f"SceneCheckConfig needs 0 < min_height < max_height, got {self.min_height}, "
                             f"{self.max_height}")
        if not self.along[0] < self.along[1] or self.lateral <= 0 or self.step <= 0 or self.tolerance < 0:
            raise ValueError(f"SceneCheckConfig region is empty or negative: {self}")
        if self.min_hits < 1 or not 0 < self.max_occluded <= 1:
            raise ValueError(f"SceneCheckConfig.min_hits must be >= 1 and max_occluded in (0, 1]: {self}")


@dataclass(frozen=True)
class RegionView:
    """What the depth image shows in a region: samples on an object, occluded, bare, and unusable."""

    hits: int
    occluded: int
    bare: int
    invalid: int

    @property
    def total(self) -> int:
        """Number of samples."""
        return self.hits + self.occluded + self.bare + self.invalid


def view_region(depth: np.ndarray, camera: CameraModel, origin: np.ndarray, direction: np.ndarray,
                cfg: SceneCheckConfig) -> RegionView:
    """Classify the samples of the region around ``origin`` spanned by ``direction`` (unit, xy) and its normal."""
    d = np.array([direction[0], direction[1], 0.0])
    n = np.array([-direction[1], direction[0], 0.0])
    hits = occluded = bare = invalid = 0
    alongs = np.arange(cfg.along[0], cfg.along[1] + 1e-9, cfg.step)
    laterals = np.arange(-cfg.lateral, cfg.lateral + 1e-9, cfg.step)
    rows, cols = depth.shape[:2]
    for a in alongs:
        for lat in laterals:
            probe = origin + a * d + lat * n
            probe[2] = cfg.table_z + cfg.probe_height
            u, v = camera.project(probe)
            col, row = int(round(u)), int(round(v))
            z = float(depth[row, col]) if 0 <= row < rows and 0 <= col < cols else math.nan
            if not (math.isfinite(z) and z > 0):
                invalid += 1
                continue
            seen = camera.deproject(col, row, z)
            height = seen[2] - cfg.table_z
            if height > cfg.max_height:
                occluded += 1
                continue
            rel = seen - origin
            inside = (cfg.along[0] - cfg.tolerance <= float(rel @ d) <= cfg.along[1] + cfg.tolerance
                      and abs(float(rel @ n)) <= cfg.lateral + cfg.tolerance)
            if height >= cfg.min_height and inside:
                hits += 1
            else:
                bare += 1
    return RegionView(hits, occluded, bare, invalid)


def push_outcome(subtask: SubtaskData, depth: np.ndarray, camera: CameraModel,
                 cfg: SceneCheckConfig = SceneCheckConfig()) -> Failure | None:
    """A ``no_progress`` failure when nothing stands where the push should have left its object, else None.

    None also when the check cannot tell: the subtask has no ``push_start`` / ``push_end`` keypoints,
    the push has no horizontal direction, or the region is mostly occluded or outside the image.
    """
    start_kp, end_kp = subtask.keypoint("push_start"), subtask.keypoint("push_end")
    if start_kp is None or end_kp is None:
        return None
    start, end = np.asarray(start_kp.point, float), np.asarray(end_kp.point, float)
    length = float(np.linalg.norm((end - start)[:2]))
    if length < 1e-3:
        return None
    view = view_region(np.asarray(depth), camera, end, (end - start)[:2] / length, cfg)
    usable = view.total - view.invalid
    if usable < cfg.min_hits or view.occluded > cfg.max_occluded * usable or view.hits >= cfg.min_hits:
        return None
    return Failure("no_progress", f"{subtask.code}: nothing stands where the push should have left the object "
                                  f"({view.hits} of {usable} depth samples past the push end are on an object, "
                                  f"{view.bare} see bare table): it was missed or slid aside")
