"""The gate every robot state passes before the cerebellum uses it (ROS-free).

A measured end-effector pose becomes the policy's observation, the failure monitor's evidence and,
on a hold, the pose the arm is told to keep. A state that is not in the base frame, not finite,
implausibly far from the workspace or older than one already used is therefore refused with a
reason, never used. A state that is plausible but far from the previous one (the robot was reset,
re-homed or moved while no state arrived) is accepted and reported as a jump, so the executor can
drop the plan and hold where the robot now is instead of pulling it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo_common.constants import BASE_FRAME


@dataclass(frozen=True)
class StateGateConfig:
    """Limits of the state gate (see ``config/cerebellum.yaml``).

    Attributes:
        workspace_min: Lower corner of the workspace box (m, base frame), as the safety envelope's.
        workspace_max: Upper corner of the workspace box.
        state_margin_m: A measured pose farther than this outside the workspace box is implausible
            (refused); the robot may legitimately stand a little outside the box it is commanded in.
        jump_m: A pose farther than this from the previous accepted one, plus ``jump_speed`` times
            the time between their stamps, is a jump (a reset or re-homing), reported with the state; when
            the stamps went back or lie more than ``clock_restart_s`` apart, farther than ``jump_m`` alone.
        jump_speed: Fastest plausible end-effector speed (m/s) for the jump test.
        frame_id: The frame robot states must be in (an empty frame is taken as this one).
        clock_restart_s: A state stamped before the last accepted one is refused, unless no state
            was accepted for this long (s, arrival time): the robot's clock restarted (a restarted
            driver or simulator), and its states are taken from then on.
    """

    workspace_min: tuple[float, float, float] = (0.2, -0.45, 0.005)
    workspace_max: tuple[float, float, float] = (0.8, 0.45, 0.6)
    state_margin_m: float = 0.3
    jump_m: float = 0.05
    jump_speed: float = 2.0
    frame_id: str = BASE_FRAME
    clock_restart_s: float = 1.0

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")
        for name in ("state_margin_m", "jump_m", "jump_speed", "clock_restart_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"StateGateConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one state: accepted (maybe as a jump) or refused with a reason."""

    accepted: bool
    reason: str = ""
    jump_m: float = 0.0
    kind: str = ""

    @property
    def jumped(self) -> bool:
        """True for an accepted state far from the previous one."""
        return self.accepted and self.jump_m > 0.0


class StateGate:
    """Checks end-effector poses and gripper widths; remembers the last accepted pose and stamp."""

    def __init__(self, config: StateGateConfig | None = None) -> None:
        """Start with no state accepted yet."""
        self.config = config or StateGateConfig()
        self.last_pos: np.ndarray | None = None
        self.last_stamp = -math.inf
        self.last_arrival = -math.inf
        self.refused = 0

    def reset(self) -> None:
        """Forget the last state (the next one is never a jump or out of order)."""
        self.last_pos, self.last_stamp, self.last_arrival = None, -math.inf, -math.inf

    def check_pose(self, frame_id: str, pos: np.ndarray, quat: np.ndarray, stamp_s: float,
                   arrival_s: float) -> GateResult:
        """Check one measured end-effector pose stamped ``stamp_s`` (header time, s) that arrived at
        ``arrival_s`` (a monotonic clock, s)."""
        cfg = self.config
        pos, quat = np.asarray(pos, float), np.asarray(quat, float)
        reason, kind = "", ""
        if frame_id not in ("", cfg.frame_id):
            reason, kind = f"robot state in frame {frame_id!r}, expected {cfg.frame_id!r}", "frame"
        elif pos.shape != (3,) or quat.shape != (4,) or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            reason, kind = f"non-finite robot state {pos.tolist()} {quat.tolist()}", "non-finite"
        elif not 0.5 < np.linalg.norm(quat) < 1.5:
            reason = f"robot state quaternion {quat.tolist()} is not a rotation (norm {np.linalg.norm(quat):.3g})"
            kind = "rotation"
        else:
            lo = np.asarray(cfg.workspace_min) - cfg.state_margin_m
            hi = np.asarray(cfg.workspace_max) + cfg.state_margin_m
            if np.any(pos < lo) or np.any(pos > hi):
                kind = "outside"
                reason = (f"robot state {np.round(pos, 3).tolist()} is more than {cfg.state_margin_m} m outside the "
                          f"workspace box {list(cfg.workspace_min)}..{list(cfg.workspace_max)}")
            elif stamp_s < self.last_stamp and arrival_s - self.last_arrival < cfg.clock_restart_s:
                reason = f"robot state stamped {stamp_s:.3f} s is older than the last one ({self.last_stamp:.3f} s)"
                kind = "out-of-order"
        if reason:
            self.refused += 1
            return GateResult(False, reason, kind=kind)
        jump = 0.0
        if self.last_pos is not None:
            dist = float(np.linalg.norm(pos - self.last_pos))
            # motion is plausible over the time the robot's own clock says passed; when that clock restarted
            # or jumped ahead (a restarted or long-paused robot) any move beyond jump_m is a jump: the plan's
            # state no longer describes the robot, and holding the old target would pull it back
            # the robot's own clock says how long it had to move (a reset in a simulator takes wall time but
            # no simulated time); unstamped states (stamp 0) allow no more than jump_m between two of them
            dt = stamp_s - self.last_stamp
            if not 0.0 <= dt <= cfg.clock_restart_s:  # a restarted clock, or a long gap on the robot's clock
                dt = 0.0
            if dist > cfg.jump_m + cfg.jump_speed * dt:
                jump = dist
        self.last_pos, self.last_stamp, self.last_arrival = pos.copy(), stamp_s, arrival_s
        return GateResult(True, f"robot state jumped {jump:.3f} m" if jump else "", jump)

    @staticmethod
    def check_width(width: float | None) -> GateResult:
        """Check a gripper opening (0 closed .. 1 open) read from ``/joint_states``."""
        if width is None:
            return GateResult(False, "no finger joints in the joint state", kind="no-fingers")
        if not math.isfinite(width) or not -0.1 <= width <= 1.1:
            return GateResult(False, f"gripper opening {width!r} is not in [0, 1]", kind="width")
        return GateResult(True)


class RefusalSummary:
    """Refused states gathered between two reports: a count and the first reason of each kind.

    A bogus publisher can send hundreds of states a second with several faults; the status topic
    gets one line a second that names every kind seen, not just the one that happened to come last.
    """

    def __init__(self) -> None:
        """Nothing gathered yet."""
        self.count = 0
        self.reasons: dict[str, str] = {}

    def add(self, verdict: GateResult) -> None:
        """Count one refused state."""
        self.count += 1
        self.reasons.setdefault(verdict.kind or verdict.reason, verdict.reason)

    def take(self) -> str:
        """The summary line ("" when nothing was refused), and start gathering anew."""
        if not self.count:
            return ""
        text = f"ignored {self.count} robot state(s): " + "; ".join(self.reasons.values())
        self.count, self.reasons = 0, {}
        return text
