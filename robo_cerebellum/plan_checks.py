"""The checks a plan passes before the cerebellum executes any of it (ROS-free).

A plan arrives over DDS from the brain, or from anyone else on the domain. Before a single
subtask runs, the whole plan is checked: its size, that every line parses in the skill language
(whitelisted skills, literal arguments, non-empty names) and names the skill its ``skill`` field
claims, and that every keypoint lies within the workspace box (plus a margin). A plan that fails
is refused as a whole with the reason; the running plan is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_common.plan_language import PlanParseError, parse_call
from robo_common.plan_types import PlanData


@dataclass(frozen=True)
class PlanLimits:
    """What a plan may ask for.

    Attributes:
        workspace_min: Lower corner of the workspace box (m, base frame).
        workspace_max: Upper corner of the workspace box.
        keypoint_margin_m: How far outside the box a keypoint may lie (a place point on a container
            rim at the box's edge; the envelope clamps the commands anyway).
        max_subtasks: Most subtasks in one plan.
    """

    workspace_min: tuple[float, float, float] = (0.2, -0.45, 0.005)
    workspace_max: tuple[float, float, float] = (0.8, 0.45, 0.6)
    keypoint_margin_m: float = 0.05
    max_subtasks: int = 32

    def __post_init__(self) -> None:
        if self.max_subtasks < 1:
            raise ValueError(f"PlanLimits.max_subtasks must be >= 1, got {self.max_subtasks}")
        if not self.keypoint_margin_m >= 0:
            raise ValueError(f"PlanLimits.keypoint_margin_m must be >= 0, got {self.keypoint_margin_m!r}")


def check_plan(plan: PlanData, limits: PlanLimits) -> None:
    """Raise ``ValueError`` naming the first thing in ``plan`` that must not be executed."""
    head = f"plan {plan.plan_id!r} rev {plan.revision}"
    if not plan.plan_id.strip():
        raise ValueError(f"{head}: empty plan_id")
    if len(plan.subtasks) > limits.max_subtasks:
        raise ValueError(f"{head}: {len(plan.subtasks)} subtasks, more than max_subtasks {limits.max_subtasks}")
    lo = np.asarray(limits.workspace_min, float) - limits.keypoint_margin_m
    hi = np.asarray(limits.workspace_max, float) + limits.keypoint_margin_m
    for sub in plan.subtasks:
        where = f"{head}: subtask {sub.index} {sub.code[:80]!r}"
        try:
            call = parse_call(sub.code)
        except PlanParseError as exc:
            raise ValueError(f"{where} does not parse: {exc}") from None
        if call.skill != sub.skill:
            raise ValueError(f"{where}: its skill field says {sub.skill!r}, the code line {call.skill!r}")
        for kp in sub.keypoints:
            point = np.asarray(kp.point, float)
            if not np.all(np.isfinite(point)):
                raise ValueError(f"{where}: keypoint {kp.name!r} is not finite")
            if np.any(point < lo) or np.any(point > hi):
                raise ValueError(f"{where}: keypoint {kp.name!r} at {np.round(point, 3).tolist()} is outside the "
                                 f"workspace box {list(limits.workspace_min)}..{list(limits.workspace_max)} "
                                 f"(+{limits.keypoint_margin_m} m)")
