"""The soak's /proc sampling, statistics and verdict (quick: no stack is started; the soak itself is
``bash bench/run_soak.sh``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robo_system.soak import (
    ProbeData,
    ProcSampler,
    child_pids,
    control_period_windows,
    judge,
    load_average,
    plot,
    read_proc,
    rejudge,
    report,
    rss_growth,
    status_counts_from_log,
    status_stream,
    summary,
    windowed_p99,
)


def test_load_average() -> None:
    assert load_average() >= 0.0
    assert load_average(Path("/nonexistent")) is None


def test_read_proc_of_this_process_and_of_a_child() -> None:
    r = read_proc(os.getpid())
    assert r["rss_mb"] > 10 and r["threads"] >= 1 and r["fds"] >= 3 and r["cpu_s"] > 0
    code = "import sys, time\nb = bytearray(80 * 2**20)\nprint(flush=True)\ntime.sleep(30)"  # 80 MB touched
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        assert read_proc(child.pid)["rss_mb"] > 80
    finally:
        child.kill()
        child.wait()
    with pytest.raises(OSError):
        read_proc(child.pid)


def test_read_proc_of_a_fake_proc_tree(tmp_path: Path) -> None:
    base = tmp_path / "42"
    (base / "fd").mkdir(parents=True)
    for k in range(5):
        (base / "fd" / str(k)).touch()
    (base / "status").write_text("Name:\tpython3\nVmRSS:\t  204800 kB\nThreads:\t7\n")
    # comm with a space and a parenthesis: fields are counted after the last ")"
    (base / "stat").write_text("42 (sim (node)) S 1 42 42 0 -1 4194560 0 0 0 0 250 50 0 0 20 0 7 0 1 2 3\n")
    r = read_proc(42, tmp_path)
    assert r == {"rss_mb": 200.0, "threads": 7, "fds": 5, "cpu_s": pytest.approx(300 / os.sysconf("SC_CLK_TCK"))}


def test_sampler_follows_children_and_computes_cpu() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: pass"])
    try:
        assert child.pid in child_pids(os.getpid())
        sampler = ProcSampler({"me": os.getpid()})
        sampler.add_children()
        assert any(label.startswith("me/python") and pid == child.pid for label, pid in sampler.pids.items())
        t0 = time.monotonic()
        first = sampler.sample(0.0)
        assert all(r["cpu_pct"] is None for r in first)
        time.sleep(1.0)
        rows = {r["pid"]: r for r in sampler.sample(time.monotonic() - t0)}
        assert rows[child.pid]["cpu_pct"] > 5, "a busy loop (a share of a core on a loaded machine)"
        assert rows[os.getpid()]["threads"] >= 1
    finally:
        child.kill()
        child.wait()
    assert child.pid not in {r["pid"] for r in sampler.sample(5.0)}, "a process that is gone is skipped"


def test_windowed_p99() -> None:
    t = np.arange(0, 120, 0.005)  # 200 Hz for 2 minutes
    t[12_000 + 100] += 0.004  # one late message in the second minute: 9 ms then 1 ms
    w = windowed_p99(t, 120.0)
    assert [x["window"] for x in w] == [0, 1]
    assert w[0]["p99_ms"] == pytest.approx(5.0) and w[0]["messages"] == 11_999
    assert w[1]["max_ms"] == pytest.approx(9.0)
    assert windowed_p99([], 30.0)[0]["p99_ms"] is None


def _samples(growth_mb: float) -> list[dict]:
    return [{"t": t, "process": p, "pid": 1, "rss_mb": 100 + (growth_mb * t / 600 if p == "cerebellum_node" else 0)
             + (50 if t < 60 else 0), "cpu_pct": 10.0, "fds": 20, "threads": 12}
            for t in range(0, 601, 10) for p in ("sim_node", "cerebellum_node")]


def test_rss_growth_from_the_first_sample_after_the_first_minute() -> None:
    g = rss_growth(_samples(10.0))
    assert g["sim_node"]["growth_pct"] == 0.0, "the start-up minute (+50 MB) is not counted"
    assert g["cerebellum_node"]["rss_first_mb"] == pytest.approx(101.0)
    assert g["cerebellum_node"]["growth_pct"] == pytest.approx(100 * 9 / 101)
    assert g["cerebellum_node"]["slope_mb_per_min"] == pytest.approx(1.0)


def test_judge() -> None:
    windows = [{"window": k, "p99_ms": v} for k, v in enumerate([6.0, 6.5, 7.1])]
    ok = judge(rss_growth(_samples(2.0)), windows, 0)
    assert ok["ok"] and ok["checks"]["p99_stable"]["limit_ms"] == pytest.approx(7.2)
    leak = judge(rss_growth(_samples(10.0)), windows, 0)
    assert not leak["ok"] and "cerebellum_node" in leak["checks"]["rss_growth"]["why"]
    client = {**rss_growth(_samples(0.0)), "soak_client": {"growth_pct": 9.0}}
    assert judge(client, windows, 0)["ok"], "the soak's own process is not judged"
    slow = judge(rss_growth(_samples(0.0)), [*windows, {"window": 3, "p99_ms": 7.3}], 0)
    assert not slow["ok"] and "[4]" in slow["checks"]["p99_stable"]["why"]
    lost = judge(rss_growth(_samples(0.0)), windows, 1)
    assert not lost["ok"] and lost["checks"]["no_plan_lost"]["lost"] == 1
    assert not judge({}, [], 0)["ok"], "no samples is not a pass"


def test_status_counts_and_stream() -> None:
    log = ("[INFO] [1.0] [cerebellum_node]: execution_status published: plan_id=abc count=120\n"
           "[INFO] [2.0] [cerebellum_node]: plan def: 3 subtasks\n"
           "[INFO] [3.0] [cerebellum_node]: execution_status published: plan_id=stop-1 count=4\n")
    assert status_counts_from_log(log) == {"abc": 120, "stop-1": 4}
    s = status_stream([0.0, 0.05, 0.1, 1.0, 1.05], 2.0)
    assert s["received"] == 5 and s["per_s"] == 2.5 and s["gaps_over_0.5_s"] == 1
    assert s["gap_max_ms"] == pytest.approx(900.0)


def test_report_and_plot(tmp_path: Path) -> None:
    data = ProbeData(targets=list(np.arange(0, 130, 0.005) + 1000.0), plans={"p1": 1, "stop-a": 1, "stop-b": 1},
                     statuses={"p1": 40, "stop-a": 3}, statuses_deep={"p1": 41},
                     status_times=list(np.arange(0, 130, 0.05) + 1000.0))
    episodes = [{"seed": 1, "family": "stack", "plan_id": "p1", "success": True, "end": "plan complete",
                 "start_s": 0.0, "wall_s": 10.0}, {"seed": 2, "family": "push", "plan_id": "p2", "success": False,
                                                   "end": "timeout", "start_s": 10.0, "wall_s": 10.0}]
    r = report(data, ["stop-a", "p1", "stop-b", "p2"], episodes, _samples(1.0), 1000.0, 1130.0, 120.0,
               {"p1": 41, "p2": 5})
    assert r["plans"]["lost"] == 1 and r["plans"]["lost_ids"] == ["p2"]
    assert r["plans"]["stop_plans_not_received"] == 0
    assert r["plans"]["episode_plans_without_a_cerebellum_status"] == 1
    assert r["execution_status"]["published_for_episode_plans"] == 46
    assert r["execution_status"]["received_for_episode_plans"] == 40
    assert r["execution_status"]["received_for_episode_plans_depth_1000"] == 41
    assert set(r["execution_status"]["plans_with_missing_statuses"]) == {"p1", "p2"}
    assert len(r["ee_target_interarrival"]["per_minute"]) == 2
    assert not r["verdict"]["ok"] and not r["verdict"]["checks"]["no_plan_lost"]["ok"]
    r.update(sample_s=10.0, cores=2, load_average=[(0.0, 1.5), (60.0, None), (120.0, 2.5)])
    summary(r)
    assert not rejudge(r)["verdict"]["checks"]["no_plan_lost"]["ok"]
    png = plot(r, tmp_path / "soak.png")
    assert png.stat().st_size > 10_000


def _diagnostics(seconds: int, slow_per_s: int = 1, slow_s: float = 0.00905) -> list[tuple[float, dict]]:
    """Once-a-second cerebellum diagnostics: 200 ticks a second, ``slow_per_s`` of ``slow_s``, the rest 5.05 ms."""
    from robo_cerebellum.loop_stats import LoopStats

    stats, t, out = LoopStats(), 0.0, []
    stats.tick(t)
    for k in range(seconds):
        for i in range(200):
            t += slow_s if i < slow_per_s else 0.00505
            stats.tick(t)
        out.append((k + 0.5, stats.snapshot(t)))
    return out


def test_control_period_windows_merge_the_seconds_of_a_minute() -> None:
    windows = control_period_windows(_diagnostics(150), 150.0)
    assert [w["seconds"] for w in windows] == [60, 60, 30]
    assert [w["ticks"] for w in windows] == [12_000, 12_000, 6_000]
    # 0.5 % of the ticks take 9.05 ms: the p99 is a 5.05 ms tick (its bin's upper edge), the max the slow one
    assert all(w["p99_ms"] == pytest.approx(5.1) and w["p50_ms"] == pytest.approx(5.1) for w in windows)
    assert all(w["max_ms"] == pytest.approx(9.05, abs=1e-6) for w in windows)
    slow = control_period_windows(_diagnostics(60, slow_per_s=4), 60.0)
    assert slow[0]["p99_ms"] == pytest.approx(9.1)


def test_the_verdict_judges_the_control_loop_period_when_there_are_diagnostics(tmp_path: Path) -> None:
    diags = _diagnostics(130)
    diags[90] = (90.5, _diagnostics(1, slow_per_s=6, slow_s=0.02005)[0][1])  # one bad second: 3 % at 20 ms
    data = ProbeData(targets=list(np.arange(0, 130, 0.005) + 1000.0), plans={"p1": 1}, statuses={"p1": 40},
                     diagnostics=[(t + 1000.0, d) for t, d in diags])
    episodes = [{"seed": 1, "family": "stack", "plan_id": "p1", "success": True, "end": "plan complete",
                 "start_s": 0.0, "wall_s": 10.0}]
    r = report(data, ["p1"], episodes, _samples(1.0), 1000.0, 1130.0, 120.0, {"p1": 40})
    assert r["control_period"]["diagnostics_received"] == 130
    # the bad second is 0.05 % of its minute: the minute's p99 does not move
    assert [w["p99_ms"] for w in r["control_period"]["per_minute"]] == pytest.approx([5.1, 5.1])
    assert r["verdict"]["ok"], r["verdict"]
    assert r["verdict"]["checks"]["p99_stable"]["limit_ms"] == pytest.approx(5.1 * 1.2)
    worse = diags[:60] + [(t + 60.0, d) for t, d in _diagnostics(70, slow_per_s=4)]
    data.diagnostics = [(t + 1000.0, d) for t, d in worse]
    slow = report(data, ["p1"], episodes, _samples(1.0), 1000.0, 1130.0, 120.0, {"p1": 40})
    assert not slow["verdict"]["ok"] and "[2]" in slow["verdict"]["checks"]["p99_stable"]["why"]
    slow.update(sample_s=10.0, cores=2, load_average=[(0.0, 1.5)])
    assert "control loop period p99 per minute" in summary(slow)
    assert plot(slow, tmp_path / "soak.png").stat().st_size > 10_000
