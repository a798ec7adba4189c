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

Before a pick or a push moves, the executor also checks its keypoints in the latest colour and depth
frames (:func:`keypoint_grounding`): something object-high must stand at the grasp keypoint (ahead of
the push_start keypoint), and when the object's name has a basic colour word (``red block``) its
pixels must not read as another colour (:mod:`robo_common.colours`). The monitor otherwise sees a
pick of the wrong block as a success (the fingers close firmly on it), and the push check sees a
push of the wrong block end where an object stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo_cerebellum.monitor import Failure
from robo_common.camera import CameraModel
from robo_common.colours import contradicts, named_colour, read_colour
from robo_common.plan_language import object_argument
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


@dataclass(frozen=True)
class GroundingConfig:
    """Thresholds of the keypoint check of a pick or push (metres, base frame; degrees).

    Attributes:
        table_z: Height of the table top.
        radius: Radius of the disc of sample points around the grasp keypoint.
        step: Spacing of the sample grid.
        tolerance: How far (horizontally) a seen surface point may lie from its sample to count.
        min_height: Lowest surface above the table that counts as an object.
        occluder_height: A surface this much above the keypoint hides it (the arm; a grasp keypoint is at
            mid-height of its object, whose top is lower than this).
        min_pixels: Samples on the object needed to read its colour.
        min_chroma: Below this L*a*b* chroma a colour is achromatic (white, grey, black).
        colour_margin_deg: How much nearer in hue another colour term must be to contradict the name.
        push_ahead: Strip ahead of a push's ``push_start`` keypoint where its object stands (from, to).
        push_lateral: Half width of that strip.
        give_up_s: Frames are tried for this long after the pick starts (an occluded keypoint is
            looked at again in the next frame); then the pick goes on unchecked.
    """

    table_z: float = 0.0
    radius: float = 0.012
    step: float = 0.004
    tolerance: float = 0.02
    min_height: float = 0.012
    occluder_height: float = 0.05
    min_pixels: int = 3
    min_chroma: float = 15.0
    colour_margin_deg: float = 5.0
    push_ahead: tuple[float, float] = (0.01, 0.06)
    push_lateral: float = 0.01
    give_up_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("radius", "step", "tolerance", "min_height", "occluder_height", "give_up_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GroundingConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.min_pixels < 1 or self.min_chroma < 0 or self.colour_margin_deg < 0:
            raise ValueError(f"GroundingConfig needs min_pixels >= 1, min_chroma >= 0, colour_margin_deg >= 0: {self}")


@dataclass(frozen=True)
class Grounding:
    """Result of :func:`keypoint_grounding`.

    ``verdict``: ``ok``; ``wrong_colour`` or ``no_object`` (the pick would take the wrong thing or
    nothing); ``occluded`` (look again in the next frame); ``unchecked`` (cannot tell: no keypoint,
    outside the image, no depth).
    """

    verdict: str
    detail: str

    @property
    def failed(self) -> bool:
        """Whether the keypoint is wrong."""
        return self.verdict in ("wrong_colour", "no_object")

    @property
    def final(self) -> bool:
        """Whether another frame could not change the answer."""
        return self.verdict != "occluded"


def _probe_points(subtask: SubtaskData, cfg: GroundingConfig) -> tuple[np.ndarray, float, str] | None:
    """Sample points where the subtask's object should stand, the height above which the arm hides
    them, and the kind of keypoint; None when the subtask has no keypoint to check."""
    grid = np.arange(-cfg.radius, cfg.radius + 1e-9, cfg.step)
    kp = subtask.keypoint("grasp")
    if subtask.skill == "pick" and kp is not None:
        centre = np.asarray(kp.point, float)
        disc = [(dx, dy) for dx in grid for dy in grid if dx * dx + dy * dy <= cfg.radius * cfg.radius + 1e-12]
        return centre + np.array([[dx, dy, 0.0] for dx, dy in disc]), centre[2], "grasp"
    start_kp, end_kp = subtask.keypoint("push_start"), subtask.keypoint("push_end")
    if subtask.skill == "push" and start_kp is not None and end_kp is not None:
        start, end = np.asarray(start_kp.point, float), np.asarray(end_kp.point, float)
        length = float(np.linalg.norm((end - start)[:2]))
        if length < 1e-3:
            return None
        d = np.array([*((end - start)[:2] / length), 0.0])
        n = np.array([-d[1], d[0], 0.0])
        alongs = np.arange(cfg.push_ahead[0], cfg.push_ahead[1] + 1e-9, cfg.step)
        laterals = np.arange(-cfg.push_lateral, cfg.push_lateral + 1e-9, cfg.step)
        return np.array([start + a * d + lat * n for a in alongs for lat in laterals]), start[2], "push_start"
    return None


def keypoint_grounding(subtask: SubtaskData, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
                    cfg: GroundingConfig = GroundingConfig()) -> Grounding:
    """Is the object the subtask acts on where its keypoints say, and of the colour its name says?

    A pick's object is sampled on a disc around its ``grasp`` keypoint; a push's object in a strip
    ahead of its ``push_start`` keypoint (``push_ahead`` along the push, ``push_lateral`` across).
    Each sample is projected into the image and the depth there deprojected: a surface more than
    ``occluder_height`` above the keypoint is the arm (occluded), one below ``min_height`` is bare
    table, one within ``tolerance`` of the sample is the object, whose pixels are read as a colour
    term and compared with the colour word of the subtask's ``object`` argument.
    """
    probes = _probe_points(subtask, cfg)
    if probes is None:
        return Grounding("unchecked", "no grasp or push keypoints")
    points, kp_z, what = probes
    rgb, depth = np.asarray(rgb), np.asarray(depth)
    if rgb.shape[:2] != depth.shape[:2] or rgb.ndim != 3 or rgb.shape[2] < 3:
        return Grounding("unchecked", f"colour {rgb.shape} and depth {depth.shape} frames do not match")
    rows, cols = depth.shape[:2]
    pix = np.round(camera.project_many(points)).astype(int)
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < cols) & (pix[:, 1] >= 0) & (pix[:, 1] < rows)
    pix, points = pix[inside], points[inside]
    z = depth[pix[:, 1], pix[:, 0]].astype(float)
    valid = np.isfinite(z) & (z > 0)
    pix, points, z = pix[valid], points[valid], z[valid]
    usable = len(z)
    seen = camera.deproject_many(pix[:, 0], pix[:, 1], z)
    is_occluded = seen[:, 2] > kp_z + cfg.occluder_height
    is_bare = ~is_occluded & (seen[:, 2] - cfg.table_z < cfg.min_height)
    on_object = (~is_occluded & ~is_bare
                 & (np.linalg.norm(seen[:, :2] - points[:, :2], axis=1) <= cfg.tolerance))
    occluded, bare = int(is_occluded.sum()), int(is_bare.sum())
    pixels = rgb[pix[on_object, 1], pix[on_object, 0], :3]
    where = f"{subtask.code}: the {what} keypoint"
    if what == "push_start":
        where = f"{subtask.code}: ahead of the push_start keypoint"
    if usable == 0:
        return Grounding("unchecked", f"{where} has no valid depth in the image")
    if occluded * 2 > usable:
        return Grounding("occluded", f"{where} is hidden ({occluded} of {usable} samples see something above it)")
    if len(pixels) < cfg.min_pixels:
        if bare * 2 > usable:
            return Grounding("no_object", f"{where} is bare table ({bare} of {usable} depth samples): "
                                          f"no object there")
        return Grounding("unchecked", f"{where}: only {len(pixels)} of {usable} samples on an object")
    name = object_argument(subtask.code)
    term = named_colour(name)
    reading = read_colour(np.array(pixels), cfg.min_chroma)
    if term is None:
        return Grounding("ok", f"{where}: the object there is {reading.describe()}; {name!r} names no basic colour")
    if contradicts(reading, term, cfg.colour_margin_deg):
        return Grounding("wrong_colour", f"{where}: the object there is {reading.describe()}, not {term} "
                                         f"({reading.pixels} pixels): the keypoint is on another object")
    return Grounding("ok", f"{where}: the object there is {reading.describe()}")
