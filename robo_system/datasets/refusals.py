"""``robo-stack eval grounding``: instructions the brain must not turn into an ungrounded plan.

Each line of each file (``#`` lines are comments) is planned with the real :class:`~robo_brain.planner.Planner`
on a simulator scene (the eval seeds, families cycling). Counted per file: how many were refused (FAILED,
with the reason the brain gives, which goes to ``/robo/brain_status``), how many were planned, and how many
plans name an object the simulator does not have (the target is 0: such a plan would reach ``/robo/plan``).
Names are checked against the simulator's truth, not the brain's own perception.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from robo_brain.embedded.dataset import EVAL_SEED_OFFSET
from robo_common.plan_language import parse_call
from robo_system.datasets.brain import SceneRenderer, camera_model

logger = logging.getLogger(__name__)


def read_lines(path: str | Path) -> list[str]:
    """The instructions of a file: one per line, blank and ``#`` lines skipped (``ValueError`` if none)."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    if not out:
        raise ValueError(f"{path}: no instructions (one per line; '#' starts a comment)")
    return out


def plan_names(plan) -> list[str]:  # noqa: ANN001 - PlanData
    """Every object and target a plan names."""
    names = []
    for sub in plan.subtasks:
        args = parse_call(sub.code).args
        names += [str(args[k]) for k in ("object", "target") if k in args]
    return names


def evaluate_grounding(planner, files: list[str], split: str = "seen", seed_offset: int = EVAL_SEED_OFFSET,  # noqa: ANN001
                       progress: bool = True) -> dict:
    """Plan every instruction of ``files`` and count refusals, plans and ungrounded names (module docstring)."""
    renderer = SceneRenderer()
    report: dict = {"split": split, "files": {}}
    try:
        seed = seed_offset
        for path in files:
            rows = []
            for text in tqdm(read_lines(path), desc=Path(path).name, unit="instr", disable=not progress):
                task, rgb, depth, _ = renderer.scene(seed, split)
                seed += 1
                result = planner.plan(text, rgb, depth, camera_model(renderer.world))
                truth = {o.name for o in task.scene.objects}
                named = plan_names(result.plan) if result.plan else []
                rows.append({"instruction": text, "seed": seed - 1, "outcome": result.outcome.value,
                             "reason": result.reason, "names": named,
                             "ungrounded": sorted(set(named) - truth),
                             "latency_s": round(float(result.timing.get("total", 0.0)), 3)})
            outcomes = Counter(r["outcome"] for r in rows)
            report["files"][str(path)] = {
                "instructions": len(rows), "refused": outcomes.get("failed", 0),
                "planned": len(rows) - outcomes.get("failed", 0),
                "plans_with_ungrounded_names": sum(bool(r["ungrounded"]) for r in rows), "rows": rows}
    finally:
        renderer.close()
    return report


__all__ = ["evaluate_grounding", "plan_names", "read_lines"]
