"""Per-step and aggregate metrics of a replayed episode: pose error, gripper agreement, failure detection.

* translation error: ``100 * |p_pred - p_rec|`` (cm) of the end-effector target, per step;
* rotation error: geodesic angle between predicted and recorded target orientations (degrees);
* gripper agreement: both commands on the same side of 0.5 (open / closed);
* failure detection, per episode: a detection is the model's first monitor failure; an episode
  is positive when it has a failure label (simulator metadata or a recorded ``/robo/failure``).
  Precision and recall over episodes, and the delay from the label to the detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_eval.episode import ReplayEpisode
from robo_eval.models import Predictions


def rotation_errors_deg(q_pred: np.ndarray, q_rec: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between two arrays of xyzw quaternions (N, 4)."""
    a = q_pred / np.linalg.norm(q_pred, axis=1, keepdims=True)
    b = q_rec / np.linalg.norm(q_rec, axis=1, keepdims=True)
    dot = np.clip(np.abs(np.sum(a * b, axis=1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dot))


@dataclass
class EpisodeScore:
    """Per-step errors of one episode and its failure-detection outcome."""

    name: str
    time_s: np.ndarray
    subtask_index: np.ndarray
    skills: list[str]
    translation_cm: np.ndarray
    rotation_deg: np.ndarray
    gripper_agree: np.ndarray
    valid: np.ndarray
    latency_s: np.ndarray
    labelled_failure: bool
    detected: bool
    detection_delay_s: float | None
    duration_s: float
    wall_s: float
    model_time_s: float
    target_pos: np.ndarray
    recorded_pos: np.ndarray

    def summary(self) -> dict:
        """Medians of this episode (JSON-ready)."""
        v = self.valid
        return {
            "bag": self.name, "steps": int(len(v)), "scored_steps": int(v.sum()),
            "duration_s": round(self.duration_s, 3), "wall_s": round(self.wall_s, 4),
            "translation_error_cm_median": _stat(self.translation_cm[v], np.median),
            "rotation_error_deg_median": _stat(self.rotation_deg[v], np.median),
            "gripper_agreement": _stat(self.gripper_agree[v & ~np.isnan(self.gripper_agree)], np.mean),
            "labelled_failure": self.labelled_failure, "detected_failure": self.detected,
            "per_subtask": self.per_subtask(),
        }

    def per_subtask(self) -> dict[str, dict]:
        """Median errors per subtask ``"index:skill"``."""
        out = {}
        for idx in sorted(set(self.subtask_index[self.valid].tolist())):
            m = self.valid & (self.subtask_index == idx)
            skill = self.skills[int(np.flatnonzero(m)[0])]
            out[f"{idx}:{skill}"] = {"steps": int(m.sum()),
                                     "translation_error_cm_median": _stat(self.translation_cm[m], np.median),
                                     "rotation_error_deg_median": _stat(self.rotation_deg[m], np.median)}
        return out


def _stat(values: np.ndarray, fn) -> float | None:  # noqa: ANN001 - a numpy reduction
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return round(float(fn(values)), 4) if len(values) else None


def score_episode(ep: ReplayEpisode, pred: Predictions, wall_s: float) -> EpisodeScore:
    """Compare a model's predictions with the recorded commands of ``ep``."""
    valid = pred.valid & np.all(np.isfinite(pred.target_pos), axis=1) & np.all(np.isfinite(pred.target_quat), axis=1)
    trans = np.full(ep.length, np.nan)
    rot = np.full(ep.length, np.nan)
    trans[valid] = 100.0 * np.linalg.norm(pred.target_pos[valid] - ep.target_pos[valid], axis=1)
    rot[valid] = rotation_errors_deg(pred.target_quat[valid], ep.target_quat[valid])
    both = np.isfinite(pred.gripper) & np.isfinite(ep.gripper_cmd)
    agree = np.full(ep.length, np.nan)
    agree[both] = ((pred.gripper[both] > 0.5) == (ep.gripper_cmd[both] > 0.5)).astype(float)
    labelled, detected = ep.failure_step is not None, pred.detected_step is not None
    delay = None
    if labelled and detected:
        delay = float((ep.t_ns[pred.detected_step] - ep.t_ns[ep.failure_step]) / 1e9)
    return EpisodeScore(
        name=ep.name, time_s=ep.time_s(), subtask_index=ep.subtask_index,
        skills=[ep.skill_of(int(i)) for i in ep.subtask_index], translation_cm=trans, rotation_deg=rot,
        gripper_agree=agree, valid=valid, latency_s=pred.latency_s, labelled_failure=labelled, detected=detected,
        detection_delay_s=delay, duration_s=ep.duration_s, wall_s=wall_s, model_time_s=pred.model_time_s,
        target_pos=pred.target_pos, recorded_pos=ep.target_pos,
    )


def aggregate(scores: list[EpisodeScore]) -> dict:
    """Aggregate metrics over episodes (every valid step of every episode counts once)."""
    if not scores:
        return {"bags_scored": 0}
    valid = np.concatenate([s.valid for s in scores])
    trans = np.concatenate([s.translation_cm for s in scores])[valid]
    rot = np.concatenate([s.rotation_deg for s in scores])[valid]
    agree = np.concatenate([s.gripper_agree for s in scores])[valid]
    lat = np.concatenate([s.latency_s for s in scores])[valid]
    duration, wall = sum(s.duration_s for s in scores), sum(s.wall_s for s in scores)
    model = sum(s.model_time_s for s in scores)
    tp = sum(s.labelled_failure and s.detected for s in scores)
    fp = sum(s.detected and not s.labelled_failure for s in scores)
    fn = sum(s.labelled_failure and not s.detected for s in scores)
    delays = [s.detection_delay_s for s in scores if s.detection_delay_s is not None]
    per_skill: dict[str, dict] = {}
    skills = np.array([k for s in scores for k in s.skills])[valid]
    for skill in sorted(set(skills.tolist())):
        m = skills == skill
        per_skill[skill] = {"steps": int(m.sum()), "translation_error_cm_median": _stat(trans[m], np.median),
                            "rotation_error_deg_median": _stat(rot[m], np.median)}
    return {
        "bags_scored": len(scores), "steps_scored": int(valid.sum()), "steps_unmatched": int((~valid).sum()),
        "recorded_duration_s": round(duration, 3), "wall_s": round(wall, 3),
        "realtime_factor": round(duration / wall, 2) if wall > 0 else None,
        "model_realtime_factor": round(duration / model, 2) if model > 0 else None,
        "translation_error_cm_median": _stat(trans, np.median), "translation_error_cm_mean": _stat(trans, np.mean),
        "translation_error_cm_p90": _stat(trans, lambda x: np.percentile(x, 90)),
        "rotation_error_deg_median": _stat(rot, np.median), "rotation_error_deg_mean": _stat(rot, np.mean),
        "rotation_error_deg_p90": _stat(rot, lambda x: np.percentile(x, 90)),
        "gripper_agreement": _stat(agree, np.mean),
        "per_skill": per_skill,
        "failure_detection": {
            "labelled": tp + fn, "detected": tp + fp, "true_positives": tp, "false_positives": fp,
            "false_negatives": fn, "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "delay_s_median": round(float(np.median(delays)), 3) if delays else None,
        },
        "latency_ms_p50": _stat(1000 * lat, np.median),
        "latency_ms_p95": _stat(1000 * lat, lambda x: np.percentile(x, 95)),
        "latency_ms_max": _stat(1000 * lat, np.max),
    }
