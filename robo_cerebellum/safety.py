"""The safety envelope every end-effector command passes before it reaches the robot.

Checks, in order: NaN/inf rejection, stale inputs (no fresh state or image within a deadline:
hold), the workspace box (clamp), and the per-step translation and rotation limits relative to
the last command sent (clamp). Every verdict says what it did and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from robo_common.geometry import quat_angle, slerp


class Verdict(StrEnum):
    """What the envelope did with a command."""

    OK = "ok"
    CLAMPED = "clamped"
    REJECTED = "rejected"
    HOLD = "hold"


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the envelope (see ``config/cerebellum.yaml``).

    Attributes:
        workspace_min: Lower corner of the allowed TCP box (m, base frame).
        workspace_max: Upper corner of the allowed TCP box.
        max_speed: Largest speed of the commanded target (m/s); the per-tick step limit is
            ``max_speed * dt`` for the tick's period ``dt``.
        max_angular_speed: Largest angular speed of the commanded target (rad/s).
        state_timeout_s: Hold when the last robot state is older than this.
        image_timeout_s: Hold when the last camera image is older than this (0 disables).
    """

    workspace_min: tuple[float, float, float] = (0.2, -0.45, 0.005)
    workspace_max: tuple[float, float, float] = (0.8, 0.45, 0.6)
    max_speed: float = 0.6
    max_angular_speed: float = 3.0
    state_timeout_s: float = 0.1
    image_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")
        for name in ("max_speed", "max_angular_speed", "state_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SafetyConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.image_timeout_s < 0:
            raise ValueError(f"SafetyConfig.image_timeout_s must be >= 0, got {self.image_timeout_s}")


@dataclass
class SafeCommand:
    """The command to send and the envelope's verdict."""

    pos: np.ndarray
    quat: np.ndarray
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


class SafetyEnvelope:
    """Filters commands against the limits; remembers the last command sent."""

    def __init__(self, config: SafetyConfig) -> None:
        """Start with no command sent yet (the first one is anchored at the measured pose)."""
        self.config = config
        self.last_pos: np.ndarray | None = None
        self.last_quat: np.ndarray | None = None
        self.counts = {v.value: 0 for v in Verdict}

    def reset(self, pos: np.ndarray, quat: np.ndarray) -> bool:
        """Anchor the step limits and the hold at a pose (the measured one, when a plan starts or after a hold).

        The anchor is clamped into the workspace box: a hold is a command like any other, and a measured
        pose outside the box (a robot parked outside it, or a bogus state) must never become a target
        outside it. A non-finite or malformed pose keeps the previous anchor; returns False then.
        """
        pos, quat = np.asarray(pos, float), np.asarray(quat, float)
        if pos.shape != (3,) or quat.shape != (4,) or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))) \
                or np.linalg.norm(quat) < 1e-6:
            return False
        self.last_pos = np.clip(pos, self.config.workspace_min, self.config.workspace_max)
        self.last_quat = quat / np.linalg.norm(quat)
        return True

    def hold(self, measured_pos: np.ndarray, measured_quat: np.ndarray, reason: str) -> SafeCommand:
        """A command that keeps the last safe target (or the measured pose, clamped into the box, if none was sent).

        Raises:
            ValueError: no command was sent yet and the measured pose is not usable (nothing safe to hold).
        """
        if (self.last_pos is None or self.last_quat is None) and not self.reset(measured_pos, measured_quat):
            raise ValueError(f"no safe pose to hold: no command sent yet and the measured pose "
                             f"{np.asarray(measured_pos).tolist()} is not usable")
        self.counts[Verdict.HOLD] += 1
        return SafeCommand(self.last_pos.copy(), self.last_quat.copy(), Verdict.HOLD, [reason])

    def inside(self, pos: np.ndarray, margin: float = 1e-9) -> bool:
        """True when ``pos`` is finite and inside the workspace box (grown by ``margin`` metres)."""
        pos = np.asarray(pos, float)
        lo = np.asarray(self.config.workspace_min) - margin
        hi = np.asarray(self.config.workspace_max) + margin
        return bool(pos.shape == (3,) and np.all(np.isfinite(pos)) and np.all(pos >= lo) and np.all(pos <= hi))

    def filter(self, pos: np.ndarray, quat: np.ndarray, measured_pos: np.ndarray, measured_quat: np.ndarray,
               state_age_s: float, image_age_s: float, dt: float) -> SafeCommand:
        """Check one command for a tick of ``dt`` seconds; returns what to send."""
        cfg = self.config
        pos, quat = np.asarray(pos, float), np.asarray(quat, float)
        if pos.shape != (3,) or quat.shape != (4,) or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            self.counts[Verdict.REJECTED] += 1
            held = self.hold(measured_pos, measured_quat, "")
            return SafeCommand(held.pos, held.quat, Verdict.REJECTED, [f"non-finite or malformed target {pos} {quat}"])
        if np.linalg.norm(quat) < 1e-6:
            self.counts[Verdict.REJECTED] += 1
            held = self.hold(measured_pos, measured_quat, "")
            return SafeCommand(held.pos, held.quat, Verdict.REJECTED, ["zero quaternion"])
        if state_age_s > cfg.state_timeout_s:
            return self.hold(measured_pos, measured_quat, f"robot state is {state_age_s * 1e3:.0f} ms old")
        if cfg.image_timeout_s and image_age_s > cfg.image_timeout_s:
            return self.hold(measured_pos, measured_quat, f"camera image is {image_age_s * 1e3:.0f} ms old")
        return self._limit(pos, quat / np.linalg.norm(quat), measured_pos, measured_quat, dt)

    def _limit(self, pos: np.ndarray, quat: np.ndarray, measured_pos: np.ndarray, measured_quat: np.ndarray,
               dt: float) -> SafeCommand:
        cfg, reasons = self.config, []
        max_step, max_rot = cfg.max_speed * dt, cfg.max_angular_speed * dt
        if (self.last_pos is None or self.last_quat is None) and not self.reset(measured_pos, measured_quat):
            self.counts[Verdict.REJECTED] += 1
            raise ValueError(f"no safe anchor for the step limits: measured pose {np.asarray(measured_pos).tolist()}")
        boxed = np.clip(pos, cfg.workspace_min, cfg.workspace_max)
        if not np.allclose(boxed, pos):
            reasons.append(f"target {np.round(pos, 3).tolist()} outside the workspace box, clamped")
        step = boxed - self.last_pos
        dist = float(np.linalg.norm(step))
        if dist > max_step:
            boxed = self.last_pos + step * (max_step / dist)
            reasons.append(f"translation step {dist * 1e3:.1f} mm > {max_step * 1e3:.1f} mm, clamped")
        angle = quat_angle(self.last_quat, quat)
        if angle > max_rot:
            quat = slerp(self.last_quat, quat, max_rot / angle)
            reasons.append(f"rotation step {math.degrees(angle):.1f} deg > {math.degrees(max_rot):.1f} deg, clamped")
        self.last_pos, self.last_quat = boxed, quat
        verdict = Verdict.CLAMPED if reasons else Verdict.OK
        self.counts[verdict] += 1
        return SafeCommand(boxed.copy(), quat.copy(), verdict, reasons)
