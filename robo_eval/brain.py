"""Brain replay: plan from a bag's first camera frame and instruction, compare with the recorded plan.

The planner gets what ``brain_node`` gets on the robot: the instruction (``/robo/instruction``,
else the episode metadata or the recorded plan's), the first RGB-D frame, the intrinsics
(``/camera/color/camera_info``) and the camera pose (``/camera/color/pose``). Its plan is compared
with the reference plan (``/sim/expert_plan`` when recorded, else ``/robo/plan``): exact match of
the code lines, subtask F1 (both from :mod:`robo_brain.embedded.evaluate`), 3D keypoint error
matched by subtask index and keypoint name, and planning latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_eval.bagread import BagError
from robo_eval.episode import ReplayEpisode


@dataclass
class BrainScore:
    """One bag's brain replay result."""

    name: str
    ok: bool
    exact: bool
    f1: float
    keypoint_cm: list[float]
    latency_s: float
    duration_s: float
    wall_s: float
    predicted: list[str]
    reference: list[str]
    error: str

    def summary(self) -> dict:
        """JSON-ready per-bag result."""
        return {"bag": self.name, "plan_ok": self.ok, "plan_exact_match": self.exact, "subtask_f1": round(self.f1, 4),
                "keypoint_error_cm_median": round(float(np.median(self.keypoint_cm)), 3) if self.keypoint_cm else None,
                "latency_s": round(self.latency_s, 4), "predicted": self.predicted, "reference": self.reference,
                "error": self.error}


class BrainModel:
    """A :class:`~robo_brain.planner.Planner` replayed on bags."""

    def __init__(self, planner: object, name: str = "brain") -> None:
        """Wrap a planner (anything with ``plan(instruction, rgb, depth, camera) -> PlanResult``)."""
        self.planner = planner
        self.name = name

    @classmethod
    def load(cls, checkpoint: str | Path, backend: str = "transformers") -> BrainModel:
        """A planner over a back-end: ``transformers`` (a checkpoint folder) or ``scripted`` (an answers file)."""
        from robo_brain.backends import BackendConfig, make_backend
        from robo_brain.planner import Planner, PlannerConfig

        made = make_backend(BackendConfig(backend=backend, model_path=str(checkpoint)))
        return cls(Planner(made, PlannerConfig()), f"brain:{Path(checkpoint).name}")

    def run(self, ep: ReplayEpisode) -> BrainScore:
        """Plan on the first frame of ``ep`` and score the plan.

        Raises:
            BagError: the bag has no image, intrinsics, camera pose, instruction or reference plan.
        """
        from robo_brain.embedded.evaluate import code_lines, subtask_f1
        from robo_common.camera import CameraModel

        missing = [what for what, have in (("camera frames", ep.rgb), ("camera intrinsics", ep.camera_k is not None),
                                           ("camera pose", ep.camera_pose is not None),
                                           ("instruction", ep.instruction), ("reference plan", ep.reference_plan))
                   if not have]
        if missing:
            raise BagError(f"{ep.name}: brain replay needs {', '.join(missing)}")
        rgb, depth = ep.rgb[0], ep.depth[0]
        camera = CameraModel(ep.camera_k, ep.camera_pose, rgb.shape[1], rgb.shape[0])
        t0 = time.perf_counter()
        result = self.planner.plan(ep.instruction, rgb, depth, camera)
        latency = time.perf_counter() - t0
        pred, ref = code_lines(result.plan), code_lines(ep.reference_plan)
        return BrainScore(ep.name, bool(result.ok), pred == ref, subtask_f1(pred, ref),
                          keypoint_errors_cm(result.plan, ep.reference_plan), latency, ep.duration_s, 0.0, pred, ref,
                          "" if result.ok else str(result.reason))


def keypoint_errors_cm(pred: object, ref: object) -> list[float]:
    """3D distances (cm) between predicted and reference keypoints with the same subtask index and name."""
    if pred is None or ref is None:
        return []
    refs = {(s.index, k.name): np.asarray(k.point, float) for s in ref.subtasks for k in s.keypoints}
    return [100.0 * float(np.linalg.norm(np.asarray(k.point, float) - refs[(s.index, k.name)]))
            for s in pred.subtasks for k in s.keypoints if (s.index, k.name) in refs]


def aggregate_brain(scores: list[BrainScore]) -> dict:
    """Aggregate brain replay metrics."""
    if not scores:
        return {"bags_scored": 0}
    kp = [x for s in scores for x in s.keypoint_cm]
    lat = [s.latency_s for s in scores]
    duration, wall = sum(s.duration_s for s in scores), sum(s.wall_s for s in scores)
    return {
        "bags_scored": len(scores), "recorded_duration_s": round(duration, 3), "wall_s": round(wall, 3),
        "realtime_factor": round(duration / wall, 2) if wall > 0 else None,
        "translation_error_cm_median": None, "rotation_error_deg_median": None,
        "plan_exact_match": round(float(np.mean([s.exact for s in scores])), 4),
        "subtask_f1": round(float(np.mean([s.f1 for s in scores])), 4),
        "parse_failure_rate": round(float(np.mean([not s.ok for s in scores])), 4),
        "keypoint_error_cm_median": round(float(np.median(kp)), 3) if kp else None,
        "latency_ms_p50": round(1000 * float(np.median(lat)), 2),
        "latency_ms_p95": round(1000 * float(np.percentile(lat, 95)), 2),
    }
