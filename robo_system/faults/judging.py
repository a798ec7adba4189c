"""Judging of the fault scenarios (ROS-free): the envelope every command must stay in, and small helpers."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

WORKSPACE = (np.array([0.2, -0.45, 0.005]), np.array([0.8, 0.45, 0.6]))
"""The cerebellum's default workspace box (config/cerebellum.yaml)."""
HOLD_GOAL_S = 0.1
"""The goal for the time from the last robot state to the HOLDING report (p99 over the trials)."""
MAX_STEP_M = 0.6 * 0.05
"""Largest change of the target between two messages: max_speed (0.6 m/s) x one policy period (50 ms)."""


@dataclass
class Row:
    """One scenario's verdict."""

    scenario: str
    expected: str
    measured: str = ""
    passed: bool = False
    details: dict = field(default_factory=dict)


# ---------------------------------------------------------------- judging (ROS-free)
def envelope_violations(positions: np.ndarray, poses: np.ndarray | None = None, box: tuple = WORKSPACE,
                        max_step: float = MAX_STEP_M, at_pose_m: float | None = None) -> list[str]:
    """What in a stream of commanded positions ``(N, 3)`` breaks the envelope: non-finite values, positions
    outside the box, steps larger than ``max_step``. A command within ``at_pose_m`` (default ``max_step``) of
    the measured pose (``poses``, one per command) is not a jump however far the previous command was: the
    envelope anchors a new plan or a hold at the measured pose (after a reset, the arm is elsewhere)."""
    at_pose_m = max_step if at_pose_m is None else at_pose_m
    out: list[str] = []
    pos = np.asarray(positions, float).reshape(-1, 3)
    if len(pos) == 0:
        return out
    bad = ~np.all(np.isfinite(pos), axis=1)
    if bad.any():
        out.append(f"{int(bad.sum())} non-finite targets")
    lo, hi = box
    outside = np.any((pos < lo - 1e-6) | (pos > hi + 1e-6), axis=1) & ~bad
    if outside.any():
        worst = float(np.max(np.maximum(lo - pos[outside], pos[outside] - hi)))
        out.append(f"{int(outside.sum())} targets outside the workspace box (by up to {worst:.3f} m)")
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    big = steps > max_step + 1e-6
    gap = np.full(len(steps), np.nan)
    if poses is not None and big.any():
        gap = np.linalg.norm(pos[1:] - np.asarray(poses, float).reshape(-1, 3)[1:], axis=1)
        big &= ~(gap <= at_pose_m)
    if big.any():
        worst = int(np.flatnonzero(big)[np.argmax(steps[big])])
        where = f"command {worst + 1} of {len(pos)}: {np.round(pos[worst], 3).tolist()} -> " \
                f"{np.round(pos[worst + 1], 3).tolist()}"
        near = "no measured pose near it" if np.isnan(gap[worst]) else \
            f"nearest measured pose {gap[worst] * 1e3:.0f} mm"
        out.append(f"{int(big.sum())} steps above {max_step * 1e3:.0f} mm (largest {steps[big].max() * 1e3:.1f} mm, "
                   f"{where}, {near})")
    return out


def first_after(times: list[float], t0: float) -> float | None:
    """The first time in ``times`` after ``t0`` (None if none)."""
    later = [t for t in times if t > t0]
    return min(later) if later else None


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` percentile of ``values`` (None when empty)."""
    return float(np.percentile(values, q)) if values else None


def invalid_utf8_string_cdr(payload: bytes) -> bytes:
    """The serialized CDR of a ``std_msgs/String`` whose bytes are ``payload`` (need not be UTF-8)."""
    data = payload + b"\x00"
    cdr = b"\x00\x01\x00\x00" + struct.pack("<I", len(data)) + data
    return cdr + b"\x00" * ((4 - len(cdr) % 4) % 4)


