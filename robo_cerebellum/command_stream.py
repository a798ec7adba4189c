"""What the control loop sends each tick (ROS-free, thread-safe): the policy's latest safe target, or a hold.

The policy thread hands each step's safe command to :meth:`CommandStream.update`; the control thread
asks :meth:`CommandStream.next` for the command of its tick. Between policy steps the target is
blended in from the previous one over ``interpolation_s`` (0: at once, as in the demonstrations).

Two holds are decided here, on the control thread's own monotonic clock, so they do not wait for
the next policy step and also work under ``use_sim_time`` (when a frozen simulator stops the
simulated clock, and with it the policy thread):

* stale robot state: no state for ``state_timeout_s`` holds the last command sent, arm and gripper;
* a jump of the measured pose (robot reset or re-homed): :meth:`jump` holds at the new pose from the
  next tick on, and a policy command computed before the jump is dropped;
* an operator's cancel: :meth:`hold_now` freezes arm and gripper at the last command sent from the
  next tick on, before the policy thread has even seen the cancel; policy commands are not sent
  (their statuses are) until :meth:`clear` (a new plan).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from robo_common.geometry import slerp


@dataclass(frozen=True)
class TickCommand:
    """One control tick's command; ``status`` is the policy status to publish after it (or None)."""

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    stale: bool = False
    status: tuple | None = None
    cancelled_by: str | None = None
    """Who cancelled, on the first tick of a :meth:`CommandStream.hold_now` hold (else None)."""


class CommandStream:
    """The latest target, its predecessor for blending, the gripper command and the stale-state hold."""

    def __init__(self, state_timeout_s: float, interpolation_s: float = 0.0) -> None:
        """Start with no target: nothing is sent until the first policy step or jump."""
        if not state_timeout_s > 0:
            raise ValueError(f"state_timeout_s must be > 0, got {state_timeout_s!r}")
        self.state_timeout_s = float(state_timeout_s)
        self.interpolation_s = max(0.0, float(interpolation_s))
        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._target_time = 0.0
        self._gripper = 1.0
        self._last_sent: tuple[np.ndarray, np.ndarray, float] | None = None
        self._pending_status: tuple | None = None
        self._jumped = False
        self._frozen = False
        self._cancelled_by: str | None = None
        self.state_time = -math.inf  # monotonic arrival time of the latest accepted robot state

    def clear(self) -> None:
        """Forget the target (a new plan starts from the measured pose); ends a :meth:`hold_now` hold."""
        with self._lock:
            self._target = self._previous = None
            self._frozen = False

    def hold_now(self, by: str) -> bool:
        """Freeze arm and gripper at the last command sent, from the next tick on, until :meth:`clear`.

        Policy commands handed over meanwhile are not sent (a step computed before the policy thread
        saw the cancel would move the arm on); their statuses still are. A :meth:`jump` still moves the
        hold to the new pose. The next tick carries ``by`` in :attr:`TickCommand.cancelled_by`. Returns
        False when nothing was sent yet (nothing to freeze: the first command then holds).
        """
        with self._lock:
            self._frozen, self._cancelled_by, self._pending_status = True, by, None
            if self._last_sent is None:
                return False
            pos, quat, gripper = self._last_sent
            self._target = self._previous = (pos.copy(), quat.copy())
            self._gripper = gripper
            return True

    @property
    def frozen(self) -> bool:
        """True while a :meth:`hold_now` hold lasts."""
        return self._frozen

    def jump(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """The robot jumped: hold ``pos``/``quat`` (already inside the workspace box) from the next tick on."""
        with self._lock:
            self._target = self._previous = (np.asarray(pos, float).copy(), np.asarray(quat, float).copy())
            self._last_sent = None
            self._jumped = True

    def take_jump(self) -> bool:
        """True once after :meth:`jump` (the policy thread then re-anchors its executor)."""
        with self._lock:
            jumped, self._jumped = self._jumped, False
            return jumped

    def update(self, pos: np.ndarray, quat: np.ndarray, gripper: float | None, running: bool, now: float,
               measured: tuple[np.ndarray, np.ndarray], status: tuple | None) -> bool:
        """Hand over one policy step's safe command; returns False if it was dropped (a jump came first).

        ``running``: the step moves the arm (blend from where the command is now); otherwise it holds
        (no blending: the hold is where the arm must stay). ``status`` is published right after the
        first tick that sends this command.
        """
        with self._lock:
            if self._jumped:
                return False
            if self._frozen:  # an operator hold: only the status goes out
                self._pending_status = status
                if self._target is None:  # nothing was sent before the cancel: hold this (a hold) command
                    self._target = self._previous = (np.asarray(pos, float), np.asarray(quat, float))
                return True
            current = self._blend(now) if self._target is not None else measured
            self._previous = current if running else (pos, quat)
            self._target = (np.asarray(pos, float), np.asarray(quat, float))
            self._target_time = now
            if gripper is not None:
                self._gripper = float(gripper)
            self._pending_status = status
            return True

    def next(self, now: float) -> TickCommand | None:
        """The command of the control tick at ``now`` (None before the first target)."""
        with self._lock:
            if self._target is None:
                return None
            stale = self._last_sent is not None and now - self.state_time > self.state_timeout_s
            if stale:
                pos, quat, gripper = self._last_sent
                status = None
            else:
                pos, quat = self._blend(now)
                gripper = self._gripper
                status, self._pending_status = self._pending_status, None
            self._last_sent = (pos, quat, gripper)
            by, self._cancelled_by = self._cancelled_by, None
            return TickCommand(pos, quat, gripper, stale, status, by)

    def _blend(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        alpha = 1.0 if self.interpolation_s <= 0 else min(1.0, (now - self._target_time) / self.interpolation_s)
        (p0, q0), (p1, q1) = self._previous, self._target
        return p0 + alpha * (p1 - p0), slerp(q0, q1, alpha)
