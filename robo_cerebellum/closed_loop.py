"""Closed-loop evaluation in the simulator: a plan source drives the cerebellum, which drives the arm.

``robo-stack eval closed-loop --brain oracle``: the scripted expert's plan (ground truth, or its
perturbed version for plan-level perturbations) is handed to a :class:`PlanExecutor` running the
cerebellum policy at its trained rate; physics, rendering (camera rate) and step-level
perturbations run in the same process, no ROS. Reports success per family and, on perturbed
episodes, failure-detection precision/recall of the cerebellum's monitor against the simulator's
own ground-truth failure labels.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_cerebellum.executor import PlanExecutor, State
from robo_cerebellum.monitor import MonitorConfig
from robo_cerebellum.policy import CerebellumPolicy, Observation
from robo_cerebellum.safety import SafetyConfig
from robo_common.parallel import run_jobs
from robo_sim.episode import Perturber
from robo_sim.expert import ControlOutput, expert_plan
from robo_sim.scene import build_scene
from robo_sim.tasks import FAMILIES, make_task
from robo_sim.world import SimWorld, WorldConfig

LOG = logging.getLogger(__name__)

PHASES = {"pick": ("approach", "descend", "close", "lift"), "place": ("carry", "descend", "open", "retreat"),
          "push": ("approach", "lower", "push", "retreat", "retreat")}
"""Phase names by progress quarter/fifth, as the expert labels them (for step-level perturbations)."""


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Episode settings of the closed-loop evaluation."""

    camera_every: int = 4
    timeout_s: float = 60.0
    settle_s: float = 0.3
    failure_threshold: float = MonitorConfig.failure_threshold

    def __post_init__(self) -> None:
        if self.camera_every < 1 or self.timeout_s <= 0:
            raise ValueError(f"camera_every must be >= 1 and timeout_s > 0: {self}")


def _phase_output(executor: PlanExecutor, index: int, progress: float, gripper: float) -> ControlOutput:
    """What the step-level perturbations need to know: skill, phase (from progress), subtask."""
    sub = executor.plan.subtasks[index]
    names = PHASES.get(sub.skill, ("run",))
    phase = names[min(len(names) - 1, int(progress * len(names)))]
    return ControlOutput(np.zeros(3), np.array([0, 0, 0, 1.0]), gripper, index, sub.skill, phase,
                         progress, False, False)


def run_episode(policy: CerebellumPolicy, seed: int, split: str, family: str | None, perturb: str | None,
                cfg: ClosedLoopConfig, world: SimWorld) -> dict:
    """One closed-loop episode with the oracle plan; returns its summary row."""
    t0 = time.perf_counter()
    task = make_task(seed, split, family)
    world.reset_robot()
    build_scene(world, task.scene)
    plan = expert_plan(task, world)
    injector = Perturber(perturb, task, world, np.random.default_rng([seed, 7])) if perturb else None
    if injector:
        plan = injector.perturb_plan(plan)
    executor = PlanExecutor(policy, SafetyConfig(), MonitorConfig(failure_threshold=cfg.failure_threshold))
    pos, quat = world.ee_pose()
    executor.set_plan(plan, pos, quat)
    hz = policy.cfg.policy_hz
    detected, step = None, 0
    while step < int(cfg.timeout_s * hz) and executor.state == State.RUNNING:
        if step % cfg.camera_every == 0:
            policy.update_image(*world.render())
        pos, quat = world.ee_pose()
        result = executor.tick(Observation(pos, quat, world.gripper_width01()), 0.0, 0.0, 1.0 / hz)
        if result.failure is not None:
            detected = (result.failure.kind, step)
        gripper = result.gripper if result.gripper is not None else 1.0
        if injector:
            gripper = injector.before_step(step, _phase_output(executor, result.subtask_index, result.progress,
                                                               gripper))
        world.set_ee_target(result.safe.pos, result.safe.quat)
        world.set_gripper(gripper)
        world.step_control()
        step += 1
    world.settle(cfg.settle_s)
    success = bool(task.check_success(world))
    return {"seed": seed, "family": task.family, "perturb": perturb, "success": success, "steps": step,
            "state": executor.state.name, "detected": detected,
            "perturbation": (injector.event.kind, injector.event.step) if injector and injector.event else None,
            "wall_s": time.perf_counter() - t0, "sim_s": step / hz}


def _worker(job: tuple[str, list[tuple[int, str, str | None, str | None]], ClosedLoopConfig]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    checkpoint, episodes, cfg = job
    policy = CerebellumPolicy.load(checkpoint)
    world = SimWorld(WorldConfig(control_period=1.0 / policy.cfg.policy_hz))
    try:
        return [run_episode(policy, seed, split, fam, pert, cfg, world) for seed, split, fam, pert in episodes]
    finally:
        world.close()


def evaluate(checkpoint: Path, episodes: int, split: str, perturb: list[str] | None = None, seed0: int = 0,
             workers: int = 2, cfg: ClosedLoopConfig | None = None, progress: bool = True) -> dict:
    """Run ``episodes`` episodes per perturbation setting, spread over the families; returns the report.

    ``perturb``: modes to evaluate in addition to clean episodes (each gets ``episodes`` episodes).
    """
    cfg = cfg or ClosedLoopConfig()
    specs = []
    for mode in [None, *(perturb or [])]:
        for i in range(episodes):
            specs.append((seed0 + i // len(FAMILIES), split, FAMILIES[i % len(FAMILIES)], mode))
    chunks = [specs[i:i + 4] for i in range(0, len(specs), 4)]
    jobs = [(str(checkpoint), chunk, cfg) for chunk in chunks]
    t0 = time.perf_counter()
    rows = [row for part in run_jobs(_worker, jobs, workers, len(specs), f"closed loop {split}", size=len,
                                     progress=progress) for row in part]
    return report(rows, split, time.perf_counter() - t0)


def report(rows: list[dict], split: str, wall_s: float) -> dict:
    """Success per family (clean episodes) and failure detection precision/recall (see module doc)."""
    clean = [r for r in rows if r["perturb"] is None]
    by_family: dict[str, list[dict]] = defaultdict(list)
    for r in clean:
        by_family[r["family"]].append(r)
    perturbed = [r for r in rows if r["perturb"] is not None]
    tp = sum(r["detected"] is not None for r in perturbed if r["perturbation"] is not None)
    fn = sum(r["detected"] is None for r in perturbed if r["perturbation"] is not None)
    fp = sum(r["detected"] is not None for r in clean)
    return {
        "episodes": len(clean),
        "split": split,
        "brain": "oracle",
        "success_rate": {f: float(np.mean([r["success"] for r in rs])) for f, rs in sorted(by_family.items())},
        "overall_success": float(np.mean([r["success"] for r in clean])) if clean else None,
        "perturbed_episodes": len(perturbed),
        "perturbed_success": float(np.mean([r["success"] for r in perturbed])) if perturbed else None,
        "failure_detection": {
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "clean_flagged": [(r["family"], r["seed"], r["detected"][0]) for r in clean if r["detected"]],
            "detected_kinds": _count(r["detected"][0] for r in rows if r["detected"]),
        },
        "mean_sim_s": float(np.mean([r["sim_s"] for r in rows])) if rows else None,
        "wall_s": wall_s,
        "failed_seeds": {f: [r["seed"] for r in rs if not r["success"]] for f, rs in sorted(by_family.items())},
    }


def _count(items: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
