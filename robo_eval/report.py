"""Write an evaluation report: ``report.json``, ``summary.md``, ``steps.csv`` and PNG plots.

``steps.csv`` holds every step's errors. Plots (cerebellum / recorded models):
``error_over_time.png`` (per-step translation and rotation error of each bag), ``trajectory.png``
(commanded vs recorded target, top view x-y and side view x-z, for the first bags),
``error_histograms.png``. Brain replays get the JSON and Markdown only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robo_eval.offline import EvalResult

MAX_BAGS_PLOTTED = 6


def write_report(result: EvalResult, out: Path, command: str = "") -> dict[str, Path]:
    """Write the report files into ``out`` (created); returns their paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    paths = {"json": out / "report.json", "markdown": out / "summary.md"}
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n")
    if result.scores:
        paths["csv"] = out / "steps.csv"
        write_steps_csv(result, paths["csv"])
        paths.update(_plots(result, out))
    paths["markdown"].write_text(markdown(summary, command, [p.name for k, p in paths.items() if k.startswith("png")]))
    return paths


def write_steps_csv(result: EvalResult, path: Path) -> None:
    """One row per replayed step: bag, step, time, subtask, skill, whether scored, and its errors."""
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bag", "step", "time_s", "subtask_index", "skill", "scored", "translation_error_cm",
                         "rotation_error_deg", "gripper_agree"])
        for s in result.scores:
            for i in range(len(s.valid)):
                writer.writerow([s.name, i, f"{s.time_s[i]:.3f}", int(s.subtask_index[i]), s.skills[i],
                                 int(s.valid[i]), _num(s.translation_cm[i]), _num(s.rotation_deg[i]),
                                 _num(s.gripper_agree[i])])


def _num(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.4f}"


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def markdown(summary: dict, command: str = "", plots: list[str] | None = None) -> str:
    """A Markdown summary of a report dict."""
    lines = [f"# Rosbag replay evaluation: {summary['model']}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Bags scored: {summary.get('bags_scored', 0)}, failed: {summary.get('bags_failed', 0)}.", ""]
    keys = [k for k, v in summary.items() if not isinstance(v, dict | list) and k != "model"]
    lines += ["| metric | value |", "|---|---|", *[f"| {k} | {_fmt(summary[k])} |" for k in keys], ""]
    if summary.get("per_skill"):
        lines += ["## Per skill", "", "| skill | steps | translation cm (median) | rotation deg (median) |",
                  "|---|---|---|---|"]
        lines += [f"| {s} | {v['steps']} | {_fmt(v['translation_error_cm_median'])} | "
                  f"{_fmt(v['rotation_error_deg_median'])} |" for s, v in summary["per_skill"].items()]
        lines.append("")
    if summary.get("failure_detection"):
        fd = summary["failure_detection"]
        lines += ["## Failure detection (per bag)", "", "| " + " | ".join(fd) + " |", "|" + "---|" * len(fd),
                  "| " + " | ".join(_fmt(v) for v in fd.values()) + " |", ""]
    if summary.get("failed"):
        lines += ["## Bags that could not be scored", ""] + [f"- `{f['bag']}`: {f['error']}" for f in summary["failed"]]
        lines.append("")
    for name in plots or []:
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def _plots(result: EvalResult, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = result.scores[:MAX_BAGS_PLOTTED]
    paths = {"png_error": out / "error_over_time.png", "png_trajectory": out / "trajectory.png",
             "png_histograms": out / "error_histograms.png"}
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for s in scores:
        axes[0].plot(s.time_s[s.valid], s.translation_cm[s.valid], lw=1, label=s.name)
        axes[1].plot(s.time_s[s.valid], s.rotation_deg[s.valid], lw=1)
    axes[0].set_ylabel("translation error (cm)")
    axes[1].set_ylabel("rotation error (deg)")
    axes[1].set_xlabel("time since first command (s)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result.model}: per-step error")
    fig.tight_layout()
    fig.savefig(paths["png_error"], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for i, s in enumerate(scores):
        color = f"C{i}"
        for ax, (a, b) in zip(axes, ((0, 1), (0, 2)), strict=True):
            ax.plot(s.recorded_pos[:, a], s.recorded_pos[:, b], color=color, lw=1.5, alpha=0.5)
            v = s.valid
            ax.plot(s.target_pos[v, a], s.target_pos[v, b], color=color, lw=0.8, ls="--")
    axes[0].set(xlabel="x (m)", ylabel="y (m)", title="top view (solid: recorded, dashed: model)")
    axes[1].set(xlabel="x (m)", ylabel="z (m)", title="side view")
    for ax in axes:
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(paths["png_trajectory"], dpi=90)
    plt.close(fig)

    trans = np.concatenate([s.translation_cm[s.valid] for s in result.scores])
    rot = np.concatenate([s.rotation_deg[s.valid] for s in result.scores])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].hist(trans, bins=50, color="C0")
    axes[0].set(xlabel="translation error (cm)", ylabel="steps")
    axes[1].hist(rot, bins=50, color="C1")
    axes[1].set(xlabel="rotation error (deg)")
    fig.suptitle(f"{result.model}: {len(trans)} steps, {len(result.scores)} bags")
    fig.tight_layout()
    fig.savefig(paths["png_histograms"], dpi=90)
    plt.close(fig)
    return paths
