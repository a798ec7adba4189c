"""Brain example cache: render the same 1 000 scenes with 1 and with 2 worker processes, one run.

    .venv/bin/python bench/render_cache.py   # writes bench/results/render_cache.json
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from robo_system.datasets.brain import generate

SEEDS = range(50_000, 51_000)  # outside the training seeds, so no cache is reused


def main() -> None:
    """Time both renders into fresh folders and write the ratio."""
    seconds = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            generate(d, SEEDS, "seen", progress=False, workers=workers)
            seconds[workers] = time.perf_counter() - t0
    report = {"scenes": len(SEEDS), "seconds_1_worker": seconds[1], "seconds_2_workers": seconds[2],
              "speedup": seconds[1] / seconds[2]}
    out = Path(__file__).parent / "results" / "render_cache.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
