"""Lock-step simulation: simulated time stops at every multiple of a period until the controller answers.

``sim_node`` with ``lockstep_period_s`` > 0 advances physics up to the next multiple of the period
(the cerebellum's policy period, 0.05 s), then holds until an ``/robo/execution_status`` stamped at
that time (or later) arrives, or until ``timeout_s`` of wall-clock time has passed. The controller
then sees the world exactly at its own rate, whatever the machine's load. ROS-free: the node feeds
it status stamps and the clocks.
"""

from __future__ import annotations

import math
from typing import Literal

EPS = 1e-6
"""Tolerance (in periods and seconds) of "at a lock-step point" and "answered"."""


class Lockstep:
    """Where simulated time must stop, and whether the controller has answered there."""

    def __init__(self, period_s: float, timeout_s: float) -> None:
        """Stop every ``period_s`` simulated seconds, for at most ``timeout_s`` wall-clock seconds each."""
        if not (math.isfinite(period_s) and period_s > 0 and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"lockstep_period_s and lockstep_timeout_s must be > 0, got {period_s}, {timeout_s}")
        self.period = period_s
        self.timeout = timeout_s
        self.answered = -1.0
        """Latest controller status stamp (simulated seconds)."""
        self.timeouts = 0
        """Lock-step points passed without an answer."""
        self._waiting_since: float | None = None

    def answer(self, stamp_s: float) -> None:
        """The controller published a status stamped ``stamp_s`` (simulated seconds)."""
        self.answered = max(self.answered, stamp_s)

    def state(self, sim_time: float, now: float) -> Literal["go", "hold", "timeout"]:
        """At simulated time ``sim_time`` and wall-clock ``now``: ``hold`` while a lock-step point waits for
        its answer, ``timeout`` once (then going on) when the wait is over, else ``go``."""
        if abs(sim_time / self.period - round(sim_time / self.period)) > EPS:
            return "go"
        if self.answered >= sim_time - EPS:
            self._waiting_since = None
            return "go"
        if self._waiting_since is None:
            self._waiting_since = now
        if now - self._waiting_since > self.timeout:
            self.timeouts += 1
            self._waiting_since = None
            return "timeout"
        return "hold"

    def step(self, sim_time: float, dt: float) -> float:
        """``dt``, shortened so that simulated time stops at the next lock-step point."""
        return min(dt, (math.floor(sim_time / self.period + EPS) + 1) * self.period - sim_time)
