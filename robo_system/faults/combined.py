"""``bogus_state_combined``: bogus robot states on top of a failure hold, a ``/sim/reset`` and a cancel."""

from __future__ import annotations

import time

import numpy as np

from robo_common import constants as C
from robo_system.faults.harness import Harness, judge
from robo_system.faults.judging import Row
from robo_system.faults.scenarios import bogus_named, spray_bogus

SPRAY_S = 2.0
"""How long the bogus states are sprayed in each phase."""


def _frozen(h: Harness, t0: float, t1: float, tol_m: float = 1e-6) -> tuple[bool, int]:
    """Whether the targets between ``t0`` and ``t1`` stay put (and the gripper command too); how many there were."""
    targets = [p for t, (p, _) in h.rec["target"] if t0 < t < t1]
    grips = {g for t, g in h.rec["gripper"] if t0 < t < t1}
    return len(targets) > 20 and float(np.ptp(np.array(targets), axis=0).max()) < tol_m and len(grips) <= 1, \
        len(targets)


def _states_after(h: Harness, t0: float) -> set[int]:
    return {int(s.state) for t, s in h.rec["status"] if t > t0}


def _failure_hold(h: Harness) -> dict:
    """The expert's plan with a grasp offset misses its grasp: bogus states during the failure hold."""
    n0 = len(h.rec["failure"])
    h.start_task(perturb="grasp_offset", started=(1, 3))
    failed = h.spin(60.0, lambda: len(h.rec["failure"]) > n0)
    h.spin(0.5)  # the hold settles on the measured pose
    t0, m = time.monotonic(), h.mark()
    spray_bogus(h, SPRAY_S)
    frozen, n = _frozen(h, t0, time.monotonic())
    states = _states_after(h, t0)
    return {"failure reported": failed, "held through the spray": frozen, "targets": n,
            "no RUNNING during the hold": 1 not in states, "no new failure": len(h.rec["failure"]) == n0 + 1,
            "named": bogus_named(h.details(m))}


def _cancel(h: Harness) -> dict:
    """A cancel, then bogus states: the frozen command stays frozen."""
    from std_msgs.msg import String

    h.start_task()
    h.spin(0.5)
    t_cancel = time.monotonic()
    h.pub["cancel"].publish(String(data="fault-suite"))
    cancelled = h.spin(2.0, lambda: any(t > t_cancel and s.state == 5 for t, s in h.rec["status"]))
    t0, m = time.monotonic(), h.mark()
    spray_bogus(h, SPRAY_S)
    frozen, n = _frozen(h, t_cancel + 0.05, time.monotonic(), 1e-9)
    return {"CANCELLED": cancelled, "frozen through the spray": frozen, "targets": n,
            "no RUNNING after the cancel": 1 not in _states_after(h, t0), "named": bogus_named(h.details(m))}


def _reset(h: Harness) -> dict:
    """A plan running, bogus states, and a ``/sim/reset`` (the arm jumps to its rest pose) in the middle."""
    plan_id = h.start_task()
    h.spin(2.0)  # the arm leaves its rest pose: the reset moves it back, a jump
    m = h.mark()
    req = h.client._reset_type.Request(seed=C.DEMO_SEED + 1, split=C.DEMO_SPLIT, family=C.DEMO_FAMILY, perturb="")
    future: list = []

    def reset_midway(n: int) -> None:
        if n == 100:
            future.append(h.client.reset_client.call_async(req))

    spray_bogus(h, SPRAY_S * 2, reset_midway)
    done = h.spin(30.0, lambda: bool(future) and future[0].done())
    h.spin(1.0)
    text = h.details(m)
    held = [s for _, s in h.since(m, "status") if s.plan_id == plan_id and s.state == 4]
    return {"reset answered": done and future[0].result().success, "jump noticed": "jumped" in text,
            "held after the jump": bool(held), "named": bogus_named(text)}


def bogus_state_combined(h: Harness) -> Row:
    """Bogus states (1e9, NaN, wrong frame, out of order; bad joint states) during a failure hold, a cancel and
    a reset."""
    row = Row("bogus_state_combined", "bogus poses and joint states refused with their reasons during a failure "
                                      "hold, a cancel and a /sim/reset: the hold and the cancel stay frozen, the "
                                      "reset's jump holds at the new pose, every command inside the envelope")
    mark = h.mark()
    phases = {"failure hold": _failure_hold(h), "cancel": _cancel(h), "reset": _reset(h)}
    ok = all(v for p in phases.values() for k, v in p.items() if k not in ("targets", "named")) and all(
        len(p["named"]) >= 5 for p in phases.values())
    measured = " / ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in p.items()) for name, p in phases.items())
    return judge(row, ok, measured, h, mark, {"phases": phases})


__all__ = ["bogus_state_combined"]
