"""Scenarios of DDS loss and discovery: a plan publisher replaced and a late-joining cerebellum (transient local
re-delivery), 30 % of the sensor messages dropped, and a burst of bad instructions as brain_node comes up."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from robo_common import constants as C
from robo_common.plan_types import PlanData
from robo_system.faults.harness import Harness, judge
from robo_system.faults.judging import Row
from robo_system.faults.relay import relay_remaps

RELAY_PREFIX = "/faults/raw"
"""Where sim_node publishes its sensor topics in ``sensor_drop`` (the relay forwards them to the real names)."""
SENSOR_DROP = 0.3
"""The share of sensor messages the relay drops."""
CONTROL_RATE_HZ = 200.0
"""cerebellum_node's control rate (config/cerebellum.yaml): the commands a second it should send."""


# ---------------------------------------------------------------- plan_publisher_restart
def _running(h: Harness, t0: float, plan_id: str, revision: int | None = None) -> bool:
    """Whether a status after ``t0`` says the cerebellum took plan ``plan_id`` (at ``revision``): running, done,
    holding, or failed (a plan replayed after its object moved fails the keypoint check at once)."""
    return any(t > t0 and s.plan_id == plan_id and (revision is None or s.revision == revision)
               and s.state in (1, 2, 3, 4) for t, s in h.rec["status"])


def _last_plan(h: Harness, t0: float) -> tuple[str, int]:
    """(plan id, revision) of the last status after ``t0`` that is about a plan (not a refusal)."""
    rows = [s for t, s in h.rec["status"] if t > t0 and s.plan_id and "refused" not in s.detail]
    return (rows[-1].plan_id, int(rows[-1].revision)) if rows else ("", -1)


def _publisher(h: Harness, name: str, plan: PlanData) -> None:
    """A process of its own that publishes ``plan`` latched on ``/robo/plan`` and stays up."""
    path = h.cfg.log_dir / f"{name}.json"
    path.write_text(json.dumps(plan.to_dict()))
    h.spawn(name, [sys.executable, "-m", "robo_system.faults.plan_publisher", str(path)])


def _restart_cerebellum(h: Harness, timeout: float = 90.0) -> tuple[float, str, int]:
    """SIGKILL cerebellum_node, start a new one (a late joiner on ``/robo/plan``) and wait until it runs a plan;
    returns when it was started and the (plan id, revision) it ends with 2 s after its first plan."""
    h.kill("cerebellum_node")
    h.restart("cerebellum_node")
    t0 = time.monotonic()
    h.spin(timeout, lambda: _last_plan(h, t0)[0] != "")
    h.spin(2.0)
    return (t0, *_last_plan(h, t0))


def _latched_pair(h: Harness, plan: PlanData, publish: Callable[[], None], newest: str) -> str | bool:
    """Publish ``plan`` (newer than the other live publisher's), wait until it is followed, restart the
    cerebellum: True when the late joiner ends on ``newest``, else what it ended on."""
    t = time.monotonic()
    publish()
    if not h.spin(30.0, lambda: _running(h, t, plan.plan_id)):
        return f"{plan.plan_id} not followed"
    _, pid, rev = _restart_cerebellum(h)
    return True if pid == newest else f"ended on {pid} rev {rev}"


def plan_publisher_restart(h: Harness) -> Row:
    """The plan's publisher goes away and new publisher processes appear; restarted cerebellums join late."""
    from robo_stack.msg import Plan

    from robo_common.ros.qos import qos_for_topic

    row = Row("plan_publisher_restart",
              "a revision from a new publisher process is followed after the first publisher went away; a restarted "
              "cerebellum_node gets the latched plan (transient local) from the publisher alive, not a dead one's; "
              "with plans latched by two live publishers it runs the newer (a stop newer than a plan, a plan newer "
              "than a stop); every command inside the envelope")
    first = h.start_task()
    mark = h.mark()
    expert, now_ns = h.client.expert, lambda: h.client.get_clock().now().nanoseconds
    checks: dict[str, object] = {}
    # 1. a new process publishes revision 1; the publisher of revision 0 goes away
    t = time.monotonic()
    _publisher(h, "plan_publisher_1", replace(expert, plan_id=first, revision=1, stamp_ns=now_ns()))
    checks["revision 1 from a new publisher followed"] = h.spin(30.0, lambda: _running(h, t, first, 1))
    h.client.destroy_publisher(h.client.pub_plan)
    h.spin(0.5)
    # 2. a late joiner: only publisher 1 holds the plan
    _, pid, rev = _restart_cerebellum(h)
    checks["restarted cerebellum got rev 1 (latched)"] = (pid, rev) == (first, 1)
    # 3. a restarted brain: publisher 1 dies (SIGKILL), a new process publishes a new plan id
    h.kill("plan_publisher_1")
    t, second = time.monotonic(), f"{first}-replanned"
    _publisher(h, "plan_publisher_2", replace(expert, plan_id=second, revision=0, stamp_ns=now_ns()))
    checks["new plan from the new publisher followed"] = h.spin(30.0, lambda: _running(h, t, second))
    _, pid, rev = _restart_cerebellum(h)
    checks["restarted cerebellum got the new plan, not the dead publisher's"] = (pid, rev) == (second, 0)
    # 4. two live publishers, each latching a plan: the newer must win whichever DDS re-delivers last
    h.client.pub_plan = h.client.create_publisher(Plan, C.TOPIC_PLAN, qos_for_topic(C.TOPIC_PLAN))
    h.spin(2.0, lambda: h.client.pub_plan.get_subscription_count() > 0)
    stop = PlanData(f"stop-{first}", 0, "", "stop", [], stamp_ns=now_ns())  # newer than publisher 2's plan
    checks["stop (client) newer than plan (publisher 2)"] = _latched_pair(h, stop, lambda: h.client.pub_plan.publish(
        h.client._plan_to_msg(stop)), stop.plan_id)
    third = replace(expert, plan_id=f"{first}-third", revision=0, stamp_ns=now_ns())  # newer than the stop
    checks["plan (publisher 3) newer than stop (client)"] = _latched_pair(
        h, third, lambda: _publisher(h, "plan_publisher_3", third), third.plan_id)
    ok = all(v is True for v in checks.values())
    measured = "; ".join(f"{k}: {v}" for k, v in checks.items())
    return judge(row, ok, measured, h, mark, {"checks": checks}, allow_exit=("plan_publisher_1",))


# ---------------------------------------------------------------- sensor_drop
def _relay_counts(h: Harness) -> dict:
    """The relay's last report of forwarded and dropped messages per topic."""
    lines = [ln for ln in h.log_text("fault_relay.log").splitlines() if ln.startswith("relay: ")]
    return json.loads(lines[-1][len("relay: "):]) if lines else {}


def sensor_drop(h: Harness) -> Row:
    """The simulator's sensor topics through a relay that drops a seeded 30 % of the messages; one episode."""
    row = Row("sensor_drop", f"{SENSOR_DROP:.0%} of /robo/ee_pose, /joint_states and camera messages dropped "
                             "(seeded relay): the episode runs to its end (or holds and resumes); every command "
                             "inside the envelope; no crash")
    h.spawn("fault_relay", [sys.executable, "-m", "robo_system.faults.relay", "--drop", str(SENSOR_DROP),
                            "--seed", "7", "--prefix", RELAY_PREFIX])
    plan_id = h.start_task(plan_timeout=90.0)
    mark, t0 = h.mark(), time.monotonic()
    ended = h.spin(120.0, lambda: any(s.plan_id == plan_id and s.state in (2, 3) for _, s in h.since(mark, "status")))
    t_end = time.monotonic()
    duration = t_end - t0
    h.spin(1.5)  # the episode's success check and the relay's next report
    statuses = [s for t, s in h.since(mark, "status") if s.plan_id == plan_id and t <= t_end]
    holds = [s for s in statuses if s.state == 4 and "robot state is" in s.detail]
    final = statuses[-1].state if statuses else -1
    success = bool(h.client.episode.get("success", False))
    counts = _relay_counts(h)
    sent = {t: c["forwarded"] + c["dropped"] for t, c in counts.items()}
    share = {t: round(c["dropped"] / sent[t], 3) for t, c in counts.items() if sent[t]}
    n_cmd = sum(1 for t, _ in h.since(mark, "target") if t <= t_end)
    cmd_share = n_cmd / (duration * CONTROL_RATE_HZ)
    dropped_ok = bool(share) and all(abs(v - SENSOR_DROP) < 0.05 for k, v in share.items() if sent[k] > 100)
    measured = (f"dropped {share}; plan ended {'SUCCEEDED' if final == 2 else 'FAILED' if final == 3 else 'not'} "
                f"after {duration:.1f} s; episode success {success}; {n_cmd} commands ({cmd_share:.0%} of "
                f"{CONTROL_RATE_HZ:.0f} Hz); stale-state HOLDING reports {len(holds)}; failures "
                f"{len(h.since(mark, 'failure'))}")
    extra = {"relay": counts, "drop_share": share, "success": success, "duration_s": round(duration, 1),
             "command_share": round(cmd_share, 3), "holds": len(holds)}
    return judge(row, ended and dropped_ok and final == 2, measured, h, mark, extra)


# ---------------------------------------------------------------- instruction_burst_first
def _rejected_sizes(h: Harness, mark: dict[str, int], sizes: list[int]) -> list[int]:
    """Which of the instruction ``sizes`` a brain status after ``mark`` names as rejected."""
    text = " ".join(" ".join([str(s.get("detail", "")), *map(str, s.get("recent_errors", []))])
                    for _, s in h.since(mark, "brain"))
    return [n for n in sizes if f"{n} characters" in text]


def instruction_burst_first(h: Harness, burst: int = 5) -> Row:
    """A burst of oversize instructions as brain_node comes up: before its subscription matched, and at once
    after (as ``ros2 topic pub`` does, which waits for a matching subscription)."""
    from std_msgs.msg import String

    row = Row("instruction_burst_first", f"a burst of {burst} 100 kB instructions published the moment the "
                                         "subscription matched: each, the first included, rejected by name on "
                                         "/robo/brain_status and the log")
    mark, pub, t0 = h.mark(), h.pub["instruction"], time.monotonic()
    early = [200_000 + i for i in range(burst)]  # published before discovery: DDS (volatile) delivers none
    matched_before = pub.get_subscription_count()
    for n in early:
        pub.publish(String(data="x" * n))
    matched = h.spin(120.0, lambda: pub.get_subscription_count() > 0)
    t_match = time.monotonic() - t0
    sizes = [100_000 + i for i in range(burst)]
    for n in sizes:
        pub.publish(String(data="x" * n))
    h.spin(20.0, lambda: len(_rejected_sizes(h, mark, sizes)) == burst)
    h.spin(1.0)
    on_status = _rejected_sizes(h, mark, sizes)
    log = h.log_text("brain_node*.log")
    in_log = [n for n in sizes if f"{n} characters" in log]
    early_seen = [n for n in early if f"{n} characters" in log]
    ok = matched and on_status == sizes and in_log == sizes
    measured = (f"matched after {t_match:.1f} s; burst after the match: {len(on_status)}/{burst} named on the status "
                f"topic (first: {sizes[0] in on_status}), {len(in_log)}/{burst} in the log; burst before the match "
                f"({matched_before} subscriptions matched then): {len(early_seen)}/{burst} reached the brain")
    return judge(row, ok, measured, h, mark, {"match_s": round(t_match, 2), "early_reached": len(early_seen),
                                              "status": on_status, "log": in_log})


__all__ = ["instruction_burst_first", "plan_publisher_restart", "relay_remaps", "sensor_drop"]
