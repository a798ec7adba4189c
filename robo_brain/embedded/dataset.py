"""Training examples rendered from the simulator, cached on disk (resumable).

One example is the camera image at the initial state of a task (before the robot moves), the
instruction, the decoder prompt and the target text::

    Reasoning: red block, white tray, blue bowl; pick place, 2 steps.
    Plan:
    pick(object="red block") @ grasp=(61, 88)
    place(target="blue bowl") @ place=(30, 40)
    done()

The plan is :func:`robo_sim.expert.expert_plan`'s, formatted with
:func:`robo_common.plan_language.format_plan_text`, so :func:`~robo_common.plan_language.parse_model_output`
reads it back. The cached reasoning line first lists every object of the scene by name, from left
to right as the camera sees it (:func:`robo_sim.scene.left_to_right`), so a model could name what it
sees (which blocks of a colour, their sizes, bowl or tray) before it plans; training drops that
listing unless asked (``robo-stack train brain --scene-listing``): measured, it did not help the
small model (see ``models/brain_embedded/README.md``). Multi-block plans (rearrange) take their
blocks in that left-to-right order. Keypoint pixels are the expert's, except ``grasp``: the pixel of the object's
**top-face centre** (a flat, visible face, so lifting the pixel with the depth image lands on the
object rather than on its front edge or the table behind it).

Cache layout: ``<dir>/<split>_v<CACHE_FORMAT>/<seed>.npz`` with ``rgb`` (uint8 HxWx3) and ``meta`` (JSON text).
Existing files are skipped, so an interrupted generation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robo_brain.backends.transformers_backend import encoder_decoder_prompt
from robo_common.plan_language import format_plan_text
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

logger = logging.getLogger(__name__)

FAMILIES = ("pick_place", "stack", "rearrange", "push")
CACHE_FORMAT = 3
"""Version of the cached examples (2: scene listing, left-to-right rearrange order; 3: round bowls,
:data:`robo_sim.catalog.ROUND_CONTAINERS`); a new version renders into a new folder, so a stale
cache is never read."""
EVAL_SEED_OFFSET = 1_000_000
"""Evaluation seeds start here; training seeds are ``0 .. N-1``, so the two never overlap."""


@dataclass(frozen=True)
class Example:
    """One training / evaluation example.

    Attributes:
        seed: Task seed.
        split: ``seen`` or ``unseen``.
        family: Task family.
        instruction: The task's instruction.
        prompt: Decoder prefix (:func:`encoder_decoder_prompt` of the planner's messages).
        target: Model output to learn (reasoning, plan lines with keypoint pixels).
    """

    seed: int
    split: str
    family: str
    instruction: str
    prompt: str
    target: str


def family_for_seed(seed: int) -> str:
    """Families cycle with the seed, so any seed range is balanced across them."""
    return FAMILIES[seed % len(FAMILIES)]


def short_reasoning(family: str, n_steps: int, scene: Sequence[str] = ()) -> str:
    """The short reasoning line of the target text: the ``scene`` object names (left to right), then
    the family and the number of steps (few tokens: it is generated on every plan)."""
    listing = f"{', '.join(scene)}; " if scene else ""
    return f"{listing}{family.replace('_', ' ')}, {n_steps} steps."


def plan_prompt(instruction: str, width: int, height: int) -> str:
    """The decoder prompt the planner builds for ``instruction`` (same function as the back-end)."""
    from robo_brain.planner import Planner, sanitize_instruction

    messages = Planner(None).plan_messages(sanitize_instruction(instruction), width, height)  # type: ignore[arg-type]
    return encoder_decoder_prompt(messages)


def _top_centre_keypoint(world, name: str, kp: KeypointData) -> KeypointData:  # noqa: ANN001 - SimWorld
    info = world.object_by_name(name)
    pos, _ = world.object_pose(info.body_id)
    top = pos + np.array([0.0, 0.0, info.height / 2.0])
    u, v = world.project(top[None, :])
    return KeypointData(kp.name, tuple(float(c) for c in top), float(u[0]), float(v[0]), kp.confidence)


def target_plan(task, world) -> PlanData:  # noqa: ANN001 - robo_sim Task / SimWorld
    """The expert plan with ``grasp`` keypoints moved to the object's top-face centre (see the module docstring)."""
    from robo_sim.expert import expert_plan, parse_code

    plan = expert_plan(task, world)
    subtasks = []
    for st in plan.subtasks:
        kps = list(st.keypoints)
        if st.skill == "pick":
            obj = parse_code(st.code)[1]["object"]
            kps = [_top_centre_keypoint(world, obj, k) if k.name == "grasp" else k for k in kps]
        subtasks.append(SubtaskData(st.index, st.code, st.skill, kps))
    return PlanData(plan.plan_id, 0, plan.instruction, plan.reasoning, subtasks, frame_id=plan.frame_id)


def strip_scene_listing(target: str) -> str:
    """``target`` without the scene listing of its reasoning line (the format before cache format 2)."""
    head, sep, rest = target.partition("\n")
    if head.startswith("Reasoning: ") and "; " in head:
        head = "Reasoning: " + head.split("; ", 1)[1]
    return head + sep + rest


def target_text(plan: PlanData, family: str, scene: Sequence[str] = ()) -> str:
    """Model output of ``plan``: short reasoning (listing ``scene``), ``Plan:``, one line per subtask
    with integer pixels."""
    rounded = [SubtaskData(s.index, s.code, s.skill,
                           [KeypointData(k.name, k.point, float(round(k.u)), float(round(k.v)), k.confidence)
                            for k in s.keypoints]) for s in plan.subtasks]
    n_steps = sum(s.skill != "done" for s in plan.subtasks)
    rounded_plan = PlanData(plan.plan_id, 0, plan.instruction, "", rounded, frame_id=plan.frame_id)
    return format_plan_text(rounded_plan, reasoning=short_reasoning(family, n_steps, scene))


class SceneRenderer:
    """One simulator world reused for many scenes: task -> (rgb, depth, camera info, target plan)."""

    def __init__(self) -> None:
        """Create the pybullet world (robot at rest, default camera)."""
        from robo_sim.world import SimWorld, WorldConfig

        self.world = SimWorld(WorldConfig())

    def scene(self, seed: int, split: str, family: str | None = None):  # noqa: ANN201 - tuple of sim objects
        """Build the task of ``seed`` and return ``(task, rgb, depth, target PlanData)`` at its initial state."""
        from robo_sim.scene import build_scene
        from robo_sim.tasks import make_task

        task = make_task(seed, split, family or family_for_seed(seed))
        self.world.reset_robot()
        build_scene(self.world, task.scene)
        rgb, depth = self.world.render()
        return task, rgb, depth, target_plan(task, self.world)

    def example(self, seed: int, split: str) -> tuple[Example, np.ndarray]:
        """Render the example of ``seed``: ``(Example, rgb)``."""
        from robo_sim.scene import left_to_right

        task, rgb, _, plan = self.scene(seed, split)
        h, w = rgb.shape[:2]
        scene = [o.name for o in left_to_right(task.scene.objects)]
        ex = Example(seed, split, task.family, task.instruction, plan_prompt(task.instruction, w, h),
                     target_text(plan, task.family, scene))
        return ex, rgb

    def close(self) -> None:
        """Release the pybullet client."""
        self.world.close()


def example_path(cache: Path, split: str, seed: int) -> Path:
    """Cache file of one example."""
    return Path(cache) / f"{split}_v{CACHE_FORMAT}" / f"{seed:07d}.npz"


def save_example(path: Path, ex: Example, rgb: np.ndarray) -> None:
    """Write one example atomically (a partial file is never left under the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, rgb=rgb, meta=np.array(json.dumps(asdict(ex))))
    tmp.replace(path)


def load_example(path: Path) -> tuple[Example, np.ndarray]:
    """Read one cached example: ``(Example, rgb)``."""
    with np.load(path) as data:
        return Example(**json.loads(str(data["meta"]))), data["rgb"]


DEFAULT_RENDER_WORKERS = min(4, os.cpu_count() or 1)
"""Default processes of a render: the CPU cores, at most 4."""
RENDER_CHUNK = 250
"""Seeds per job of a parallel render (each job builds one pybullet world)."""


def _render_chunk(job: tuple[str, list[tuple[int, str]]]) -> int:
    """Worker: render and save the ``(seed, path)`` examples of one chunk in one world; return how many."""
    split, todo = job
    renderer = SceneRenderer()
    try:
        for seed, path in todo:
            save_example(Path(path), *renderer.example(seed, split))
    finally:
        renderer.close()
    return len(todo)


def generate(cache: str | Path, seeds: Sequence[int], split: str = "seen", progress: bool = True,
             workers: int = 1) -> list[Path]:
    """Render and cache the examples of ``seeds`` (skipping cached ones); return every example's path.

    ``workers`` > 1 renders chunks of :data:`RENDER_CHUNK` seeds in that many processes. An example
    depends on its seed only, so the files are the same whichever process renders them.
    """
    from robo_common.parallel import run_jobs

    if workers < 1:
        raise ValueError(f"generate: workers must be >= 1, got {workers!r}")
    cache = Path(cache)
    paths = [example_path(cache, split, s) for s in seeds]
    todo = [(s, str(p)) for s, p in zip(seeds, paths, strict=True) if not p.is_file()]
    logger.info("%d of %d %s examples cached in %s; rendering %d with %d worker(s)", len(paths) - len(todo),
                len(paths), split, cache, len(todo), workers)
    if todo:
        chunk = RENDER_CHUNK if workers > 1 else len(todo)
        jobs = [(split, todo[i:i + chunk]) for i in range(0, len(todo), chunk)]
        for _ in run_jobs(_render_chunk, jobs, workers, len(todo), f"render {split}", unit="scene",
                          size=lambda n: n, progress=progress):
            pass
    return paths


def iter_examples(paths: Sequence[Path]) -> Iterator[tuple[Example, np.ndarray]]:
    """Yield the cached examples at ``paths``."""
    for p in paths:
        yield load_example(p)
