"""ROS-free plan data: the same fields as ``msg/Keypoint``, ``msg/Subtask`` and ``msg/Plan``.

The brain, the simulator's scripted expert and the cerebellum exchange plans as these
dataclasses; :mod:`robo_common.msg_conversions` converts them to and from the ROS
messages at the node boundary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from robo_common.constants import BASE_FRAME


@dataclass
class KeypointData:
    """One keypoint of a subtask.

    Attributes:
        name: Role of the point: ``grasp``, ``place``, ``approach``, ``push_start``...
        point: 3D position ``(x, y, z)`` in metres, in the plan's header frame.
        u: Pixel column in the source image, ``-1`` when unknown.
        v: Pixel row in the source image, ``-1`` when unknown.
        confidence: Confidence in ``[0, 1]``.
    """

    name: str
    point: tuple[float, float, float]
    u: float = -1.0
    v: float = -1.0
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if len(self.point) != 3:
            raise ValueError(f"keypoint {self.name!r}: point must have 3 coordinates, got {self.point!r}")
        self.point = tuple(float(c) for c in self.point)  # type: ignore[assignment]
        if not all(math.isfinite(c) for c in self.point):
            raise ValueError(f"keypoint {self.name!r}: point must be finite, got {self.point!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"keypoint {self.name!r}: confidence must be in [0, 1], got {self.confidence}")


@dataclass
class SubtaskData:
    """One line of the plan: pseudo-code plus its keypoints.

    Attributes:
        index: Position of the subtask in the plan, from 0.
        code: One line of pseudo-code, e.g. ``pick(object="red block")``.
        skill: The parsed skill name, e.g. ``pick``.
        keypoints: Keypoints the skill uses.
    """

    index: int
    code: str
    skill: str
    keypoints: list[KeypointData] = field(default_factory=list)

    def keypoint(self, name: str) -> KeypointData | None:
        """Return the keypoint with role ``name``, or None."""
        for kp in self.keypoints:
            if kp.name == name:
                return kp
        return None


@dataclass
class PlanData:
    """A plan: reasoning and ordered subtasks for one instruction.

    Attributes:
        plan_id: Identifier shared by all revisions of one plan.
        revision: 0 for the first plan, +1 per correction.
        instruction: The user's instruction.
        reasoning: The model's reasoning text (kept across corrections).
        subtasks: Ordered subtasks.
        frame_id: Frame of all 3D keypoints.
        stamp_ns: Time the plan was made, in nanoseconds (0 when unknown).
    """

    plan_id: str
    revision: int
    instruction: str
    reasoning: str
    subtasks: list[SubtaskData]
    frame_id: str = BASE_FRAME
    stamp_ns: int = 0

    def code_lines(self) -> list[str]:
        """Return the pseudo-code lines in order."""
        return [s.code for s in self.subtasks]

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-serialisable nested dicts and lists."""
        data = asdict(self)
        for sub in data["subtasks"]:
            for kp in sub["keypoints"]:
                kp["point"] = list(kp["point"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanData:
        """Build a plan from :meth:`to_dict` output; raises ``ValueError``/``KeyError`` on bad data."""
        subtasks = [
            SubtaskData(
                index=int(s["index"]),
                code=str(s["code"]),
                skill=str(s["skill"]),
                keypoints=[KeypointData(**{**k, "point": tuple(k["point"])}) for k in s.get("keypoints", [])],
            )
            for s in data["subtasks"]
        ]
        return cls(
            plan_id=str(data["plan_id"]),
            revision=int(data["revision"]),
            instruction=str(data["instruction"]),
            reasoning=str(data.get("reasoning", "")),
            subtasks=subtasks,
            frame_id=str(data.get("frame_id", BASE_FRAME)),
            stamp_ns=int(data.get("stamp_ns", 0)),
        )
