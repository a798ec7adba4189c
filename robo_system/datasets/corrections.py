"""Correction examples of the brain v2, made in the simulator with its perturbations.

Closed-loop episodes run in process (the cerebellum checkpoint executing the expert's plans) with a
perturbation (``grasp_offset``, ``nudge``, ``slip``, ``wrong_keypoint``) or none. At every failure the
cerebellum reports, :class:`RecordingExpert` looks at the scene as the brain would (the rendered RGB-D
image, :func:`~robo_brain.perception.perceive`'s listing, the expert checks of
:func:`~robo_brain.checks.run_checks`) and writes down the expert's answer from the simulator's truth
(:func:`expert_correction`): is the failed step's object between the fingers, so is it placed, picked
again or pushed again, and which steps are left. The episode then goes on with the oracle's own
correction, so later failures of the same episode are recorded too.

Records are appended as JSON lines as episodes finish (one line per correction, then an ``episode`` line),
so an interrupted run resumes after the last finished episode. Seeds for training start at
:data:`SEED0`, far from the evaluation seeds (100 000+ for the closed loop, 1 000 000+ for the brain).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from robo_brain.checks import CheckConfig, run_checks
from robo_brain.lm.data import CorrectionRecord, TaskRecord
from robo_brain.lm.prompt import REASONS, reason_of
from robo_brain.perception import perceive
from robo_brain.planner import FailureInfo, correction_steps
from robo_common.plan_language import parse_call
from robo_common.plan_types import PlanData
from robo_sim.tasks import FAMILIES, Task
from robo_sim.world import SimWorld
from robo_system.closed_loop import BrainAnswer, ClosedLoopConfig, OracleBrain, run_episode
from robo_system.datasets.brain import camera_model
from robo_system.datasets.brain_lm import task_words

logger = logging.getLogger(__name__)

SEED0 = 20_000
"""First seed of the correction episodes (training data only; evaluations start at 100 000)."""
MODES = ("grasp_offset", "nudge", "slip", "wrong_keypoint", "")
"""Perturbations the episodes cycle through (``''``: none, failures of the policy itself)."""


def failed_object(plan: PlanData, index: int) -> str | None:
    """The object the failed step is about: a pick's or push's object, a place's held object (the pick before)."""
    sub = plan.subtasks[index]
    if sub.skill in ("pick", "push"):
        return str(parse_call(sub.code, index + 1).args["object"])
    if sub.skill == "place":
        for j in range(index - 1, -1, -1):
            if plan.subtasks[j].skill == "pick":
                return str(parse_call(plan.subtasks[j].code, j + 1).args["object"])
    return None


def expert_correction(plan: PlanData, index: int, held: bool) -> list[str] | None:
    """The expert's answer to a failure at step ``index``: a ``Why:`` line and the steps still to do.

    ``held``: the simulator's truth, is the step's object between the fingers now. A failed ``pick`` with the
    object held goes on with the place; without it, picks again. A failed ``place`` with the object held places
    again; without it, picks it again first. A failed ``push`` pushes again. None for other steps.
    """
    sub, obj = plan.subtasks[index], failed_object(plan, index)
    rest = [s.code for s in plan.subtasks[index:]]
    if obj is None:
        return None
    if sub.skill == "push":
        return [REASONS["repush"].format(obj=obj), *rest]
    if sub.skill == "pick":
        return [REASONS["held"].format(obj=obj), *rest[1:]] if held else [REASONS["regrasp"].format(obj=obj), *rest]
    if sub.skill == "place":
        if held:
            return [REASONS["held"].format(obj=obj), *rest]
        return [REASONS["regrasp"].format(obj=obj), f'pick(object="{obj}")', *rest]
    return None


class RecordingExpert(OracleBrain):
    """The oracle brain that writes down, at each correction, what the brain v2 would read and the expert's answer."""

    name = "oracle+record"

    def __init__(self, checks: CheckConfig | None = None) -> None:
        """Record with the expert checks of ``checks`` (defaults when None)."""
        self.checks = checks or CheckConfig()
        self.records: list[CorrectionRecord] = []
        self.skipped: list[str] = []
        self.perturb = ""

    def correct(self, plan: PlanData, failure: FailureInfo, task: Task, world: SimWorld) -> BrainAnswer:
        """Record the correction's inputs and the expert's answer, then correct as the oracle does."""
        try:
            self._record(plan, failure, task, world)
        except (KeyError, ValueError, IndexError) as exc:  # a record is data: never stop the episode for one
            self.skipped.append(f"seed {task.seed}: {type(exc).__name__}: {exc}")
        return super().correct(plan, failure, task, world)

    def _record(self, plan: PlanData, failure: FailureInfo, task: Task, world: SimWorld) -> None:
        index = failure.subtask_index
        obj = failed_object(plan, index)
        if obj is None:
            self.skipped.append(f"seed {task.seed}: failure at {plan.subtasks[index].code}")
            return
        held = world.contact_with_fingers(world.object_by_name(obj).body_id)
        answer = expert_correction(plan, index, held)
        rgb, depth = world.render()
        camera = camera_model(world)
        seen = perceive(rgb, depth, camera)
        names = [o.name for o in seen]
        named = [str(v) for i, code in enumerate(answer or []) if not code.startswith("Why:")
                 for k, v in parse_call(code, i + 1).args.items() if k in ("object", "target")]
        if answer is None or any(n not in names for n in named):
            self.skipped.append(f"seed {task.seed}: the answer names {named}, the listing is {names}")
            return
        findings = run_checks(plan, index, depth, camera, self.checks, failure.measured_position, None, rgb)
        rec = TaskRecord(task.seed, task.split, task.family, task.variant if task.family == "rearrange" else "",
                         task.instruction, names, [o.name for o in seen if o.is_block], [], **task_words(task))
        self.records.append(CorrectionRecord(rec, correction_steps(plan, index), f"{failure.kind}: {failure.detail}",
                                             [f.line() for f in findings if not f.ok], answer, self.perturb))


def read_corrections(path: str | Path) -> tuple[list[CorrectionRecord], set[tuple[int, str]]]:
    """The records of ``path`` and the ``(seed, mode)`` episodes it holds (finished ones only)."""
    records, done = [], set()
    path = Path(path)
    if not path.is_file():
        return records, done
    pending: list[CorrectionRecord] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interrupted run: its episode is run again
            pending = []
            continue
        if "episode" in d:
            done.add((int(d["episode"]), str(d["perturb"])))
            records += pending
            pending = []
        else:
            pending.append(CorrectionRecord.from_json(d))
    return records, done


def build_corrections(path: str | Path, checkpoint: str | Path, episodes: int, split: str = "seen",
                      modes: Sequence[str] = MODES, seed0: int = SEED0, progress: bool = True,
                      cfg: ClosedLoopConfig | None = None) -> list[CorrectionRecord]:
    """Run ``episodes`` perturbed episodes (modes and families cycling) and return every correction record,
    reusing and extending ``path`` (resumable: finished episodes are not run again)."""
    from robo_cerebellum.policy import CerebellumPolicy
    from robo_sim.world import WorldConfig

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records, done = read_corrections(path)
    specs = [(seed0 + i, modes[i % len(modes)]) for i in range(episodes)]
    todo = [s for s in specs if s not in done]
    if not todo:
        return records
    cfg = cfg or ClosedLoopConfig(max_corrections=3, verify=False)
    policy = CerebellumPolicy.load(checkpoint)
    brain = RecordingExpert()
    world = SimWorld(WorldConfig(control_period=1.0 / policy.cfg.policy_hz))
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="correction episodes", unit="ep",
               disable=not progress)
    try:
        with path.open("a") as out:
            if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
                out.write("\n")  # after a line cut by an interrupted run
            for seed, mode in todo:
                brain.records, brain.perturb = [], mode
                family = FAMILIES[seed % len(FAMILIES)]
                row = run_episode(policy, brain, seed, split, family, mode or None, cfg, world)
                for rec in brain.records:
                    out.write(json.dumps(rec.to_json()) + "\n")
                out.write(json.dumps({"episode": seed, "perturb": mode, "corrections": len(brain.records),
                                      "success": bool(row["success"])}) + "\n")
                out.flush()
                records += brain.records
                bar.update(1)
                bar.set_postfix(records=len(records))
    finally:
        bar.close()
        world.close()
    if brain.skipped:
        logger.info("%d corrections not recorded (first: %s)", len(brain.skipped), brain.skipped[0])
    return records


def _why_kind(record: CorrectionRecord) -> str:
    """The diagnosis kind (a key of :data:`REASONS`) of the expert's answer of ``record``."""
    found = reason_of(record.answer[0])
    if found is None:
        raise ValueError(f"correction of seed {record.task.seed} does not start with a Why: line: {record.answer[0]!r}")
    return found[0]


def correction_stats(records: Sequence[CorrectionRecord]) -> dict:
    """Counts by diagnosis, failure kind and family (what the model card reports)."""
    def count(keys: list[str]) -> dict[str, int]:
        return {k: keys.count(k) for k in sorted(set(keys))}

    return {"records": len(records),
            "why": count([_why_kind(r) for r in records]),
            "failure": count([r.failure.split(":")[0] for r in records]),
            "family": count([r.task.family for r in records]),
            "perturb": count([r.perturb or "none" for r in records])}


def evaluate_corrections(backend, records: Sequence[CorrectionRecord], progress: bool = True) -> dict:  # noqa: ANN001
    """The brain v2's own corrections (:meth:`~robo_brain.lm.backend.LMPlannerBackend.correct_lines`) on
    ``records`` (the simulator's instruction), scored against the expert's answers: the diagnosis, the steps
    and both, overall and by diagnosis; with every row."""
    import time

    rows = []
    for r in tqdm(records, desc="corrections", unit="correction", disable=not progress):
        t0 = time.perf_counter()
        answer = backend.correct_lines(r.task.names, r.task.blocks, r.task.instruction, r.steps, r.failure,
                                       r.problems)
        rows.append({"seed": r.task.seed, "family": r.task.family, "perturb": r.perturb, "failure": r.failure,
                     "expected": r.answer, "answer": answer.lines, "why_ok": answer.lines[:1] == r.answer[:1],
                     "steps_ok": answer.lines[1:] == r.answer[1:], "seconds": time.perf_counter() - t0})

    def rate(sel: list[dict], key: str) -> float | None:
        return round(sum(x[key] for x in sel) / len(sel), 3) if sel else None

    kinds = [_why_kind(r) for r in records]
    by_why = {}
    for kind in sorted(set(kinds)):
        sel = [x for x, k in zip(rows, kinds, strict=True) if k == kind]
        by_why[kind] = {"n": len(sel), "why": rate(sel, "why_ok"), "steps": rate(sel, "steps_ok")}
    secs = sorted(x["seconds"] for x in rows)
    return {"records": len(rows), "why_accuracy": rate(rows, "why_ok"), "steps_exact": rate(rows, "steps_ok"),
            "both": round(sum(x["why_ok"] and x["steps_ok"] for x in rows) / len(rows), 3) if rows else None,
            "by_why": by_why, "seconds_p50": secs[len(secs) // 2] if secs else None,
            "seconds_p95": secs[min(len(secs) - 1, int(0.95 * len(secs)))] if secs else None, "rows": rows}


__all__ = ["MODES", "SEED0", "RecordingExpert", "build_corrections", "correction_stats", "evaluate_corrections",
           "expert_correction", "failed_object", "read_corrections"]
