"""Models that replay a recorded episode step by step: the cerebellum, the recorded commands, an offset wrapper.

A :class:`StepModel` turns a :class:`~robo_eval.episode.ReplayEpisode` into :class:`Predictions`
(one command per step, on the episode's command clock). The cerebellum is fed the recorded
observations in timestamp order (teacher forcing: the recorded active subtask, the camera frame
when a new one arrived, the measured pose and gripper), exactly as ``cerebellum_node`` would feed
it on the robot; its failure monitor runs on the same inputs.

:class:`RecordedModel` replays the recorded commands themselves (the metric's floor: zero error),
or the commands of a *candidate* bag recorded from live nodes during an online replay.
:class:`OffsetModel` shifts another model's targets by a known offset (the metric's truth).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from robo_common import constants as C
from robo_common.bags import pose_arrays
from robo_common.geometry import matrix_to_quat, quat_to_matrix
from robo_eval.bagread import TopicMap, read_recording
from robo_eval.episode import ReplayEpisode, latest_before

LOG = logging.getLogger(__name__)


@dataclass
class Predictions:
    """A model's outputs on one episode (length ``T``, aligned with the episode's steps).

    Attributes:
        target_pos, target_quat: Predicted end-effector targets (NaN where ``valid`` is False).
        gripper: Predicted gripper command (0 closed .. 1 open; NaN when not predicted).
        failure_probability: Learned failure probability per step (NaN when not predicted).
        valid: Steps the model produced a command for.
        latency_s: Wall time of each step (NaN for steps not run).
        detected_step: Step of the first failure the model's monitor flagged, or None.
        detected_kind: Its FailureReport kind.
        model_time_s: Total wall time spent in the model for this episode.
    """

    target_pos: np.ndarray
    target_quat: np.ndarray
    gripper: np.ndarray
    failure_probability: np.ndarray
    valid: np.ndarray
    latency_s: np.ndarray
    detected_step: int | None = None
    detected_kind: str = ""
    model_time_s: float = 0.0

    @classmethod
    def empty(cls, length: int) -> Predictions:
        """All-invalid predictions for ``length`` steps."""
        nan3, nan4, nan1 = np.full((length, 3), np.nan), np.full((length, 4), np.nan), np.full(length, np.nan)
        return cls(nan3, nan4, nan1.copy(), nan1.copy(), np.zeros(length, bool), nan1.copy())


class StepModel(Protocol):
    """Anything that predicts the commands of a recorded episode."""

    name: str

    def run(self, ep: ReplayEpisode) -> Predictions:
        """Predict one command per step of ``ep``."""
        ...


class RecordedModel:
    """The recorded commands: the episode's own (floor) or those of a candidate bag (online replay).

    With a candidate, step ``i`` takes the latest candidate command stamped in ``[t_i, t_{i+1})``:
    the newest command the live system issued after observation ``i`` and before observation
    ``i + 1`` (steps without one are invalid and counted as unmatched).
    """

    def __init__(self, candidate: Path | None = None, topic_map: TopicMap | None = None) -> None:
        """Replay ``candidate``'s commands, or each episode's own when None."""
        self.candidate = candidate
        self.topic_map = topic_map
        self.name = "recorded" if candidate is None else f"recorded:{Path(candidate).name}"

    def run(self, ep: ReplayEpisode) -> Predictions:
        """Return the recorded (or candidate) commands on ``ep``'s clock."""
        n = ep.length
        if self.candidate is None:
            detected = ep.failure_step
            return Predictions(ep.target_pos.copy(), ep.target_quat.copy(), ep.gripper_cmd.copy(), np.full(n, np.nan),
                               np.ones(n, bool), np.zeros(n), detected, ep.failure_kind if detected is not None else "")
        rec = read_recording(self.candidate, [C.TOPIC_EE_TARGET, C.TOPIC_GRIPPER_COMMAND, C.TOPIC_FAILURE],
                             required=[C.TOPIC_EE_TARGET], topic_map=self.topic_map)
        t_c, pos, quat = pose_arrays(rec.get(C.TOPIC_EE_TARGET))
        ends = np.append(ep.t_ns[1:], ep.t_ns[-1] + (np.median(np.diff(ep.t_ns)) if n > 1 else 50_000_000))
        idx = latest_before(t_c, ends - 1)
        ok = (idx >= 0) & (t_c[np.clip(idx, 0, None)] >= ep.t_ns)
        out = Predictions.empty(n)
        out.valid = ok
        out.target_pos[ok], out.target_quat[ok] = pos[idx[ok]], quat[idx[ok]]
        grips = rec.get(C.TOPIC_GRIPPER_COMMAND)
        if grips:
            t_g = np.array([s for s, _ in grips], np.int64)
            ig = latest_before(t_g, ends - 1)
            out.gripper = np.where(ig >= 0, np.array([m.data for _, m in grips])[np.clip(ig, 0, None)], np.nan)
        reports = rec.get(C.TOPIC_FAILURE)
        if reports:
            out.detected_step = int(max(0, latest_before(ep.t_ns, np.array([reports[0][0]]))[0]))
            out.detected_kind = str(reports[0][1].kind)
        out.latency_s = np.zeros(n)
        return out


class CerebellumModel:
    """The cerebellum policy and its failure monitor, fed the recorded observations.

    ``mode="recurrent"`` steps the policy one observation at a time with its recurrent state,
    exactly as ``cerebellum_node`` does (per-step latency is the node's). ``mode="parallel"``
    runs the same inputs through the network as one sequence (Mamba-2's chunked scan computes
    the same recurrence), which is what makes offline replay much faster than real time; its
    latency is the model time per step, amortised. Both give the same commands (tested).
    """

    def __init__(self, policy: object, failure_threshold: float | None = None, mode: str = "parallel") -> None:
        """Wrap a :class:`~robo_cerebellum.policy.CerebellumPolicy` (threshold: the learned failure head's)."""
        from robo_cerebellum.monitor import MonitorConfig

        if mode not in ("parallel", "recurrent"):
            raise ValueError(f"CerebellumModel.mode must be 'parallel' or 'recurrent', got {mode!r}")
        self.policy = policy
        self.mode = mode
        self.monitor_config = MonitorConfig() if failure_threshold is None else MonitorConfig(
            failure_threshold=failure_threshold)
        self.name = "cerebellum" if mode == "parallel" else "cerebellum(recurrent)"

    @classmethod
    def load(cls, checkpoint: str | Path, failure_threshold: float | None = None,
             mode: str = "parallel") -> CerebellumModel:
        """Load a checkpoint folder (``model.safetensors`` + ``config.json``)."""
        from robo_cerebellum.policy import CerebellumPolicy

        return cls(CerebellumPolicy.load(checkpoint), failure_threshold, mode)

    def _runnable(self, ep: ReplayEpisode) -> tuple[np.ndarray, np.ndarray]:
        """Steps whose recorded subtask the policy can run, and that subtask's position in the plan."""
        positions = {s.index: i for i, s in enumerate(ep.plan.subtasks)} if ep.plan is not None else {}
        pos = np.array([positions.get(int(i), -1) for i in ep.subtask_index], np.int64)
        ok = np.array([p >= 0 and ep.plan.subtasks[p].skill != "done"
                       and ep.plan.subtasks[p].skill in self.policy.cfg.skills for p in pos], bool)
        return np.flatnonzero(ok), pos

    def run(self, ep: ReplayEpisode) -> Predictions:
        """Predict the episode's commands (see the class docstring), then run the failure monitor."""
        out = Predictions.empty(ep.length)
        steps, pos = self._runnable(ep)
        t0 = time.perf_counter()
        if len(steps):
            progress = self._parallel(ep, steps, pos, out) if self.mode == "parallel" else \
                self._recurrent(ep, steps, pos, out)
            self._monitor(ep, steps, pos, progress, out)
        out.model_time_s = time.perf_counter() - t0
        if self.mode == "parallel" and len(steps):
            out.latency_s[steps] = out.model_time_s / len(steps)
        return out

    def _recurrent(self, ep: ReplayEpisode, steps: np.ndarray, pos: np.ndarray, out: Predictions) -> np.ndarray:
        from robo_cerebellum.policy import Observation

        policy = self.policy
        policy.reset()
        active, last_frame = -1, -1
        progress = np.zeros(ep.length)
        for i in steps:
            t0 = time.perf_counter()
            if pos[i] != active:
                policy.set_subtask(ep.plan.subtasks[pos[i]])
                active = pos[i]
            frame = int(ep.frame_index[i])
            if frame >= 0 and frame != last_frame:
                policy.update_image(ep.rgb[frame], ep.depth[frame])
                last_frame = frame
            cmd = policy.step(Observation(ep.ee_pos[i], ep.ee_quat[i], float(ep.gripper_width[i])))
            out.latency_s[i] = time.perf_counter() - t0
            out.valid[i] = True
            out.target_pos[i], out.target_quat[i] = cmd.target_pos, cmd.target_quat
            out.gripper[i], out.failure_probability[i], progress[i] = cmd.gripper, cmd.failure_probability, cmd.progress
        return progress

    def _parallel(self, ep: ReplayEpisode, steps: np.ndarray, pos: np.ndarray, out: Predictions) -> np.ndarray:
        import torch

        from robo_cerebellum.features import image_tensor, sequence_inputs
        from robo_cerebellum.rotations import quat_to_matrices, rot6d_to_matrix

        net, cfg = self.policy.net, self.policy.cfg
        ins = sequence_inputs(ep.plan.subtasks, pos[steps], ep.ee_pos[steps], ep.ee_quat[steps],
                              ep.gripper_width[steps], cfg)
        frames = ep.frame_index[steps]
        used = np.unique(frames[frames >= 0])
        with torch.inference_mode():
            visual = torch.zeros(len(steps), cfg.visual_dim)
            if len(used):
                images = torch.from_numpy(np.stack([image_tensor(ep.rgb[f], ep.depth[f], cfg) for f in used]))
                feats = net.visual(images)
                have = frames >= 0
                visual[torch.from_numpy(have)] = feats[torch.from_numpy(np.searchsorted(used, frames[have]))]
            t = {k: torch.from_numpy(v)[None] for k, v in ins.items()}
            res = net(net.embed(visual[None], t["skill"], t["code"], t["keypoints"], t["proprio"]))
        delta = res["delta"][0].double().numpy() * cfg.delta_scale
        rel = rot6d_to_matrix(res["rot6d"][0].double()).numpy()
        rot = quat_to_matrices(ep.ee_quat[steps]) @ rel
        out.valid[steps] = True
        out.target_pos[steps] = ep.ee_pos[steps] + delta
        out.target_quat[steps] = np.array([matrix_to_quat(r) for r in rot])
        out.gripper[steps] = torch.sigmoid(res["gripper"][0, :, 0]).numpy()
        out.failure_probability[steps] = torch.sigmoid(res["failure"][0, :, 0]).numpy()
        progress = np.zeros(ep.length)
        progress[steps] = torch.sigmoid(res["progress"][0, :, 0]).numpy()
        return progress

    def _monitor(self, ep: ReplayEpisode, steps: np.ndarray, pos: np.ndarray, progress: np.ndarray,
                 out: Predictions) -> None:
        """Run the failure monitor over the predictions; records the first failure it flags."""
        from robo_cerebellum.monitor import FailureMonitor

        monitor = FailureMonitor(self.monitor_config, self.policy.cfg.policy_hz)
        active = -1
        for i in steps:
            if pos[i] != active:
                sub = ep.plan.subtasks[pos[i]]
                place = sub.keypoint("place") if sub.skill == "place" else None
                monitor.start_subtask(sub.skill, None if place is None else np.asarray(place.point, float))
                active = pos[i]
            failure = monitor.check(out.target_pos[i], ep.ee_pos[i], float(np.clip(out.gripper[i], 0, 1)),
                                    float(ep.gripper_width[i]), float(progress[i]), float(out.failure_probability[i]))
            if failure is not None:
                out.detected_step, out.detected_kind = int(i), failure.kind
                return


def rotation_about_z(degrees: float) -> np.ndarray:
    """3x3 rotation of ``degrees`` about the base z axis."""
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


class OffsetModel:
    """Another model with every target shifted by ``offset_m`` and turned by ``yaw_deg`` about base z.

    A deliberate, known error: the scorer must report it (translation ``|offset_m|``, rotation ``yaw_deg``).
    """

    def __init__(self, inner: StepModel, offset_m: np.ndarray, yaw_deg: float = 0.0) -> None:
        """Wrap ``inner``."""
        self.inner = inner
        self.offset = np.asarray(offset_m, float).reshape(3)
        self.yaw = float(yaw_deg)
        self.name = f"{inner.name}+offset({', '.join(f'{100 * v:g}' for v in self.offset)} cm, {self.yaw:g} deg)"

    def run(self, ep: ReplayEpisode) -> Predictions:
        """The inner model's predictions, shifted and turned."""
        out = self.inner.run(ep)
        out.target_pos = out.target_pos + self.offset
        if self.yaw:
            turn = rotation_about_z(self.yaw)
            for i in np.flatnonzero(out.valid):
                out.target_quat[i] = matrix_to_quat(turn @ quat_to_matrix(out.target_quat[i]))
        return out
