"""Does a step's goal already hold in the current image? Asked before a correction (ROS-free).

A failure report says what the cerebellum measured (the fingers opened early, the progress
stalled, the push result looked wrong), not what became of the task: a block released early may
still have fallen into its bowl, and a push flagged ``no_progress`` may have moved the block far
enough. Before correcting, the brain therefore looks at the current colour and depth images (not
simulator truth) for the step's goal:

* ``place(target=...)``: pixels of the colour the held object's name gives (from the ``pick`` before
  it) stand near the place keypoint: within ``container_radius`` of it horizontally for a container
  (bowl, tray, box...), ``block_radius`` for a block, and at a height between ``below_place`` under
  and ``above_place`` over it (an object still in the gripper, higher up, does not count). Pixels of
  that colour are not all the held object's: when the target has the same colour (a yellow block into
  the yellow tray, a red block on a red block), only pixels that rise ``same_colour_rise`` above the
  place point count (a block's top stands above a container's wall and above the block it is put on);
  when another ``place`` of the plan puts an object of the same colour nearby (two yellow blocks into
  one tray, each in its slot), a pixel counts for the place point it is nearest to;
* ``push(object=..., direction=...)``: the pixels of the object's colour in the strip along the push
  have their centre at least ``push_min_along`` past where the object stood (``push_object_offset``
  ahead of ``push_start``) with at most ``push_max_lateral`` sideways drift.

The answer is ``holds`` True or False, or None when the image cannot tell (no colour word in the
name, an achromatic colour, too few pixels of that colour, an occluded region): the correction then
goes ahead as before. A correction never undoes a goal that holds: the revised plan resumes after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo_brain.perception import CONTAINER_FLOOR_M
from robo_common.camera import CameraModel
from robo_common.colours import named_colour, term_mask
from robo_common.plan_language import PlanParseError, parse_call
from robo_common.plan_types import PlanData, SubtaskData

CONTAINER_WORDS = ("bowl", "tray", "box", "container", "basket", "bin", "plate", "dish")
"""Words that make a place target a container (else it is an object to stack on)."""


@dataclass(frozen=True)
class GoalCheckConfig:
    """Thresholds of the goal check (metres, base frame).

    Attributes:
        table_z: Height of the table top.
        min_height: Lowest surface above the table that counts as an object.
        container_radius: Horizontal radius around a container's place keypoint.
        block_radius: Horizontal radius around the place keypoint on a block (stacking).
        below_place: How far below the place keypoint a placed object's pixels may be.
        above_place: How far above it (a large block's top in a container is 5 cm above the floor; an object
            still in the gripper is higher).
        min_pixels: Pixels of the object's colour needed to say anything.
        same_colour_rise_container: Into a container of the held object's colour, only pixels this far above
            the container's floor count: a block's top (4-5 cm up) is above it, the
            container's wall (a bowl's 3.5 cm, a tray's 2 cm) below it.
        same_colour_rise_block: On a block of the held object's colour, only pixels this far above the place
            point (the base block's top face) count.
        push_object_offset: Where the pushed object stood, ahead of ``push_start`` along the push.
        push_min_along: How far the object must have moved along the push.
        push_max_lateral: Largest sideways drift of a successful push.
        push_strip: Half width of the strip along the push that is searched.
        push_max_height: Highest object pixel of a pushed block (it stays on the table).
        container_max_top: Highest a block resting on a container's floor reaches above the table (95th
            percentile of its pixels): a block whose top is higher lies on something in the container, another
            block or the rim. In closed-loop runs blocks lying on another block in a bowl read 8.2-10.1 cm,
            blocks the simulator counts as in (some tilted against the wall) up to 7.7 cm.
    """

    table_z: float = 0.0
    min_height: float = 0.01
    container_radius: float = 0.06
    block_radius: float = 0.025
    below_place: float = 0.03
    above_place: float = 0.065
    min_pixels: int = 6
    same_colour_rise_container: float = 0.037
    same_colour_rise_block: float = 0.01
    push_object_offset: float = 0.045
    push_min_along: float = 0.06
    push_max_lateral: float = 0.035
    push_strip: float = 0.06
    push_max_height: float = 0.08
    container_max_top: float = 0.08

    def __post_init__(self) -> None:
        for name in ("min_height", "container_radius", "block_radius", "below_place", "above_place",
                     "same_colour_rise_container", "same_colour_rise_block", "push_min_along",
                     "push_max_lateral", "push_strip", "push_max_height", "container_max_top"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"GoalCheckConfig.{name} must be > 0, got {value!r}")
        if self.min_pixels < 1:
            raise ValueError(f"GoalCheckConfig.min_pixels must be >= 1, got {self.min_pixels}")


@dataclass(frozen=True)
class GoalVerdict:
    """Whether a step's goal holds in the image (None: cannot tell) and what was seen."""

    holds: bool | None
    text: str
    redoable: bool = True
    """False for a goal that doing the step again cannot reach (a push that went far enough but sideways)."""

    def line(self) -> str:
        """``[goal holds] ...`` / ``[goal not reached] ...`` / ``[goal unknown] ...`` for the reasoning."""
        tag = {True: "goal holds", False: "goal not reached", None: "goal unknown"}[self.holds]
        return f"[{tag}] {self.text}"


def step_goal(plan: PlanData, index: int, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
              cfg: GoalCheckConfig | None = None, first: SubtaskData | None = None) -> GoalVerdict:
    """Check the goal of ``plan.subtasks[index]`` in the current colour and depth images (a push: measured
    from where its object stood before ``first``, an earlier push it redoes; default: itself)."""
    cfg = cfg or GoalCheckConfig()
    if not 0 <= index < len(plan.subtasks):
        return GoalVerdict(None, f"no subtask {index} in the plan")
    sub = plan.subtasks[index]
    try:
        args = parse_call(sub.code).args
    except PlanParseError as exc:
        return GoalVerdict(None, f"{sub.code!r} does not parse: {exc}")
    if sub.skill == "place":
        held = _held_object(plan, index)
        return _place_goal(sub, held, str(args.get("target", "")), rgb, depth, camera, cfg,
                           _same_colour_places(plan, index, held))
    if sub.skill == "push":
        return _push_goal(sub, str(args.get("object", "")), rgb, depth, camera, cfg, first)
    return GoalVerdict(None, f"the goal of {sub.skill} is not checked in the image")


def is_container(name: str) -> bool:
    """Whether a place target's name makes it a container (else it is an object to stack on)."""
    return any(word in name.lower() for word in CONTAINER_WORDS)


def step_arg(sub: SubtaskData, name: str) -> str | None:
    """Argument ``name`` of the step's code line (``''`` when absent), or None when the line does not parse."""
    try:
        return str(parse_call(sub.code).args.get(name, ""))
    except PlanParseError:
        return None


def _held_object(plan: PlanData, index: int) -> str:
    for sub in reversed(plan.subtasks[:index]):
        if sub.skill == "pick":
            return step_arg(sub, "object") or ""
    return ""


def _same_colour_places(plan: PlanData, index: int, held: str) -> list[np.ndarray]:
    """Place points of the plan's other ``place`` steps whose held objects have ``held``'s colour."""
    term, points = named_colour(held), []
    if term is None:
        return points
    for j, sub in enumerate(plan.subtasks):
        kp = sub.keypoint("place") if sub.skill == "place" and j != index else None
        if kp is not None and named_colour(_held_object(plan, j)) == term:
            points.append(np.asarray(kp.point, float))
    return points


def _coloured_points(rgb: np.ndarray, depth: np.ndarray, camera: CameraModel, term: str,
                     cfg: GoalCheckConfig) -> np.ndarray:
    """3D points (base frame) of the pixels above the table that read as ``term``."""
    if rgb.shape[:2] != depth.shape[:2]:
        return np.zeros((0, 3))
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    mask = term_mask(rgb[rows, cols, :3], term)
    rows, cols = rows[mask], cols[mask]
    if len(rows) == 0:
        return np.zeros((0, 3))
    points = camera.deproject_many(cols.astype(float), rows.astype(float), depth[rows, cols].astype(float))
    return points[points[:, 2] - cfg.table_z >= cfg.min_height]


def _place_goal(sub: SubtaskData, held: str, target: str, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
                cfg: GoalCheckConfig, siblings: list[np.ndarray] | None = None) -> GoalVerdict:
    """The place's goal: pixels of ``held``'s colour near the place point, not the target's own (same colour)
    nor nearer to ``siblings``, the place points of other objects of that colour."""
    term, kp = named_colour(held), sub.keypoint("place")
    if not held or kp is None:
        return GoalVerdict(None, f"{sub.code}: no held object or place keypoint to check")
    if term is None:
        return GoalVerdict(None, f"{sub.code}: {held!r} has no colour word to look for")
    points = _coloured_points(rgb, depth, camera, term, cfg)
    if len(points) < cfg.min_pixels:
        return GoalVerdict(None, f"{sub.code}: the {held} is not in view ({len(points)} {term} pixels)")
    container = is_container(target)
    radius = cfg.container_radius if container else cfg.block_radius
    place = np.asarray(kp.point, float)
    dist = np.linalg.norm(points[:, :2] - place[:2], axis=1)
    near = dist <= radius
    for other in siblings or ():
        near &= dist <= np.linalg.norm(points[:, :2] - other[:2], axis=1)
    lowest = place[2] - cfg.below_place
    if named_colour(target) == term:  # the target's own pixels read as the held object's colour
        # a container: from its floor (the keypoint lifted with depth may lie on a block already in it);
        # a block: above its top face
        lowest = (cfg.table_z + CONTAINER_FLOOR_M + cfg.same_colour_rise_container if container
                  else place[2] + cfg.same_colour_rise_block)
    low = (points[:, 2] >= lowest) & (points[:, 2] <= place[2] + cfg.above_place)
    hits = int(np.count_nonzero(near & low))
    where = f"within {radius * 100:.0f} cm of the place point of the {target}"
    if hits >= cfg.min_pixels and container:
        top = float(np.percentile(points[near & (points[:, 2] >= lowest), 2], 95)) - cfg.table_z
        if top > cfg.container_max_top:
            return GoalVerdict(False, f"{sub.code}: the {held} is {where} but not down in it: its top is "
                                      f"{top * 100:.1f} cm above the table, higher than a block on the floor of the "
                                      f"{target} reaches ({cfg.container_max_top * 100:.1f} cm): on another block "
                                      "or the rim?")
    if hits >= cfg.min_pixels:
        return GoalVerdict(True, f"{sub.code}: the current image shows the {held} {where} ({hits} {term} pixels)")
    above = int(np.count_nonzero(near & (points[:, 2] > place[2] + cfg.above_place)))
    extra = f"; {above} {term} pixels above it (still held?)" if above else ""
    return GoalVerdict(False, f"{sub.code}: the {held} is not {where} ({hits} of {len(points)} {term} pixels "
                              f"there{extra})")


def _push_line(sub: SubtaskData) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``(start, unit direction, length)`` of a push's keypoints (horizontal), or None."""
    start_kp, end_kp = sub.keypoint("push_start"), sub.keypoint("push_end")
    if start_kp is None or end_kp is None:
        return None
    start, end = np.asarray(start_kp.point, float), np.asarray(end_kp.point, float)
    length = float(np.linalg.norm((end - start)[:2]))
    return None if length < 1e-3 else (start, (end - start)[:2] / length, length)


def _push_goal(sub: SubtaskData, obj: str, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
               cfg: GoalCheckConfig, first: SubtaskData | None = None) -> GoalVerdict:
    """The push's goal: the object is looked for along ``sub``'s push line and measured from where it stood
    before ``first`` (an earlier push of the same object and direction, redone since; default ``sub``)."""
    term, line = named_colour(obj), _push_line(sub)
    origin = _push_line(first) if first is not None else line
    if line is None or origin is None or not obj:
        return GoalVerdict(None, f"{sub.code}: no push keypoints to check")
    if term is None:
        return GoalVerdict(None, f"{sub.code}: {obj!r} has no colour word to look for")
    start, d, length = line
    points = _coloured_points(rgb, depth, camera, term, cfg)
    points = points[points[:, 2] - cfg.table_z <= cfg.push_max_height]
    rel = points[:, :2] - start[:2]
    along, lateral = rel @ d, rel @ np.array([-d[1], d[0]])
    strip = (np.abs(lateral) <= cfg.push_strip) & (along >= -0.02) & (along <= length + 0.15)
    if np.count_nonzero(strip) < cfg.min_pixels:
        return GoalVerdict(None, f"{sub.code}: the {obj} is not in view along the push "
                                 f"({int(np.count_nonzero(strip))} {term} pixels)")
    start0, d0, _ = origin
    rel0 = points[strip][:, :2] - start0[:2]
    moved = float(np.median(rel0 @ d0)) - cfg.push_object_offset
    drift = float(np.median(rel0 @ np.array([-d0[1], d0[0]])))
    text = f"{sub.code}: the {obj} moved {moved * 100:.1f} cm along the push, {abs(drift) * 100:.1f} cm sideways"
    ok = moved >= cfg.push_min_along and abs(drift) <= cfg.push_max_lateral
    if ok:
        return GoalVerdict(True, text + " (current image)")
    if moved >= cfg.push_min_along:  # far enough, but sideways: pushing again along the line only adds to it
        return GoalVerdict(False, text + f" (at most {cfg.push_max_lateral * 100:.1f} cm sideways)", redoable=False)
    return GoalVerdict(False, text + f" (needs {cfg.push_min_along * 100:.0f} cm)")
