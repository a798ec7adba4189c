"""The stateful cerebellum policy: ``reset()``, ``set_subtask()``, ``update_image()``, ``step()``.

Checkpoints are a folder with ``model.safetensors`` and ``config.json`` (the config rebuilds the
network). The recurrent state lives in an explicit :class:`PolicyState`; a step costs the same at
step 10 and step 10 000 for the Mamba-2 backbone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.features import (
    code_token_ids,
    image_tensor,
    keypoint_features,
    proprio_features,
    skill_index,
)
from robo_cerebellum.model import CerebellumNet
from robo_cerebellum.rotations import quat_to_matrices, rot6d_to_matrix
from robo_common.geometry import matrix_to_quat
from robo_common.plan_types import SubtaskData

LOG = logging.getLogger(__name__)
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing, incomplete or does not match its config."""


@dataclass
class Observation:
    """What the policy sees at one control step (base frame, metres)."""

    ee_pos: np.ndarray
    ee_quat: np.ndarray
    gripper_width: float


@dataclass
class Command:
    """One policy output: the next end-effector target and the heads' readings."""

    target_pos: np.ndarray
    target_quat: np.ndarray
    gripper: float
    progress: float
    failure_probability: float


@dataclass
class PolicyState:
    """The recurrent state carried between steps."""

    cache: Any = None
    steps: int = 0
    steps_in_subtask: int = 0
    visual: torch.Tensor | None = None
    subtask: SubtaskData | None = None
    keypoints: dict[str, np.ndarray] = field(default_factory=dict)
    # the active subtask's skill and code inputs, built once in set_subtask (not on every step)
    skill_id: torch.Tensor | None = None
    code_ids: torch.Tensor | None = None


class CerebellumPolicy:
    """Runs a :class:`CerebellumNet` one control step at a time."""

    def __init__(self, net: CerebellumNet) -> None:
        """Wrap a network (put in eval mode)."""
        self.net = net.eval()
        self.cfg: CerebellumConfig = net.cfg
        self.state = PolicyState()

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_config(cls, cfg: CerebellumConfig, seed: int = 0) -> CerebellumPolicy:
        """A freshly initialised policy (tests, benchmarks)."""
        torch.manual_seed(seed)
        return cls(CerebellumNet(cfg))

    @classmethod
    def load(cls, path: str | Path) -> CerebellumPolicy:
        """Load ``model.safetensors`` + ``config.json`` from a folder.

        Raises:
            CheckpointError: missing files or weights that do not fit the config.
        """
        path = Path(path)
        if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
            raise CheckpointError(f"{path}: not a cerebellum checkpoint (needs {WEIGHTS} and {CONFIG})")
        cfg = CerebellumConfig.load(path / CONFIG)
        net = CerebellumNet(cfg)
        try:
            net.load_state_dict(load_file(str(path / WEIGHTS)))
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match config.json: {exc}") from exc
        return cls(net)

    def save(self, path: str | Path) -> None:
        """Write the checkpoint folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(path / WEIGHTS))
        self.cfg.save(path / CONFIG)

    # ------------------------------------------------------------------ episode API
    def reset(self) -> None:
        """Forget the recurrent state (a new plan). The latest camera frame's feature stays: it is still what
        the camera saw last (in training every step has one), and the next frame may be up to a camera period
        away."""
        self.state = PolicyState(visual=self.state.visual)

    def set_subtask(self, subtask: SubtaskData) -> None:
        """Make ``subtask`` the active one (keeps the recurrent state).

        Raises:
            ValueError: for a skill the policy does not know.
        """
        skill_id = torch.tensor([[skill_index(subtask.skill, self.cfg)]])
        self.state.subtask = subtask
        self.state.steps_in_subtask = 0
        self.state.keypoints = {kp.name: np.asarray(kp.point, np.float64) for kp in subtask.keypoints}
        self.state.skill_id = skill_id
        self.state.code_ids = torch.from_numpy(code_token_ids(subtask.code, self.cfg))[None, None]

    @torch.inference_mode()
    def update_image(self, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Encode a new camera frame and cache its feature until the next one (camera rate)."""
        image = torch.from_numpy(image_tensor(rgb, depth, self.cfg))[None]
        self.state.visual = self.net.visual(image)[0]

    @torch.inference_mode()
    def step(self, obs: Observation) -> Command:
        """Advance one control step and return the next command.

        Raises:
            ValueError: if no subtask is active or the observation is not finite.
        """
        st = self.state
        if st.subtask is None:
            raise ValueError("no active subtask: call set_subtask() first")
        if not (np.all(np.isfinite(obs.ee_pos)) and np.all(np.isfinite(obs.ee_quat))
                and math.isfinite(obs.gripper_width)):
            raise ValueError(f"non-finite observation: {obs}")
        embed = self._embed(obs)
        out, st.cache = self.net.step(embed, st.cache)
        st.steps += 1
        st.steps_in_subtask += 1
        return self._command(obs, out)

    def _embed(self, obs: Observation) -> torch.Tensor:
        st, cfg = self.state, self.cfg
        visual = st.visual if st.visual is not None else torch.zeros(cfg.visual_dim)
        kp = torch.from_numpy(keypoint_features(st.keypoints, obs.ee_pos, cfg))[None, None]
        pr = torch.from_numpy(proprio_features(obs.ee_pos, obs.ee_quat, obs.gripper_width, st.steps_in_subtask,
                                               cfg))[None, None]
        return self.net.embed(visual[None, None], st.skill_id, st.code_ids, kp, pr)

    def _command(self, obs: Observation, out: dict[str, torch.Tensor]) -> Command:
        delta = out["delta"][0, 0].double().numpy() * self.cfg.delta_scale
        relative = quat_to_matrices(np.asarray(obs.ee_quat))[0] @ rot6d_to_matrix(
            out["rot6d"][0, 0].double()).numpy()
        return Command(
            target_pos=np.asarray(obs.ee_pos, np.float64) + delta,
            target_quat=matrix_to_quat(relative),
            gripper=float(torch.sigmoid(out["gripper"][0, 0, 0])),
            progress=float(torch.sigmoid(out["progress"][0, 0, 0])),
            failure_probability=float(torch.sigmoid(out["failure"][0, 0, 0])),
        )
