"""Scenes of the simulator as brain v2 records: the perceived listing, the expert's lines and the task's words.

The listing is what :func:`robo_brain.perception.perceive` reads from the rendered RGB-D image (the
model learns from the same perception it plans with); a scene whose listing differs from the
simulator's names is counted and skipped, never relabelled. Records are cached as JSON lines, so a
second run (or an interrupted one) reuses what was rendered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from robo_brain.embedded.dataset import family_for_seed
from robo_brain.lm.data import TaskRecord
from robo_brain.perception import perceive
from robo_sim.tasks import Task
from robo_system.datasets.brain import SceneRenderer, camera_model

logger = logging.getLogger(__name__)


def task_words(task: Task) -> dict[str, str]:
    """The words of ``task`` its instruction is made of: object, target, direction, gathered colour."""
    steps = task.steps
    if task.family in ("pick_place", "stack"):
        return {"obj": steps[0].arg, "dest": steps[1].arg}
    if task.family == "push":
        return {"obj": steps[0].arg, "direction": steps[0].direction}
    if task.variant == "all":
        block = steps[0].arg
        colour = next(w for w in block.split() if w not in ("small", "large", "block"))
        return {"dest": steps[1].arg, "colour": colour}
    return {}


def scene_record(renderer: SceneRenderer, seed: int, split: str, family: str | None = None) -> TaskRecord | None:
    """The record of one scene, or None when perception's listing differs from the simulator's names."""
    task, rgb, depth, plan = renderer.scene(seed, split, family or family_for_seed(seed))
    seen = perceive(rgb, depth, camera_model(renderer.world))
    if sorted(o.name for o in seen) != sorted(o.name for o in task.scene.objects):
        logger.debug("seed %d: perceived %s, simulator %s", seed, [o.name for o in seen],
                     [o.name for o in task.scene.objects])
        return None
    return TaskRecord(seed, split, task.family, task.variant if task.family == "rearrange" else "",
                      task.instruction, [o.name for o in seen], [o.name for o in seen if o.is_block],
                      [s.code for s in plan.subtasks], **task_words(task))


def build_records(path: str | Path, seeds: Sequence[int], split: str = "seen",
                  progress: bool = True) -> list[TaskRecord]:
    """The records of ``seeds`` (rendered where ``path`` does not hold them yet; appended as they come)."""
    path = Path(path)
    have = {(r.seed, r.split): r for r in read_records(path)} if path.is_file() else {}
    todo = [s for s in seeds if (s, split) not in have]
    skipped = 0
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        renderer = SceneRenderer()
        try:
            with path.open("a") as f:
                for seed in tqdm(todo, desc=f"scenes {split}", unit="scene", disable=not progress):
                    rec = scene_record(renderer, seed, split)
                    if rec is None:
                        skipped += 1
                        rec = TaskRecord(seed, split, "", "", "", [], [], [], extra={"skipped": True})
                    f.write(json.dumps(rec.to_json()) + "\n")
                    have[(seed, split)] = rec
        finally:
            renderer.close()
    if skipped:
        logger.warning("%d of %d scenes skipped: perception's listing differed from the simulator's", skipped,
                       len(todo))
    return [have[(s, split)] for s in seeds if not have[(s, split)].extra.get("skipped")]


def read_records(path: str | Path) -> Iterator[TaskRecord]:
    """The records of a JSON-lines file (a torn last line, from an interrupted run, is ignored)."""
    with Path(path).open() as f:
        for line in f:
            try:
                yield TaskRecord(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                logger.warning("ignoring a torn line in %s", path)


__all__ = ["build_records", "read_records", "scene_record", "task_words"]
