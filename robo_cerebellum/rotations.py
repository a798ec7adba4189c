"""Rotation helpers for the policy: quaternions (x, y, z, w), 6D representation, geodesic angle."""

from __future__ import annotations

import numpy as np
import torch


def quat_to_matrices(q: np.ndarray) -> np.ndarray:
    """Vectorised :func:`robo_common.geometry.quat_to_matrix`: ``(N, 4)`` quaternions to ``(N, 3, 3)``."""
    q = np.asarray(q, float).reshape(-1, 4)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def quat_to_rot6d(q: np.ndarray) -> np.ndarray:
    """Return the 6D rotation representation (first two matrix columns, concatenated) of quaternions.

    Accepts ``(4,)`` or ``(N, 4)``; returns ``(6,)`` or ``(N, 6)``.
    """
    q = np.asarray(q, float)
    mats = quat_to_matrices(q)
    out = np.concatenate([mats[:, :, 0], mats[:, :, 1]], axis=1)
    return out[0] if q.ndim == 1 else out


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt a ``(..., 6)`` tensor into rotation matrices ``(..., 3, 3)`` (Zhou et al. 2019)."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Per-element rotation angle (rad) between rotation matrices ``(..., 3, 3)``."""
    rel = r1.transpose(-1, -2) @ r2
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return torch.acos(cos)
