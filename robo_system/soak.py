"""``robo-stack bench soak``: the stack over DDS for M minutes, episodes back to back, resources sampled.

The nodes are started as :mod:`robo_system.stack` starts them (:class:`StackProcesses`, one process each)
with ``brain="oracle"``: no ``brain_node``, the client forwards the simulator's expert plan, so the soak
is not bound by the brain model's CPU on a small machine and episodes follow each other quickly (the
brain process itself is not soaked). Episodes run back to back (``client.reset`` with a new seed each
time, the family cycling over pick_place, stack, rearrange, push; ``client.run``).

Every ``sample_s`` (10 s) each node process and its child processes (sim_node's render process) are
read from ``/proc/<pid>/``: RSS (``status`` VmRSS), CPU % over the interval (``stat`` utime + stime),
open file descriptors (``fd/``) and threads (``status`` Threads).

A probe node in the soak process (its own events executor on a thread) subscribes to
``/robo/cerebellum_diagnostics``, ``/robo/ee_target``, ``/robo/plan`` and ``/robo/execution_status``:

* per minute, the p99 of the cerebellum's **control loop period as the loop itself measures it**: the node
  publishes a histogram of each second's tick periods (:mod:`robo_cerebellum.loop_stats`), the probe merges
  the seconds received in a minute and takes the p99 of the merged histogram (exact to 0.1 ms);
* per minute, the p99 of the interval between consecutive ``/robo/ee_target`` messages as they arrive
  at this subscriber (wall clock at the callback): inter-arrival at a subscriber in another process,
  so it includes DDS delivery and the probe's own scheduling (reported, not judged);
* every plan the client publishes (episode plans and the empty "stop" plans) against the plans the
  probe received, and against the plan ids that appear in the cerebellum's statuses (it started them);
* per episode plan, the ExecutionStatus messages received against the count the cerebellum logged as
  published for that plan id (``execution_status published: plan_id=... count=...``, one line per plan
  in ``cerebellum_node.log``), plus the received rate and the largest gaps of the stream.

:func:`judge`: RSS growth < 5 % per process from the first sample after the first minute to the last,
every minute's control period p99 <= 1.2x the first minute's (the subscriber's inter-arrival when the
cerebellum publishes no diagnostics), no plan lost.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)

FAMILIES = ("pick_place", "stack", "rearrange", "push")
RSS_GROWTH_LIMIT_PCT = 5.0
P99_RATIO_LIMIT = 1.2
CLIENT_LABEL = "soak_client"
STATUS_COUNT_RE = re.compile(r"execution_status published: plan_id=(\S+) count=(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ------------------------------------------------------------------ /proc sampling
def read_proc(pid: int, proc: Path = Path("/proc")) -> dict:
    """RSS (MB), threads, open fds and CPU seconds (user + system) of ``pid`` from ``/proc/<pid>/``.

    Raises:
        FileNotFoundError / ProcessLookupError: the process is gone.
    """
    base = proc / str(pid)
    status = {}
    for line in (base / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    stat = (base / "stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) is fields[0]
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return {"rss_mb": int(status.get("VmRSS", "0 kB").split()[0]) / 1024.0,
            "threads": int(status.get("Threads", "0")),
            "fds": len(os.listdir(base / "fd")),
            "cpu_s": (utime + stime) / CLK_TCK}


def child_pids(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every descendant of ``pid`` (from the parent pid, field 4 of ``/proc/*/stat``)."""
    parents: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in sorted(parents.get(todo.pop(), [])):
            out.append(child)
            todo.append(child)
    return out


def proc_name(pid: int, proc: Path = Path("/proc")) -> str:
    """A short name: ``resource_tracker`` / ``mp_child`` for Python multiprocessing helpers (from the command
    line; sim_node's render process is an ``mp_child``), else ``/proc/<pid>/comm``, or "?"."""
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if "resource_tracker" in cmdline:
            return "resource_tracker"
        if "multiprocessing" in cmdline:
            return "mp_child"
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def load_average(proc: Path = Path("/proc")) -> float | None:
    """The machine's 1-minute load average (``/proc/loadavg``)."""
    try:
        return float((proc / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ProcSampler:
    """Samples named processes; CPU % is over the interval since the previous sample of the same process."""

    def __init__(self, pids: dict[str, int], proc: Path = Path("/proc")) -> None:
        """``pids``: label -> pid (add children with :meth:`add_children`)."""
        self.pids, self.proc = dict(pids), proc
        self._last: dict[str, tuple[float, float]] = {}
        self.samples: list[dict] = []
        self.load: list[tuple[float, float | None]] = []  # (t, the machine's load average) at each sample

    def add_children(self) -> None:
        """Add the descendants of every process as ``<label>/<comm>:<pid>``."""
        for label, pid in list(self.pids.items()):
            if "/" in label:
                continue
            for child in child_pids(pid, self.proc):
                if child not in self.pids.values():
                    self.pids[f"{label}/{proc_name(child, self.proc)}:{child}"] = child

    def sample(self, t: float) -> list[dict]:
        """One row per live process at ``t`` (seconds since the start): label, pid, rss_mb, cpu_pct, fds, threads."""
        rows = []
        for label, pid in self.pids.items():
            try:
                r = read_proc(pid, self.proc)
            except (OSError, ValueError, IndexError):
                continue
            prev = self._last.get(label)
            cpu_pct = None if prev is None or t <= prev[0] else 100.0 * (r["cpu_s"] - prev[1]) / (t - prev[0])
            self._last[label] = (t, r["cpu_s"])
            rows.append({"t": round(t, 3), "process": label, "pid": pid, "rss_mb": round(r["rss_mb"], 2),
                         "cpu_pct": None if cpu_pct is None else round(cpu_pct, 1), "fds": r["fds"],
                         "threads": r["threads"]})
        self.samples += rows
        self.load.append((round(t, 3), load_average(self.proc)))
        return rows


# ------------------------------------------------------------------ statistics and the verdict
def windowed_p99(arrivals: np.ndarray | list[float], duration_s: float, window_s: float = 60.0) -> list[dict]:
    """Per window of ``window_s`` over ``[0, duration_s)``: the p99, p50 and max (ms) of the intervals between
    consecutive arrivals (seconds since the start) whose later arrival falls in the window."""
    t = np.asarray(arrivals, dtype=float)
    gaps, ends = np.diff(t), t[1:]
    out = []
    n_windows = max(1, int(np.ceil(duration_s / window_s - 1e-9)))
    for k in range(n_windows):
        lo, hi = k * window_s, min((k + 1) * window_s, duration_s)
        g = gaps[(ends >= lo) & (ends < hi)]
        out.append({"window": k, "start_s": lo, "end_s": hi, "messages": int(g.size),
                    "p50_ms": float(np.percentile(g, 50) * 1e3) if g.size else None,
                    "p99_ms": float(np.percentile(g, 99) * 1e3) if g.size else None,
                    "max_ms": float(g.max() * 1e3) if g.size else None})
    return out


def control_period_windows(diagnostics: list[tuple[float, dict]], duration_s: float,
                           window_s: float = 60.0) -> list[dict]:
    """Per window of ``window_s`` over ``[0, duration_s)``: the control loop's period p50/p99/max (ms) from the
    cerebellum's once-a-second diagnostics ``(receive time since the start, message)`` received in the window
    (their histograms merged), its ticks and the policy steps per second."""
    from robo_cerebellum.loop_stats import merge, percentile_ms

    out = []
    for k in range(max(1, int(np.ceil(duration_s / window_s - 1e-9)))):
        lo, hi = k * window_s, min((k + 1) * window_s, duration_s)
        got = [d for t, d in diagnostics if lo <= t < hi]
        hist = merge(d["period_hist"]["counts"] for d in got)
        maxes = [d["period_max_ms"] for d in got if d.get("period_max_ms") is not None]
        steps = sum(d.get("policy_steps", 0) for d in got)
        span = sum(d.get("window_s", 0.0) for d in got)
        out.append({"window": k, "start_s": lo, "end_s": hi, "seconds": len(got), "ticks": sum(hist.values()),
                    "p50_ms": percentile_ms(hist, 50), "p99_ms": percentile_ms(hist, 99),
                    "max_ms": max(maxes) if maxes else None,
                    "policy_steps_per_s": round(steps / span, 2) if span > 0 else None})
    return out


def rss_growth(samples: list[dict], warmup_s: float = 60.0) -> dict[str, dict]:
    """Per process: RSS at the first sample at or after ``warmup_s``, at the last sample, growth (%) and the
    slope of a straight-line fit over those samples (MB per minute)."""
    out = {}
    for label in dict.fromkeys(s["process"] for s in samples):
        rows = [s for s in samples if s["process"] == label and s["t"] >= warmup_s]
        if len(rows) < 2:
            continue
        first, last = rows[0]["rss_mb"], rows[-1]["rss_mb"]
        t = np.array([r["t"] for r in rows]) / 60.0
        slope = float(np.polyfit(t, [r["rss_mb"] for r in rows], 1)[0]) if np.ptp(t) > 0 else 0.0
        out[label] = {"rss_first_mb": first, "rss_last_mb": last, "rss_max_mb": max(r["rss_mb"] for r in rows),
                      "growth_pct": 100.0 * (last - first) / first if first else 0.0,
                      "slope_mb_per_min": round(slope, 3), "from_s": rows[0]["t"], "to_s": rows[-1]["t"],
                      "fds_first": rows[0]["fds"], "fds_last": rows[-1]["fds"],
                      "threads_first": rows[0]["threads"], "threads_last": rows[-1]["threads"]}
    return out


def judge(growth: dict[str, dict], windows: list[dict], plans_lost: int,
          rss_limit_pct: float = RSS_GROWTH_LIMIT_PCT, p99_ratio: float = P99_RATIO_LIMIT) -> dict:
    """The verdict: RSS growth below ``rss_limit_pct`` for every node process (the soak's own process, which keeps
    every arrival time, is reported but not judged), every window's p99 at most ``p99_ratio`` times the first
    window's, no episode plan lost. Each check says why it failed."""
    growth = {k: v for k, v in growth.items() if not k.startswith(CLIENT_LABEL)}
    over = {k: round(v["growth_pct"], 2) for k, v in growth.items() if v["growth_pct"] >= rss_limit_pct}
    rss_ok = bool(growth) and not over
    p99s = [w["p99_ms"] for w in windows if w["p99_ms"] is not None]
    limit = p99s[0] * p99_ratio if p99s else None
    worse = [w["window"] for w in windows if w["p99_ms"] is not None and w["p99_ms"] > limit]
    p99_ok = bool(p99s) and not worse
    checks = {
        "rss_growth": {"ok": rss_ok, "limit_pct": rss_limit_pct,
                       "why": "" if rss_ok else (f"over the limit: {over}" if over else "fewer than 2 samples after "
                                                 "the first minute")},
        "p99_stable": {"ok": p99_ok, "limit_ms": None if limit is None else round(limit, 3), "ratio": p99_ratio,
                       "why": "" if p99_ok else (f"minutes {[k + 1 for k in worse]} (1-based) over {p99_ratio}x the "
                                                 "first" if worse else "no period measured")},
        "no_plan_lost": {"ok": plans_lost == 0, "lost": plans_lost,
                         "why": "" if plans_lost == 0 else f"{plans_lost} plan(s) not received"},
    }
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}


def rejudge(result: dict) -> dict:
    """Recompute the RSS table and the verdict of a saved report with the current rules (same samples, windows and
    plan counts); the plan check counts episode plans."""
    episode_ids = {e["plan_id"] for e in result["episodes_detail"]}
    lost = [p for p in result["plans"]["lost_ids"] if p in episode_ids]
    stops = [p for p in result["plans"]["lost_ids"] if p.startswith("stop-")]
    result["plans"].update(lost=len(lost), lost_ids=lost)
    result["plans"].setdefault("stop_plans_not_received", len(stops))
    result["rss"] = rss_growth(result["samples"])
    result["verdict"] = judge(result["rss"], judged_windows(result), len(lost))
    return result


def judged_windows(result: dict) -> list[dict]:
    """The per-minute periods the verdict judges: the control loop's own, else the subscriber's inter-arrival."""
    control = result.get("control_period", {}).get("per_minute", [])
    if any(w["p99_ms"] is not None for w in control):
        return control
    return result["ee_target_interarrival"]["per_minute"]


def status_counts_from_log(text: str) -> dict[str, int]:
    """``plan_id -> count`` from the cerebellum's ``execution_status published`` log lines."""
    out: dict[str, int] = {}
    for m in STATUS_COUNT_RE.finditer(text):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def status_stream(arrivals: list[float], duration_s: float, gap_s: float = 0.5) -> dict:
    """Rate of the ExecutionStatus stream and its gaps longer than ``gap_s`` (the cerebellum publishes one status
    per policy step, 20 Hz, whatever its state)."""
    t = np.asarray(arrivals, dtype=float)
    gaps = np.diff(t)
    big = gaps[gaps > gap_s]
    return {"received": int(t.size), "per_s": round(t.size / duration_s, 2) if duration_s > 0 else None,
            "gap_p99_ms": float(np.percentile(gaps, 99) * 1e3) if gaps.size else None,
            "gap_max_ms": float(gaps.max() * 1e3) if gaps.size else None,
            f"gaps_over_{gap_s:g}_s": int(big.size)}


# ------------------------------------------------------------------ the probe
@dataclass
class ProbeData:
    """What the probe received (times: ``time.monotonic()``)."""

    targets: list[float] = field(default_factory=list)
    plans: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    status_times: list[float] = field(default_factory=list)
    statuses_deep: dict[str, int] = field(default_factory=dict)
    """The same topic through a second subscription with a history of 1000 instead of the stack's 10: a status
    this one has and the other lacks was dropped from a full reader history, not lost on the way."""
    diagnostics: list[tuple[float, dict]] = field(default_factory=list)
    """``(receive time, message)`` of the cerebellum's /robo/cerebellum_diagnostics (JSON, once a second)."""


def start_probe(data: ProbeData):  # noqa: ANN201 - (node, executor, thread, stop event)
    """A node on its own events executor thread that fills ``data`` (rclpy must be initialised)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from robo_stack.msg import ExecutionStatus, Plan
    from std_msgs.msg import String

    from robo_common import constants as C
    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import events_executor, spin_until_shutdown

    node = rclpy.create_node(f"robo_stack_soak_probe_{os.getpid()}")
    clock = time.monotonic

    def on_plan(msg: Plan) -> None:
        data.plans[msg.plan_id] = data.plans.get(msg.plan_id, 0) + 1

    def on_status(msg: ExecutionStatus) -> None:
        data.status_times.append(clock())
        data.statuses[msg.plan_id] = data.statuses.get(msg.plan_id, 0) + 1

    node.create_subscription(PoseStamped, C.relative(C.TOPIC_EE_TARGET), lambda _m: data.targets.append(clock()),
                             qos_for_topic(C.TOPIC_EE_TARGET))
    node.create_subscription(Plan, C.relative(C.TOPIC_PLAN), on_plan, qos_for_topic(C.TOPIC_PLAN))
    node.create_subscription(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS), on_status,
                             qos_for_topic(C.TOPIC_EXECUTION_STATUS))
    deep = qos_for_topic(C.TOPIC_EXECUTION_STATUS)
    deep.depth = 1000

    def on_status_deep(msg: ExecutionStatus) -> None:
        data.statuses_deep[msg.plan_id] = data.statuses_deep.get(msg.plan_id, 0) + 1

    node.create_subscription(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS), on_status_deep, deep)
    node.create_subscription(String, C.relative(C.TOPIC_CEREBELLUM_DIAGNOSTICS),
                             lambda m: data.diagnostics.append((clock(), json.loads(m.data))),
                             qos_for_topic(C.TOPIC_CEREBELLUM_DIAGNOSTICS))
    executor = events_executor()
    executor.add_node(node)
    stop = threading.Event()
    thread = threading.Thread(target=spin_until_shutdown, args=(executor, stop, 0.05), name="soak_probe", daemon=True)
    thread.start()
    return node, executor, thread, stop


# ------------------------------------------------------------------ the soak
def run_soak(minutes: float, sample_s: float = 10.0, seed0: int = 400_000, split: str = "seen",
             episode_timeout_s: float = 120.0, log_dir: Path = Path("runs/soak"), warmup_s: float = 60.0,
             window_s: float = 60.0, checkpoint: str = "") -> dict:
    """Run the soak (see the module docstring); returns the report (samples, windows, counts, verdict)."""
    from robo_system.stack import StackConfig, StackProcesses, make_client

    duration_s = minutes * 60.0
    if "ROS_DOMAIN_ID" not in os.environ:  # a private domain, localhost discovery (set before rclpy starts)
        os.environ["ROS_DOMAIN_ID"] = str(random.randint(150, 200))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy

    cfg = StackConfig(brain="oracle", cerebellum_checkpoint=checkpoint, seed=seed0, split=split,
                      family=FAMILIES[0], log_dir=log_dir, log_level="info")
    data = ProbeData()
    published: list[str] = []
    episodes: list[dict] = []
    procs = StackProcesses(cfg)
    procs.start()
    t_wall0 = time.time()
    try:
        with rclpy.init():
            client = make_client(cfg)
            publish = client.pub_plan.publish

            def counted(msg) -> None:  # noqa: ANN001 - robo_stack/Plan
                published.append(msg.plan_id)
                publish(msg)

            client.pub_plan.publish = counted
            probe, executor, thread, stop = start_probe(data)
            try:
                client.reset(seed0, split, FAMILIES[0], procs, timeout=120.0)  # the stack is up and answering
                sampler = ProcSampler({exe: p.pid for exe, p in procs.procs.items()})
                sampler.add_children()
                sampler.pids[CLIENT_LABEL] = os.getpid()
                t0 = time.monotonic()
                next_sample = t0
                k = 0

                def tick() -> None:
                    nonlocal next_sample
                    now = time.monotonic()
                    if now >= next_sample:
                        sampler.sample(now - t0)
                        next_sample += sample_s

                tick()
                original_spin = client.spin_until

                def spin_until(condition, timeout, procs_=None):  # noqa: ANN001, ANN202 - the sampler ticks in every wait
                    return original_spin(lambda: (tick(), condition())[1], timeout, procs_)

                client.spin_until = spin_until
                while time.monotonic() - t0 < duration_s:
                    seed, family = seed0 + 1 + k, FAMILIES[(k + 1) % len(FAMILIES)]
                    e0 = time.monotonic()
                    task = client.reset(seed, split, family, procs)
                    tr = client.run(task["instruction"], episode_timeout_s, procs)
                    plan_id = tr.plans[0].plan_id if tr.plans else (client.expert.plan_id if client.expert else "")
                    episodes.append({"seed": seed, "family": family, "plan_id": plan_id, "success": bool(tr.success),
                                     "end": tr.end_reason, "start_s": round(e0 - t0, 2),
                                     "wall_s": round(time.monotonic() - e0, 2)})
                    LOG.info("episode %d (%s, seed %d): %s in %.1f s", k, family, seed, tr.end_reason,
                             time.monotonic() - e0)
                    k += 1
                    tick()
                client.spin_until = original_spin
                end = time.monotonic()
                sampler.sample(end - t0)
                client.spin_until(lambda: False, 1.0, procs)  # let the last statuses arrive
            finally:
                stop.set()
                thread.join(timeout=2.0)
                executor.shutdown(timeout_sec=1.0)
                probe.destroy_node()
                client.destroy_node()
    finally:
        codes = procs.stop()
    log_text = (log_dir / "cerebellum_node.log").read_text(errors="replace") \
        if (log_dir / "cerebellum_node.log").is_file() else ""
    return report(data, published, episodes, sampler.samples, t0, end, duration_s, status_counts_from_log(log_text),
                  warmup_s, window_s, extra={"minutes": minutes, "sample_s": sample_s, "seed0": seed0, "split": split,
                                             "started_at": t_wall0, "exit_codes": codes, "logs": str(log_dir),
                                             "cores": os.cpu_count(), "load_average": sampler.load})


def report(data: ProbeData, published: list[str], episodes: list[dict], samples: list[dict], t0: float, end: float,
           duration_s: float, status_published: dict[str, int], warmup_s: float = 60.0, window_s: float = 60.0,
           extra: dict | None = None) -> dict:
    """The soak's report from what was received, published and sampled (times: monotonic, ``t0`` the start)."""
    arrivals = np.array(data.targets) - t0
    windows = windowed_p99(arrivals[arrivals >= 0], min(duration_s, end - t0), window_s)
    episode_plans = [e["plan_id"] for e in episodes if e["plan_id"]]
    stop_plans = [p for p in published if p.startswith("stop-")]
    lost_probe = sorted({p for p in episode_plans if p not in data.plans})
    stops_missed = sorted({p for p in stop_plans if p not in data.plans})
    not_started = sorted(p for p in episode_plans if p not in data.statuses)
    per_plan = {p: {"published": status_published.get(p), "received": data.statuses.get(p, 0),
                    "received_depth_1000": data.statuses_deep.get(p, 0)} for p in episode_plans}
    compared = {p: v for p, v in per_plan.items() if v["published"] is not None}
    growth = rss_growth(samples, warmup_s)
    control = control_period_windows([(t - t0, d) for t, d in data.diagnostics if t >= t0],
                                     min(duration_s, end - t0), window_s)
    st = np.array(data.status_times) - t0
    out = {
        "what": "robo-stack bench soak: sim_node + cerebellum_node over DDS (StackConfig(brain='oracle'): no "
                "brain_node, the client publishes the expert's plans), episodes back to back",
        "duration_s": round(end - t0, 1), "episodes": len(episodes),
        "episode_success_rate": round(float(np.mean([e["success"] for e in episodes])), 3) if episodes else None,
        "control_period": {
            "what": "period of the cerebellum's control loop as the loop measures it (monotonic clock at each tick), "
                    "from its once-a-second /robo/cerebellum_diagnostics histograms merged per minute",
            "diagnostics_received": len(data.diagnostics), "per_minute": control},
        "ee_target_interarrival": {
            "what": "interval between consecutive /robo/ee_target messages as received by the soak's probe "
                    "subscriber (wall clock at the callback; includes DDS delivery and the probe's scheduling)",
            "received": int(arrivals.size), "per_minute": windows},
        "plans": {"published": len(published), "episode_plans": len(episode_plans), "stop_plans": len(stop_plans),
                  "received_by_probe": sum(data.plans.get(p, 0) for p in dict.fromkeys(published)),
                  "lost": len(lost_probe), "lost_ids": lost_probe[:20],
                  "stop_plans_not_received": len(stops_missed),
                  "stop_plans_note": "an empty stop plan followed at once by another one (end of an episode, then "
                                     "the next reset) may be replaced in the latched topic's depth-1 history before "
                                     "it is delivered; the latest is what a late subscriber gets",
                  "published_order": published,
                  "episode_plans_without_a_cerebellum_status": len(not_started),
                  "not_started_ids": not_started[:20]},
        "execution_status": {
            **status_stream(list(st[st >= 0]), end - t0),
            "episode_plans_compared": len(compared),
            "published_for_episode_plans": int(sum(v["published"] for v in compared.values())),
            "received_for_episode_plans": int(sum(v["received"] for v in compared.values())),
            "received_for_episode_plans_depth_1000": int(sum(v["received_depth_1000"] for v in compared.values())),
            "plans_with_missing_statuses": {p: v for p, v in compared.items() if v["received"] < v["published"]},
        },
        "rss": growth,
        "samples": samples,
        "episodes_detail": episodes,
    }
    out["verdict"] = judge(growth, judged_windows(out), len(lost_probe))
    out.update(extra or {})
    return out


# ------------------------------------------------------------------ the plot
def plot(result: dict, path: Path) -> Path:
    """RSS, CPU, threads and open fds per process over time; the per-minute p99 of the control loop's period (and of
    /robo/ee_target inter-arrival at a subscriber)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    labels = [lb for lb in dict.fromkeys(s["process"] for s in samples)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    panels = (("rss_mb", "RSS (MB)"), ("cpu_pct", f"CPU (% of one core, per {result.get('sample_s', 10):g} s sample)"),
              ("threads", "threads"))
    for ax, (key, title) in zip(axes.flat[:3], panels, strict=True):
        for label in labels:
            rows = [s for s in samples if s["process"] == label and s[key] is not None]
            ax.plot([r["t"] / 60 for r in rows], [r[key] for r in rows], marker=".", label=label)
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.9))  # below the largest RSS line
    ax = axes[1, 0]  # open fds beside the threads, same colours, dashed
    for line, label in zip(ax.get_lines(), labels, strict=True):
        rows = [s for s in samples if s["process"] == label and s["fds"] is not None]
        ax.plot([r["t"] / 60 for r in rows], [r["fds"] for r in rows], ls="--", color=line.get_color())
    ax.set_title("threads (solid) and open file descriptors (dashed)")
    load = [(t, v) for t, v in result.get("load_average", []) if v is not None]
    if load:
        twin = axes[0, 1].twinx()
        twin.plot([t / 60 for t, _ in load], [v for _, v in load], color="0.5", ls=":", label="machine load average")
        twin.set_ylabel(f"load average ({result.get('cores')} cores)", color="0.4")
        twin.legend(fontsize=8, loc="upper right")
    own = any(w["p99_ms"] is not None for w in result.get("control_period", {}).get("per_minute", []))
    windows = [w for w in judged_windows(result) if w["p99_ms"] is not None]
    ax = axes[1, 1]
    bars = ax.bar([w["window"] + 1 for w in windows], [w["p99_ms"] for w in windows], color="tab:blue",
                  label="p99 (control loop)" if own else "p99")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.plot([w["window"] + 1 for w in windows], [w["p50_ms"] for w in windows], "ko-", label="p50")
    if own:
        sub = [w for w in result["ee_target_interarrival"]["per_minute"] if w["p99_ms"] is not None]
        ax.plot([w["window"] + 1 for w in sub], [w["p99_ms"] for w in sub], "s--", color="tab:orange",
                label="p99 of /robo/ee_target inter-arrival at a subscriber")
    limit = result["verdict"]["checks"]["p99_stable"]["limit_ms"]
    if limit:
        ax.axhline(limit, color="tab:red", ls="--", label="1.2x the first minute's p99")
    ax.set_title("control loop period (the loop's own clock), per minute (ms)" if own
                 else "/robo/ee_target inter-arrival at a subscriber, per minute (ms)")
    ax.set_xlabel("minute")
    top = max([v for line in ax.get_lines() for v in line.get_ydata()] + [w["p99_ms"] for w in windows] + [0.0])
    ax.set_ylim(0, 1.45 * top if top > 0 else None)  # room for the legend above the bars and lines
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    verdict = "PASS" if result["verdict"]["ok"] else "FAIL"
    fig.suptitle(f"robo_stack soak: {result['duration_s'] / 60:.1f} min, {result['episodes']} episodes (oracle "
                 f"plans), verdict {verdict}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(result: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"soak {result['duration_s']:.0f} s, {result['episodes']} episodes, success "
             f"{result['episode_success_rate']}"]
    for label, g in result["rss"].items():
        lines.append(f"  {label:32s} RSS {g['rss_first_mb']:8.1f} -> {g['rss_last_mb']:8.1f} MB "
                     f"({g['growth_pct']:+.2f} %), fds {g['fds_first']} -> {g['fds_last']}, "
                     f"threads {g['threads_first']} -> {g['threads_last']}")
    control = result.get("control_period", {}).get("per_minute", [])
    if any(w["p99_ms"] for w in control):
        p99 = ", ".join(f"{w['p99_ms']:.1f}" if w["p99_ms"] else "-" for w in control)
        lines.append(f"  control loop period p99 per minute (ms, the loop's own clock): {p99}")
    p99 = ", ".join(f"{w['p99_ms']:.2f}" for w in result["ee_target_interarrival"]["per_minute"] if w["p99_ms"])
    lines.append(f"  /robo/ee_target inter-arrival p99 per minute (ms): {p99}")
    pl, st = result["plans"], result["execution_status"]
    lines.append(f"  plans published {pl['published']}, lost {pl['lost']}; statuses received "
                 f"{st['received_for_episode_plans']} (history 1000: {st['received_for_episode_plans_depth_1000']}) "
                 f"of {st['published_for_episode_plans']} published for {st['episode_plans_compared']} episode plans, "
                 f"{st['per_s']} /s, {st['gaps_over_0.5_s']} gaps over 0.5 s")
    for name, c in result["verdict"]["checks"].items():
        lines.append(f"  {name}: {'ok' if c['ok'] else 'FAIL ' + c['why']}")
    lines.append(f"verdict: {'PASS' if result['verdict']['ok'] else 'FAIL'}")
    return "\n".join(lines) + "\n"


def write(result: dict, json_path: Path | None, png_path: Path | None) -> None:
    """Write the JSON report and the plot."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if png_path is not None:
        plot(result, png_path)
