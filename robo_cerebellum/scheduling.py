"""When the cerebellum's two threads run (ROS-free): the policy's step times, the control loop's
deadlines, a real-time priority for the control thread, and rate limits of repeated reports.

The control loop runs on absolute monotonic deadlines ``k / control_rate_hz``, not on an executor
timer: rclpy's executor dispatches timers from Python between subscription callbacks and drops late
ticks (an A/B on this machine: 196-197 Hz with the timer, 199 Hz with the thread); under
``use_sim_time`` a ROS-time timer would also stop while a lock-stepped simulator waits for the
status this loop sends. Its p99 period beside sim_node on 2 cores (~10 ms) came down to ~5.5 ms
with a real-time priority for the thread and the events executor for the callbacks (bench/README.md).
"""

from __future__ import annotations

import math
import os


class PolicySchedule:
    """The policy thread's step times: every ``period`` on the monotonic clock, or, under ``use_sim_time``,
    on the stamps of the robot state (the first state stamped a period after the previous step's:
    once per simulated policy period and on fresh state, as in training, however fast the simulator
    runs). It never tries to catch up on missed steps."""

    def __init__(self, period: float, sim_time: bool) -> None:
        """Start with the first step due at once."""
        if not period > 0:
            raise ValueError(f"policy period must be > 0, got {period!r}")
        self.period, self.sim_time = float(period), bool(sim_time)
        self.next_time = -math.inf

    def wait_s(self, t: float) -> float:
        """How long to wait before stepping at time ``t`` (state stamp or monotonic); 0: step now.

        Under sim time the wait is a short poll (the simulator may run slower or faster than the wall clock).
        """
        if not math.isfinite(t):  # no robot state yet
            return 0.002
        if t + 1e-6 < self.next_time:
            return min(self.next_time - t, 0.002) if self.sim_time else self.next_time - t
        if self.sim_time:  # on the simulated-time grid k / policy_hz (what a lock-stepped sim_node waits on)
            self.next_time = (math.floor(t / self.period + 1e-6) + 1) * self.period
        elif t - self.next_time < self.period:  # on time (or late by less than a period): keep the grid
            self.next_time += self.period
        else:  # the first step, or after a stall: restart the grid from now, no catch-up steps
            self.next_time = t + self.period
        return 0.0


class StatusThrottle:
    """Which policy steps' statuses go out: every change of ``key`` (state, subtask, detail) at once, else the
    first step of each ``period`` on the grid ``k * period`` of ``t`` (state stamps under sim time, what a
    lock-stepped simulator waits on; monotonic time otherwise). A policy slower than ``1 / period`` is not thinned."""

    def __init__(self, period: float) -> None:
        """Let the first status through."""
        self.period, self.key, self.next_time = max(0.0, float(period)), None, -math.inf

    def due(self, key: object, t: float) -> bool:
        """True when the status of the step at ``t`` with ``key`` goes out (and counts as sent)."""
        if key == self.key and t + 1e-6 < self.next_time:
            return False
        self.key = key
        self.next_time = (math.floor(t / self.period + 1e-6) + 1) * self.period if self.period > 0 else -math.inf
        return True


class ControlSchedule:
    """Absolute deadlines ``k * period``: a late tick does not shift the ones after it; after a stall of
    more than one period the schedule restarts from now instead of firing a burst of catch-up ticks."""

    def __init__(self, period: float, now: float) -> None:
        """Start the schedule at ``now``."""
        if not period > 0:
            raise ValueError(f"control period must be > 0, got {period!r}")
        self.period, self.deadline = float(period), float(now)

    def next_delay(self, now: float) -> float:
        """Advance to the next deadline; returns how long to sleep until it (0: late, tick now)."""
        self.deadline += self.period
        delay = self.deadline - now
        if delay < -self.period:
            self.deadline = now
        return max(delay, 0.0)

    def extra_tick(self) -> None:
        """An extra tick happened before the deadline (e.g. a cancel): the next one stays on its deadline."""
        self.deadline -= self.period


def raise_priority(priority: int) -> str:
    """Put the calling thread on SCHED_FIFO ``priority`` (Linux); returns "" or why it stays at normal priority.

    The control thread sleeps most of the time, so a real-time priority costs the rest of the machine
    little and keeps its wake-ups on time when the cores are busy (beside sim_node on 2 cores: period p99
    8-11 ms at normal priority, 6.7-7.5 ms with it). It still needs the GIL.
    """
    if priority <= 0:
        return "control_thread_priority 0: normal scheduling"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(priority, 99)))
    except (AttributeError, OSError) as exc:
        return (f"SCHED_FIFO {priority} refused: {exc}; grant CAP_SYS_NICE or an rtprio limit (ulimit -r) for "
                "steadier periods")
    return ""


class Throttle:
    """At most one event per ``interval_s`` (a report repeated while a condition lasts)."""

    def __init__(self, interval_s: float) -> None:
        """Let the first event through."""
        self.interval_s, self.last = float(interval_s), -math.inf

    def ready(self, now: float) -> bool:
        """True (and counts as sent) when ``interval_s`` has passed since the last event let through, or when
        ``now`` is before it (a clock that went back: stamps of a restarted simulator or a replayed bag)."""
        if now - self.last >= self.interval_s or now < self.last:
            self.last = now
            return True
        return False

    def reset(self) -> None:
        """The next event goes through."""
        self.last = -math.inf


class FrameThinner:
    """Which camera frames reach the policy: one every ``1 / rate_hz`` by the frames' own stamps, the first at
    once. A policy trained on 5 Hz frames saw its visual feature change every 40 steps at 200 Hz; fed every
    frame of a 15 Hz camera it meets a rhythm it was never trained on. ``rate_hz`` 0: every frame.

    A frame is due when its stamp is at least 0.9 periods after the last one let through (so a 15 Hz camera
    gives every third frame for 5 Hz, not every fourth); a stamp that goes back (a restarted simulator, a
    replayed bag) lets its frame through and restarts the count.
    """

    def __init__(self, rate_hz: float) -> None:
        """Let the first frame through."""
        if not rate_hz >= 0.0:
            raise ValueError(f"policy image rate must be >= 0 Hz, got {rate_hz!r}")
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._throttle = Throttle(0.9 * self.period)

    def due(self, stamp: float | None) -> bool:
        """True (and counts as let through) when the frame stamped ``stamp`` (s) goes to the policy; a frame
        without a stamp always does."""
        if self.period <= 0.0 or stamp is None or not math.isfinite(stamp):
            return True
        return self._throttle.ready(stamp)
