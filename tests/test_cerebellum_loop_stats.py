"""The control loop's timing statistics (ROS-free): periods per second, a mergeable histogram, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from robo_cerebellum.loop_stats import BIN_MS, LoopStats, merge, percentile_ms


def test_snapshot_has_the_periods_of_the_window_and_resets() -> None:
    stats = LoopStats()
    t = 100.0
    periods = np.r_[np.full(195, 0.00505), [0.01235] * 3, [0.020, 0.00515]]  # off the bin edges
    stats.tick(t)
    for p in periods:
        t += p
        stats.tick(t)
    for i in range(20):
        stats.policy_step(0.00125 if i < 19 else 0.00455)
    stats.policy_step()  # a hold: counted, not timed
    snap = stats.snapshot(t)
    assert snap["ticks"] == 200 and snap["policy_steps"] == 21 and snap["policy_runs"] == 20
    assert snap["policy_step_p50_ms"] == pytest.approx(1.3) and snap["policy_step_p99_ms"] == pytest.approx(4.6)
    assert snap["window_s"] == pytest.approx(periods.sum(), abs=1e-3)
    assert snap["policy_steps_per_s"] == pytest.approx(21 / periods.sum(), abs=0.01)
    assert snap["period_p50_ms"] == pytest.approx(5.0 + BIN_MS, abs=1e-9)  # the upper edge of the 5.0 ms bin
    assert snap["period_p99_ms"] == pytest.approx(12.4, abs=1e-9)  # rank 198 of 200: a 12.35 ms period
    assert snap["period_max_ms"] == pytest.approx(20.0)
    assert sum(snap["period_hist"]["counts"].values()) == 200
    again = stats.snapshot(t + 1.0)
    assert again["ticks"] == 0 and again["period_p99_ms"] is None and again["policy_steps_per_s"] == 0.0
    assert again["policy_step_p50_ms"] is None


def test_merged_seconds_give_the_percentile_of_the_whole_span() -> None:
    rng = np.random.default_rng(1)
    periods = rng.gamma(20.0, 0.25, size=6000) * 1e-3  # ~5 ms, spread
    stats, t, snaps = LoopStats(), 0.0, []
    stats.tick(t)
    for i, p in enumerate(periods):
        t += p
        stats.tick(t)
        if i % 200 == 199:
            snaps.append(stats.snapshot(t))
    merged = merge(s["period_hist"]["counts"] for s in snaps)
    assert sum(merged.values()) == periods.size
    exact = float(np.percentile(periods * 1e3, 99, method="inverted_cdf"))
    assert percentile_ms(merged, 99) == pytest.approx(exact, abs=BIN_MS + 1e-9)
    assert percentile_ms({}, 99) is None
