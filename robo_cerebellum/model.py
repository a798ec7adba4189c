"""The cerebellum network: visual encoder, subtask/keypoint/proprio fusion, SSM backbone, heads.

``forward`` runs whole sequences in parallel (training: the Mamba-2 chunked scan); ``step`` runs
one control step with an explicit cache (inference: constant cost per step for Mamba-2, a
growing KV cache for the transformer baseline).

Why Mamba-2 (transformers ``Mamba2Model``) rather than Mamba-1 (``MambaModel``): without the CUDA
kernels, Mamba-1's reference path scans time in a Python loop; backpropagating through 400 steps
of a 128x2 model took 188 s per batch of 16 on this CPU, against 2.4 s for Mamba-2's chunked
(SSD) scan. Both are selective state-space models with a fixed-size recurrent state.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch
from torch import nn

from robo_cerebellum.config import CerebellumConfig

HEAD_SIZES = {"delta": 3, "rot6d": 6, "gripper": 1, "progress": 1, "failure": 1}
"""Heads: target offset from the measured position (scaled), target rotation relative to the measured
orientation (6D), gripper, subtask progress and failure logits."""


class VisualEncoder(nn.Module):
    """A small CNN over the 4-channel RGB-D image: ``(N, 4, S, S) -> (N, visual_dim)``."""

    def __init__(self, cfg: CerebellumConfig) -> None:
        """Build the layers for ``cfg.image_size`` inputs."""
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, 16, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GELU(),
        )
        side = cfg.image_size
        for _ in range(4):
            side = (side + 1) // 2
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, cfg.visual_dim),
                                  nn.LayerNorm(cfg.visual_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images."""
        return self.proj(self.net(images))


NO_TOKENS = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
"""The backbones read embeddings, never tokens: no special token ids (else transformers warns that its
defaults lie outside the one-entry vocabulary)."""


def mamba_kernels() -> str:
    """Which Mamba-2 scan runs: the CUDA kernels of ``mamba_ssm`` / ``causal_conv1d`` where installed, else
    transformers' PyTorch reference (the only one on a CPU; what every figure in bench/ measures).

    Without the kernels transformers warns at the first step that it falls back; the fallback is the design
    here, so that warning is silenced and this says it instead (``cerebellum_node`` logs it at start-up).
    """
    if importlib.util.find_spec("mamba_ssm") and importlib.util.find_spec("causal_conv1d"):
        return "mamba_ssm + causal_conv1d kernels"
    logging.getLogger("transformers.integrations.hub_kernels").setLevel(logging.ERROR)
    return "PyTorch reference scan (mamba_ssm / causal_conv1d not installed)"


def _backbone(cfg: CerebellumConfig) -> nn.Module:
    if cfg.backbone == "mamba2":
        from transformers import Mamba2Config, Mamba2Model

        mamba_kernels()
        return Mamba2Model(Mamba2Config(
            hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers, state_size=cfg.state_size,
            expand=2, head_dim=cfg.head_dim, num_heads=2 * cfg.hidden_size // cfg.head_dim, n_groups=1,
            chunk_size=cfg.chunk_size, conv_kernel=4, vocab_size=1, use_cache=True, **NO_TOKENS,
        ))
    from transformers import GPT2Config, GPT2Model

    return GPT2Model(GPT2Config(
        n_embd=cfg.hidden_size, n_layer=cfg.num_layers, n_head=max(1, cfg.hidden_size // 32),
        n_positions=cfg.max_positions, vocab_size=1, use_cache=True, **NO_TOKENS,
    ))


class CerebellumNet(nn.Module):
    """Fuses per-step inputs into one embedding, runs the backbone, and decodes the heads."""

    def __init__(self, cfg: CerebellumConfig) -> None:
        """Build the network described by ``cfg``."""
        super().__init__()
        self.cfg = cfg
        self.visual = VisualEncoder(cfg)
        self.skill = nn.Embedding(len(cfg.skills), 32)
        self.code = nn.EmbeddingBag(cfg.code_buckets, 32, mode="mean", padding_idx=0)
        fused = cfg.visual_dim + 64 + cfg.keypoint_dim + cfg.proprio_dim
        self.fuse = nn.Sequential(nn.Linear(fused, 2 * cfg.hidden_size), nn.GELU(),
                                  nn.Linear(2 * cfg.hidden_size, cfg.hidden_size))
        self.backbone = _backbone(cfg)
        self.head = nn.Sequential(nn.LayerNorm(cfg.hidden_size), nn.Linear(cfg.hidden_size, cfg.hidden_size),
                                  nn.GELU(), nn.Linear(cfg.hidden_size, sum(HEAD_SIZES.values())))
        # The rotation head predicts the target relative to the measured orientation: start at identity.
        with torch.no_grad():
            start = HEAD_SIZES["delta"]
            self.head[-1].bias[start:start + 6] = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            self.head[-1].weight[start:start + 6] *= 0.1

    def embed(self, visual: torch.Tensor, skill: torch.Tensor, code: torch.Tensor, keypoints: torch.Tensor,
              proprio: torch.Tensor) -> torch.Tensor:
        """Fuse ``(..., D_i)`` inputs (skill ``(...)``, code ``(..., K)``) into ``(..., hidden)``."""
        lead = skill.shape
        code_emb = self.code(code.reshape(-1, code.shape[-1])).reshape(*lead, -1)
        x = torch.cat([visual, self.skill(skill), code_emb, keypoints, proprio], dim=-1)
        return self.fuse(x)

    def decode(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split the head output into named tensors (logits for gripper, progress, failure)."""
        out = self.head(hidden)
        parts = torch.split(out, list(HEAD_SIZES.values()), dim=-1)
        return dict(zip(HEAD_SIZES, parts, strict=True))

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Run whole sequences ``(B, T, hidden)`` in parallel."""
        kwargs: dict[str, Any] = {"inputs_embeds": embeds}
        if attention_mask is not None and self.cfg.backbone == "transformer":
            kwargs["attention_mask"] = attention_mask
        hidden = self.backbone(**kwargs, use_cache=False).last_hidden_state
        return self.decode(hidden)

    def step(self, embed: torch.Tensor, cache: Any) -> tuple[dict[str, torch.Tensor], Any]:
        """Run one step ``(B, 1, hidden)`` with the backbone cache (None at the start)."""
        out = self.backbone(inputs_embeds=embed, cache_params=cache, use_cache=True) \
            if self.cfg.backbone == "mamba2" else \
            self.backbone(inputs_embeds=embed, past_key_values=cache, use_cache=True)
        new_cache = out.cache_params if self.cfg.backbone == "mamba2" else out.past_key_values
        return self.decode(out.last_hidden_state), new_cache


def target_rotation(measured6d: torch.Tensor, relative6d: torch.Tensor) -> torch.Tensor:
    """Absolute target rotation matrices: the measured orientation composed with the predicted relative one."""
    from robo_cerebellum.rotations import rot6d_to_matrix

    return rot6d_to_matrix(measured6d) @ rot6d_to_matrix(relative6d)
