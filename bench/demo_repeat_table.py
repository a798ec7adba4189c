"""Table of repeated demo runs (bench/run_demo_repeat.sh): one row per scene, from each run's summary.json."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def collect(runs: Path) -> dict[str, list[dict]]:
    """Summaries per scene (``family seed``), from the run links ``<family>-<seed>-<i>`` under ``runs``."""
    scenes: dict[str, list[dict]] = {}
    for link in sorted(runs.iterdir()):
        if link.suffix == ".log":
            continue
        family, seed, _ = link.name.rsplit("-", 2)
        summary = link / "summary.json"
        row = json.loads(summary.read_text()) if summary.is_file() else {"success": False, "end": "no summary"}
        scenes.setdefault(f"{family} {seed}", []).append(row)
    for log in sorted(runs.glob("*.log")):  # a run that left no folder (it crashed before writing one)
        family, seed, i = log.stem.rsplit("-", 2)
        if not (runs / log.stem).exists():
            scenes.setdefault(f"{family} {seed}", []).append({"success": False, "end": "no run folder"})
    return scenes


def table(scenes: dict[str, list[dict]]) -> tuple[str, dict]:
    """A markdown table and its figures."""
    lines = ["| scene | runs | success | corrections (total) | early releases (total) | time to success, median |",
             "|---|---|---|---|---|---|"]
    figures = {}
    for scene, rows in scenes.items():
        ok = [r for r in rows if r.get("success")]
        tts = [r["time_to_success_s"] for r in ok if r.get("time_to_success_s") is not None]
        fig = {"runs": len(rows), "success": len(ok), "corrections": sum(r.get("corrections", 0) for r in rows),
               "early_releases": sum(r.get("early_releases", 0) for r in rows),
               "time_to_success_s_median": statistics.median(tts) if tts else None,
               "ends": [r.get("end", "") for r in rows if not r.get("success")]}
        figures[scene] = fig
        med = f"{fig['time_to_success_s_median']:.1f} s" if tts else "-"
        lines.append(f"| {scene} | {len(rows)} | {len(ok)}/{len(rows)} | {fig['corrections']} | "
                     f"{fig['early_releases']} | {med} |")
    return "\n".join(lines) + "\n", figures


def main(argv: list[str] | None = None) -> int:
    """Print the table; optionally write it and the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)
    text, figures = table(collect(args.runs))
    sys.stdout.write(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
