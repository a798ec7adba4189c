"""Typed configuration of the cerebellum policy; saved as ``config.json`` beside the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BACKBONES = ("mamba2", "transformer")

SKILLS = ("pick", "place", "push", "move_to", "open_gripper", "close_gripper", "done")
"""Skill ids known to the policy (index = embedding row; unknown skills are refused)."""

KEYPOINT_SLOTS = ("grasp", "place", "push_start", "push_end")
"""Keypoint roles, each with a fixed input slot."""


@dataclass
class CerebellumConfig:
    """Shape, inputs and training-independent constants of the policy.

    Attributes:
        hidden_size: Width of the backbone (and of the fused per-step input embedding).
        num_layers: Backbone depth.
        backbone: ``mamba2`` (transformers ``Mamba2Model``) or ``transformer`` (a GPT-2 of the same
            width and depth, the causal baseline with a KV cache used by the benchmark).
        state_size: SSM state size per head (Mamba-2).
        head_dim: SSM head dimension (Mamba-2); ``2 * hidden_size`` must be divisible by it.
        chunk_size: Chunk length of the parallel (training) scan.
        max_positions: Longest sequence of the transformer baseline.
        image_size: Square size the RGB-D image is resized to before the visual encoder.
        visual_dim: Size of the cached visual feature.
        code_buckets: Hash buckets of the subtask code tokens.
        code_tokens: Code tokens kept per subtask.
        code_vocabulary: The words of the subtask code the policy was trained on (the training plans'
            words, written by ``train``). A word outside it (a held-out colour) is left out of the code
            input: hashed, it lands on a bucket whose embedding never received a gradient ("cyan") or on a
            training word's ("purple" on "done"), and pushes of a purple or cyan block went sideways.
            Empty: every word is hashed (checkpoints from before).
        policy_hz: Rate the policy was trained at (one step per control period of the data).
        workspace_center: Centre used to normalise positions (m, base frame).
        workspace_scale: Scale used to normalise positions (m).
        delta_scale: Scale of the predicted target offset from the measured end effector (m).
        depth_center: Depth normalisation centre (m).
        depth_scale: Depth normalisation scale (m).
        progress_done: Predicted progress at which a subtask counts as finished.
        target_lead_s: The pose and gripper the policy learns to command are the demonstration's this long (s)
            after the step it sees (within the same subtask). 0: the same step's, as at 20 Hz. At 200 Hz the
            same step's target leads the measured pose by ~2 mm, close to the arm's steady-state error, and
            the policy learned "a little ahead of where the hand is": it stalled 1 cm above a place point
            with the gripper command at 0.49. 0.05 s ahead is the lead a 20 Hz policy commands.
        camera_hz: Rate of the camera frames in the training data (Hz; written by ``train`` from the
            recordings). ``cerebellum_node`` feeds the policy frames at this rate (``policy_image_hz``).
            0: unknown (every frame).
        time_input: Feed the time spent in the current subtask as an input. Off by default: with it the
            policy learned to close and open the gripper on a clock (the demonstrations' timing) rather
            than on where the hand is, and in closed loop, where the arm lags the expert, it released
            blocks 7-13 cm above the place point.
    """

    hidden_size: int = 128
    num_layers: int = 2
    backbone: str = "mamba2"
    state_size: int = 32
    head_dim: int = 32
    chunk_size: int = 64
    max_positions: int = 12288
    image_size: int = 48
    visual_dim: int = 128
    code_buckets: int = 256
    code_tokens: int = 12
    code_vocabulary: tuple[str, ...] = ()
    policy_hz: float = 20.0
    workspace_center: tuple[float, float, float] = (0.5, 0.0, 0.15)
    workspace_scale: float = 0.3
    delta_scale: float = 0.05
    depth_center: float = 1.0
    depth_scale: float = 0.5
    progress_done: float = 0.95
    target_lead_s: float = 0.0
    camera_hz: float = 0.0
    time_input: bool = False
    skills: tuple[str, ...] = SKILLS
    keypoint_slots: tuple[str, ...] = KEYPOINT_SLOTS
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workspace_center = tuple(float(v) for v in self.workspace_center)  # type: ignore[assignment]
        self.skills = tuple(self.skills)
        self.keypoint_slots = tuple(self.keypoint_slots)
        self.code_vocabulary = tuple(self.code_vocabulary)
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        for name in ("hidden_size", "num_layers", "state_size", "head_dim", "chunk_size", "image_size",
                     "visual_dim", "code_buckets", "code_tokens", "max_positions"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CerebellumConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if (2 * self.hidden_size) % self.head_dim:
            raise ValueError(f"2*hidden_size ({2 * self.hidden_size}) must be divisible by head_dim ({self.head_dim})")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        for name in ("policy_hz", "workspace_scale", "delta_scale", "depth_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CerebellumConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.target_lead_s <= 1.0:
            raise ValueError(f"target_lead_s must be in [0, 1] s, got {self.target_lead_s}")
        if not self.camera_hz >= 0.0:
            raise ValueError(f"camera_hz must be >= 0, got {self.camera_hz!r}")
        if not 0.5 <= self.progress_done <= 1.0:
            raise ValueError(f"progress_done must be in [0.5, 1], got {self.progress_done}")
        if len(self.workspace_center) != 3:
            raise ValueError(f"workspace_center must have 3 values, got {self.workspace_center!r}")

    @property
    def proprio_dim(self) -> int:
        """Size of the proprioception vector: position 3, rotation 6D 6, gripper 1 (+ time in subtask 1)."""
        return 11 if self.time_input else 10

    @property
    def keypoint_dim(self) -> int:
        """Size of the keypoint vector: per slot base-frame xyz, xyz relative to the end effector, present."""
        return 7 * len(self.keypoint_slots)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON-friendly data."""
        data = asdict(self)
        data["workspace_center"] = list(self.workspace_center)
        data["skills"] = list(self.skills)
        data["keypoint_slots"] = list(self.keypoint_slots)
        data["code_vocabulary"] = list(self.code_vocabulary)
        return data

    def save(self, path: Path) -> None:
        """Write ``config.json``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> CerebellumConfig:
        """Read ``config.json``; unknown keys are an error naming them."""
        data = json.loads(Path(path).read_text())
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown cerebellum config keys {unknown}")
        return cls(**data)
