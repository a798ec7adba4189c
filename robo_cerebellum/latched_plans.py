"""Which of the plans re-delivered to a (re)started cerebellum to take (ROS-free).

``/robo/plan`` is latched (reliable, transient local, depth 1 per publisher). A cerebellum that joins
late gets the last plan of *every* live publisher (the brain's plan, an operator's stop plan, a
second planner's), one after the other in an order DDS does not define. Taking the last to arrive
would run whichever publisher was discovered last: a plan stopped since, say. In its first
``window_s`` seconds after the first plan arrived, the cerebellum therefore ignores a plan with
another ``plan_id`` whose header stamp is older than the newest stamped plan it has seen; after
that window arrival order rules again (a restarted robot clock must not block the next plan).
Unstamped plans (stamp 0) are never compared. Revisions of one plan are ordered by the executor.
"""

from __future__ import annotations

import math


class LatchedPlanFilter:
    """Remembers the newest stamped plan of the start-up window and refuses older ones from other publishers."""

    def __init__(self, window_s: float = 2.0) -> None:
        """Nothing seen yet; the window opens at the first plan."""
        self.window_s = window_s
        self.first_arrival = -math.inf
        self.newest: tuple[int, str] | None = None  # (stamp_ns, plan_id)

    def check(self, plan_id: str, stamp_ns: int, arrival_s: float) -> str:
        """"" to take plan ``plan_id`` stamped ``stamp_ns`` that arrived at ``arrival_s`` (monotonic, s), else why
        it is ignored."""
        if self.first_arrival == -math.inf:
            self.first_arrival = arrival_s
        in_window = arrival_s - self.first_arrival <= self.window_s
        newest = self.newest
        if in_window and stamp_ns > 0 and newest is not None and newest[1] != plan_id and stamp_ns < newest[0]:
            return (f"plan {plan_id} ignored: stamped {stamp_ns / 1e9:.3f} s, older than plan {newest[1]} "
                    f"({newest[0] / 1e9:.3f} s); both latched on the plan topic by different publishers")
        if stamp_ns > 0 and (newest is None or stamp_ns >= newest[0] or not in_window):
            self.newest = (stamp_ns, plan_id)
        return ""
