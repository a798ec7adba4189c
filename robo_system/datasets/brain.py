"""The embedded brain's training examples and evaluation scenes, rendered from the simulator.

The brain's training and evaluation code (:mod:`robo_brain.embedded`) never imports the
simulator: it takes the callables and data of this module. :func:`generate` renders and caches
examples (the format is :mod:`robo_brain.embedded.dataset`'s), :data:`SIM_EXAMPLES` is what
:func:`robo_brain.embedded.train.train` needs, and :func:`evaluate_brain` runs
:func:`robo_brain.embedded.evaluate.evaluate` on rendered scenes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from robo_brain.embedded.dataset import (
    Example,
    example_path,
    family_for_seed,
    plan_prompt,
    save_example,
    target_text,
)
from robo_brain.embedded.evaluate import EvalConfig, EvalScene, evaluate
from robo_brain.embedded.train import ExampleSource
from robo_common.camera import CameraModel
from robo_common.parallel import run_jobs
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from robo_sim.expert import expert_plan, parse_code
from robo_sim.scene import build_scene, left_to_right
from robo_sim.tasks import TEMPLATES, make_task
from robo_sim.world import SimWorld, WorldConfig

logger = logging.getLogger(__name__)


def camera_model(world: SimWorld) -> CameraModel:
    """The brain's camera model of the simulator's camera."""
    info = world.camera_info()
    return CameraModel(info.K, info.T_base_camera, info.width, info.height)


def _top_centre_keypoint(world: SimWorld, name: str, kp: KeypointData) -> KeypointData:
    info = world.object_by_name(name)
    pos, _ = world.object_pose(info.body_id)
    top = pos + np.array([0.0, 0.0, info.height / 2.0])
    u, v = world.project(top[None, :])
    return KeypointData(kp.name, tuple(float(c) for c in top), float(u[0]), float(v[0]), kp.confidence)


def target_plan(task, world: SimWorld) -> PlanData:  # noqa: ANN001 - robo_sim Task
    """The expert plan with ``grasp`` keypoints moved to the object's top-face centre (see the module docstring)."""
    plan = expert_plan(task, world)
    subtasks = []
    for st in plan.subtasks:
        kps = list(st.keypoints)
        if st.skill == "pick":
            obj = parse_code(st.code)[1]["object"]
            kps = [_top_centre_keypoint(world, obj, k) if k.name == "grasp" else k for k in kps]
        subtasks.append(SubtaskData(st.index, st.code, st.skill, kps))
    return PlanData(plan.plan_id, 0, plan.instruction, plan.reasoning, subtasks, frame_id=plan.frame_id)


class SceneRenderer:
    """One simulator world reused for many scenes: task -> (rgb, depth, camera info, target plan)."""

    def __init__(self) -> None:
        """Create the pybullet world (robot at rest, default camera)."""
        self.world = SimWorld(WorldConfig())

    def scene(self, seed: int, split: str, family: str | None = None):  # noqa: ANN201 - tuple of sim objects
        """Build the task of ``seed`` and return ``(task, rgb, depth, target PlanData)`` at its initial state."""
        task = make_task(seed, split, family or family_for_seed(seed))
        self.world.reset_robot()
        build_scene(self.world, task.scene)
        rgb, depth = self.world.render()
        return task, rgb, depth, target_plan(task, self.world)

    def example(self, seed: int, split: str) -> tuple[Example, np.ndarray]:
        """Render the example of ``seed``: ``(Example, rgb)``."""
        task, rgb, _, plan = self.scene(seed, split)
        h, w = rgb.shape[:2]
        scene = [o.name for o in left_to_right(task.scene.objects)]
        ex = Example(seed, split, task.family, task.instruction, plan_prompt(task.instruction, w, h),
                     target_text(plan, task.family, scene))
        return ex, rgb

    def eval_scene(self, seed: int, split: str, instruction: str | None = None) -> EvalScene:
        """The scene of ``seed`` as the evaluation plans it: images, camera, target and expert plans
        (``instruction`` instead of the task's own when given)."""
        task, rgb, depth, target = self.scene(seed, split)
        camera = camera_model(self.world)
        return EvalScene(seed, task.family, task.instruction if instruction is None else instruction, rgb, depth,
                         camera, target, expert_plan(task, self.world))

    def close(self) -> None:
        """Release the pybullet client."""
        self.world.close()


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


def scene_colours(ex: Example) -> tuple[str, ...]:
    """Colours of every object in the scene of a cached example (its task is rebuilt from the seed)."""
    return tuple(o.color for o in make_task(ex.seed, ex.split, ex.family).scene.objects)


def seen_templates() -> Mapping[str, Sequence[str]]:
    """The seen split's instruction templates per template key (what the paraphrase augmentation re-says)."""
    return {key: tuple(pools["seen"]) for key, pools in TEMPLATES.items()}


SIM_EXAMPLES = ExampleSource(render=generate, scene_colours=scene_colours, templates=seen_templates())
"""Training examples from the simulator: the :class:`~robo_brain.embedded.train.ExampleSource` of ``train brain``."""


def evaluate_brain(cfg: EvalConfig, planner=None, progress: bool = True, keep_outputs: int = 5) -> dict:  # noqa: ANN001
    """:func:`robo_brain.embedded.evaluate.evaluate` on scenes rendered in one simulator world, or with
    ``cfg.instructions`` :func:`evaluate_paraphrases`."""
    if cfg.instructions:
        return evaluate_paraphrases(cfg, planner, progress, keep_outputs)
    renderer = SceneRenderer()
    try:
        return evaluate(cfg, renderer.eval_scene, planner, progress, keep_outputs)
    finally:
        renderer.close()


def evaluate_paraphrases(cfg: EvalConfig, planner=None, progress: bool = True,  # noqa: ANN001
                         keep_outputs: int = 5) -> dict:
    """Plan each entry of the paraphrase file ``cfg.instructions`` on ``cfg.scenes_per_instruction`` scenes of
    its family and variant (:func:`robo_system.datasets.paraphrases.assign_scenes`, seeds from
    ``cfg.seed_offset``), filled from each scene's task, and score the plans like the templated evaluation.

    The report is :func:`robo_brain.embedded.evaluate.report`'s (overall, ``per_family``, ``heldout_colour``)
    with ``per_variant`` (``rearrange/all``, ``rearrange/sort``), ``per_tag`` and ``per_entry`` (one row per
    planned scene), and ``templated_same_scenes``: the same scenes planned with their tasks' own templated
    instructions, the comparison that isolates the wording.
    """
    from robo_brain.embedded.evaluate import make_planner, report, run_episodes, summarize
    from robo_system.datasets.paraphrases import assign_scenes, load_paraphrases

    entries = load_paraphrases(cfg.instructions)
    todo = assign_scenes(entries, cfg.split, cfg.seed_offset, cfg.scenes_per_instruction)
    planner = planner or make_planner(cfg)
    renderer = SceneRenderer()
    try:
        para = run_episodes(cfg, (renderer.eval_scene(a.seed, cfg.split, a.instruction) for a in todo), planner,
                            progress, total=len(todo))
        base = run_episodes(cfg, (renderer.eval_scene(a.seed, cfg.split) for a in todo), planner, progress,
                            total=len(todo))
    finally:
        renderer.close()
    out = report(cfg, para, keep_outputs)
    out["instructions"] = str(cfg.instructions)
    out["entries"] = len(entries)
    out["scenes_per_instruction"] = cfg.scenes_per_instruction
    out["entries_per_family"] = {f"{f}/{v}" if v else f: sum(e.family == f and e.variant == v for e in entries)
                                 for f, v in sorted({(e.family, e.variant) for e in entries})}

    def key(a) -> str:  # noqa: ANN001
        return f"{a.entry.family}/{a.entry.variant}" if a.entry.variant else a.entry.family

    variants = sorted({key(a) for a in todo if a.entry.variant})
    out["per_variant"] = {v: summarize([e for a, e in zip(todo, para, strict=True) if key(a) == v])
                          for v in variants}
    tags = sorted({t for a in todo for t in a.entry.tags})
    out["per_tag"] = {t: summarize([e for a, e in zip(todo, para, strict=True) if t in a.entry.tags])
                      for t in tags}
    out["templated_same_scenes"] = {
        **{k: v for k, v in summarize(base).items() if not isinstance(v, dict | list)},
        "per_family": {f: summarize([e for e in base if e.family == f]) for f in sorted({e.family for e in base})},
        "per_variant": {v: summarize([e for a, e in zip(todo, base, strict=True) if key(a) == v]) for v in variants},
    }
    out["per_entry"] = [{"line": a.entry.line, "family": a.entry.family, "variant": a.entry.variant,
                         "seed": a.seed, "instruction": a.instruction, "exact": e.exact,
                         "templated_instruction": b.instruction, "templated_exact": b.exact,
                         "expected": list(e.expected),
                         "output": e.output if not e.exact else ""}
                        for a, e, b in zip(todo, para, base, strict=True)]
    return out
