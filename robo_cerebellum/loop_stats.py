"""The control loop's own timing: tick periods in a histogram, policy steps, published once a second.

``cerebellum_node`` calls :meth:`LoopStats.tick` at every control tick and
:meth:`LoopStats.policy_step` after every policy step (with its duration: the policy, the checks and, on a new
frame, the image encoder); once a second it publishes
:meth:`LoopStats.snapshot` as JSON on ``/robo/cerebellum_diagnostics``. The snapshot carries the
periods of that second as a sparse histogram of ``BIN_MS`` bins, so a reader can merge seconds into
minutes and take exact (to a bin) percentiles of any span (:func:`merge`, :func:`percentile_ms`),
which a p99 of each second alone would not allow. A tick costs a lock and a dict update (~1 µs).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

BIN_MS = 0.1
"""Width of a histogram bin (ms): percentiles are exact to this."""


class LoopStats:
    """Tick periods and policy steps since the last snapshot. Thread-safe (control and policy threads write)."""

    def __init__(self) -> None:
        """Start empty; the first tick only sets the reference time."""
        self._lock = threading.Lock()
        self._last_tick: float | None = None
        self._hist: dict[int, int] = {}
        self._max_s = 0.0
        self._ticks = 0
        self._steps = 0
        self._runs = 0
        self._step_hist: dict[int, int] = {}
        self._since: float | None = None

    def tick(self, now: float) -> None:
        """A control tick at monotonic time ``now`` (s)."""
        with self._lock:
            if self._last_tick is not None:
                period = now - self._last_tick
                key = int(period * 1e3 / BIN_MS)
                self._hist[key] = self._hist.get(key, 0) + 1
                self._max_s = max(self._max_s, period)
                self._ticks += 1
            self._last_tick = now
            if self._since is None:
                self._since = now

    def policy_step(self, duration_s: float | None = None) -> None:
        """A step of the policy thread was taken; ``duration_s`` when it ran the network (not a hold: no plan,
        a failure, a stale state), which the step-time percentiles and ``policy_runs_per_s`` count."""
        with self._lock:
            self._steps += 1
            if duration_s is not None:
                self._runs += 1
                key = int(duration_s * 1e3 / BIN_MS)
                self._step_hist[key] = self._step_hist.get(key, 0) + 1

    def snapshot(self, now: float) -> dict:
        """The statistics since the previous snapshot (then reset): periods (p50, p99, max, histogram), rates."""
        with self._lock:
            hist, ticks, steps, max_s, step_hist = self._hist, self._ticks, self._steps, self._max_s, self._step_hist
            runs = self._runs
            span = now - self._since if self._since is not None else 0.0
            self._hist, self._ticks, self._steps, self._max_s, self._step_hist = {}, 0, 0, 0.0, {}
            self._runs = 0
            self._since = now
        return {
            "window_s": round(span, 3),
            "ticks": ticks,
            "period_p50_ms": percentile_ms(hist, 50),
            "period_p99_ms": percentile_ms(hist, 99),
            "period_max_ms": round(max_s * 1e3, 3) if ticks else None,
            "period_hist": {"bin_ms": BIN_MS, "counts": {str(k): n for k, n in sorted(hist.items())}},
            "policy_steps": steps,
            "policy_steps_per_s": round(steps / span, 2) if span > 0 else None,
            "policy_runs": runs,
            "policy_runs_per_s": round(runs / span, 2) if span > 0 else None,
            "policy_step_p50_ms": percentile_ms(step_hist, 50),
            "policy_step_p99_ms": percentile_ms(step_hist, 99),
            "policy_step_hist": {"bin_ms": BIN_MS, "counts": {str(k): n for k, n in sorted(step_hist.items())}},
        }


def merge(hists: Iterable[Mapping[str | int, int]]) -> dict[int, int]:
    """Sum sparse histograms (``bin index -> count``, keys as ints or JSON strings)."""
    out: dict[int, int] = {}
    for hist in hists:
        for key, count in hist.items():
            out[int(key)] = out.get(int(key), 0) + int(count)
    return out


def percentile_ms(hist: Mapping[str | int, int], q: float, bin_ms: float = BIN_MS) -> float | None:
    """The ``q``-th percentile (ms) of a sparse histogram: the upper edge of the bin that holds it; None if empty."""
    counts = sorted((int(k), int(n)) for k, n in hist.items())
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    rank, seen = max(1, math.ceil(q / 100.0 * total)), 0
    for key, n in counts:
        seen += n
        if seen >= rank:
            return round((key + 1) * bin_ms, 3)
    return round((counts[-1][0] + 1) * bin_ms, 3)
