"""Closed-loop evaluation in the simulator: a brain plans, the cerebellum executes, the brain corrects.

``robo-stack eval closed-loop --brain oracle|embedded|PATH``: per episode, the brain plans the
task's instruction from the rendered RGB-D image (``oracle``: the scripted expert's ground-truth
plan), a :class:`PlanExecutor` runs the cerebellum policy at its trained rate, and physics,
rendering (camera rate) and the simulator's perturbations run in the same process, no ROS
(``--ros`` in :mod:`robo_system.stack` runs the same episodes as three nodes over DDS). When the
cerebellum's monitor reports a failure, the brain is asked for a revised plan from the current
image (``--no-correction``: the episode ends there), up to ``max_corrections`` times.

The simulation does not advance while the brain thinks (on a robot the cerebellum holds the
pose meanwhile); brain wall time is reported separately and added to the time to success.

Reports success per family, corrections, time to success, the instruction-to-first-command
latency, the episodes a revised plan recovered, and failure detection: recall over the perturbed
episodes whose perturbation happened; precision over every first detection, where one in a clean
episode is a true positive only when the simulator's ground truth confirms it at that moment
(:func:`world_failure`: the fingers closed on nothing, the object left the hand or its keypoint,
the arm stalled). ``precision_strict`` counts every detection in a clean episode as false.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from robo_brain.lm.backend import is_lm_checkpoint
from robo_brain.params import DEFAULT_MODEL
from robo_brain.planner import FailureInfo, Planner, PlannerConfig, resume_subtasks
from robo_cerebellum.executor import PlanExecutor, State
from robo_cerebellum.monitor import MonitorConfig
from robo_cerebellum.policy import CerebellumPolicy, Observation
from robo_cerebellum.safety import SafetyConfig
from robo_common.parallel import run_jobs
from robo_common.plan_language import PlanParseError
from robo_common.plan_types import PlanData
from robo_common.rates import seconds_to_steps
from robo_common.resources import resource_path
from robo_sim.episode import Perturber, phase_output
from robo_sim.expert import expert_plan
from robo_sim.judge import world_failure
from robo_sim.scene import build_scene
from robo_sim.tasks import FAMILIES, Task, make_task
from robo_sim.world import SimWorld, WorldConfig
from robo_system.datasets.brain import camera_model

LOG = logging.getLogger(__name__)

@dataclass(frozen=True)
class BrainSpec:
    """Which brain plans: ``oracle`` (the scripted expert) or a transformers checkpoint folder.

    ``embedded`` names brain_node's default (``models/brain_lm``, the brain v2; ``models/brain_embedded`` is
    v1). ``snap_radius``: the
    planner's grasp-pixel snapping (the brain node's ``keypoint_snap_radius``, default 6). ``correction``: the
    planner's correction mode (``auto``, ``prompt`` or ``replan``; brain_node's ``correction`` parameter).
    """

    kind: str = "oracle"
    model_path: str = ""
    threads: int = 1
    snap_radius: int = 6
    correction: str = "auto"

    @classmethod
    def parse(cls, text: str) -> BrainSpec:
        """``oracle``, ``embedded`` or a checkpoint folder."""
        if text == "oracle":
            return cls("oracle")
        path = resource_path("models", DEFAULT_MODEL) if text == "embedded" else Path(text)
        if not ((Path(path) / "config.json").is_file() or is_lm_checkpoint(path)):
            raise ValueError(f"brain {text!r}: no config.json in {str(path)!r} (oracle, embedded, or a "
                             "transformers checkpoint folder)")
        return cls("model", str(path))

    @property
    def name(self) -> str:
        """Short label for reports."""
        return "oracle" if self.kind == "oracle" else Path(self.model_path).name


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Episode settings of the closed-loop evaluation."""

    camera_hz: float = 5.0
    """Rate of the frames the policy and the checks see (the rate of the training recordings' images)."""
    timeout_s: float = 60.0
    settle_s: float = 0.3
    failure_threshold: float = MonitorConfig.failure_threshold
    correction: bool = True
    max_corrections: int = 3
    correction_settle_s: float = 0.5
    """Simulated time the arm holds after a failure before the brain looks (as brain_node's parameter)."""
    verify: bool = True
    """A model brain checks the goals in the image when the cerebellum reports the plan complete, and redoes
    the steps whose goals do not hold (brain_node's ``verify_goals``)."""
    lockstep_period_s: float = 0.05
    """Over DDS only: sim_node waits at every multiple of this much simulated time for the cerebellum's step
    (``sim.launch.py``'s default); 0.0 runs the simulator in real time, beside the nodes."""

    def __post_init__(self) -> None:
        if (not self.camera_hz > 0 or self.timeout_s <= 0 or self.max_corrections < 0
                or not self.lockstep_period_s >= 0.0):
            raise ValueError("camera_hz and timeout_s must be > 0, max_corrections >= 0, "
                             f"lockstep_period_s >= 0: {self}")


@dataclass
class BrainAnswer:
    """A plan (None when the brain could not plan), why not, and the brain's wall time."""

    plan: PlanData | None
    error: str
    seconds: float
    findings: list[str] = field(default_factory=list)


class OracleBrain:
    """The scripted expert as the brain: ground-truth plans; a correction re-plans from the true state."""

    name = "oracle"

    def plan(self, task: Task, world: SimWorld) -> BrainAnswer:
        """The expert plan of ``task`` in the current world."""
        t0 = time.perf_counter()
        return BrainAnswer(expert_plan(task, world), "", time.perf_counter() - t0)

    def correct(self, plan: PlanData, failure: FailureInfo, task: Task, world: SimWorld) -> BrainAnswer:
        """Expert plan of the current state, resumed after the finished steps (as the replan mode does)."""
        t0 = time.perf_counter()
        full = expert_plan(task, world)
        try:
            subtasks, note = resume_subtasks(plan, failure, full.subtasks)
        except PlanParseError as exc:
            return BrainAnswer(None, str(exc), time.perf_counter() - t0)
        new = PlanData(plan.plan_id, plan.revision + 1, plan.instruction, f"{plan.reasoning}\n{note}", subtasks,
                       frame_id=plan.frame_id)
        return BrainAnswer(new, "", time.perf_counter() - t0)

    def verify(self, plan: PlanData, task: Task, world: SimWorld, earlier: list[PlanData]) -> BrainAnswer:
        """No look at the scene (over DDS the oracle's plans come from the client, with no brain_node)."""
        return BrainAnswer(None, "", 0.0)


class ModelBrain:
    """A :class:`~robo_brain.planner.Planner` over a transformers checkpoint, on rendered RGB-D images."""

    def __init__(self, spec: BrainSpec, max_corrections: int) -> None:
        """Load the checkpoint (``BackendError`` when it cannot load)."""
        from robo_brain.backends import BackendConfig, make_backend

        backend = make_backend(BackendConfig(backend="transformers", model_path=spec.model_path))
        self.planner = Planner(backend, PlannerConfig(max_corrections=max_corrections, snap_radius=spec.snap_radius,
                                                      correction=spec.correction))
        self.name = spec.name

    def plan(self, task: Task, world: SimWorld) -> BrainAnswer:
        """Plan the task's instruction from the current image."""
        rgb, depth = world.render()
        result = self.planner.plan(task.instruction, rgb, depth, camera_model(world), world.ee_pose()[0])
        return BrainAnswer(result.plan, result.reason, float(result.timing["total"]))

    def correct(self, plan: PlanData, failure: FailureInfo, task: Task, world: SimWorld) -> BrainAnswer:
        """Revise ``plan`` after ``failure`` from the current image."""
        rgb, depth = world.render()
        result = self.planner.correct(plan, failure, rgb, depth, camera_model(world), world.ee_pose()[0])
        return BrainAnswer(result.plan, result.reason, float(result.timing["total"]))

    def verify(self, plan: PlanData, task: Task, world: SimWorld, earlier: list[PlanData]) -> BrainAnswer:
        """Check the completed plan's goals (and those of its ``earlier`` revisions) in the current image: a
        revision that redoes unmet steps, or ``error`` when the task failed (no plan and no error: verified)."""
        rgb, depth = world.render()
        result = self.planner.verify(plan, rgb, depth, camera_model(world), earlier=earlier)
        return BrainAnswer(result.plan, result.reason, float(result.timing["total"]), result.findings)


def make_brain(spec: BrainSpec, cfg: ClosedLoopConfig) -> OracleBrain | ModelBrain:
    """The brain of ``spec``."""
    return OracleBrain() if spec.kind == "oracle" else ModelBrain(spec, cfg.max_corrections)


def _perturbed(injector: Perturber | None, plan: PlanData) -> PlanData:
    """Apply a plan-level perturbation; a plan it cannot apply to (a model's odd plan) stays as it is."""
    if injector is None:
        return plan
    try:
        return injector.perturb_plan(plan)
    except (KeyError, IndexError, ValueError) as exc:
        LOG.info("plan-level perturbation %s not applicable to this plan: %s", injector.mode, exc)
        return plan


def run_episode(policy: CerebellumPolicy, brain: OracleBrain | ModelBrain, seed: int, split: str,
                family: str | None, perturb: str | None, cfg: ClosedLoopConfig, world: SimWorld) -> dict:
    """One closed-loop episode; returns its summary row (see :func:`report` for the fields used)."""
    t0 = time.perf_counter()
    task = make_task(seed, split, family)
    world.reset_robot()
    build_scene(world, task.scene)
    injector = Perturber(perturb, task, world, np.random.default_rng([seed, 7])) if perturb else None
    row = {"seed": seed, "family": task.family, "perturb": perturb, "instruction": task.instruction,
           "success": False, "steps": 0, "corrections": 0, "brain_s": 0.0, "first_command_s": None,
           "detected": None, "confirmed": "", "detections": [], "brain_error": "", "plans": [],
           "verifications": [], "verify_error": ""}
    answer = brain.plan(task, world)
    sent: list[PlanData] = []  # every revision handed to the cerebellum (the goal check covers them all)
    row["brain_s"] += answer.seconds
    executor = PlanExecutor(policy, SafetyConfig(), MonitorConfig(failure_threshold=cfg.failure_threshold))
    if answer.plan is not None:
        plan = _perturbed(injector, answer.plan)
        row["plans"].append(plan.code_lines())
        sent.append(plan)
        pos, quat = world.ee_pose()
        try:
            executor.set_plan(plan, pos, quat)
        except ValueError as exc:
            row["brain_error"] = str(exc)
    else:
        row["brain_error"] = answer.error
    hz = policy.cfg.policy_hz
    camera_every = seconds_to_steps(1.0 / cfg.camera_hz, hz)  # 4 steps at 20 Hz, 40 at 200 Hz
    camera = camera_model(world)
    step = 0
    while step < int(cfg.timeout_s * hz):
        if executor.state != State.RUNNING:
            if not (cfg.verify and executor.state == State.SUCCEEDED and not row["verify_error"]):
                break
            world.settle(cfg.correction_settle_s)  # as brain_node: a frame taken after the arm let go
            earlier = [p for p in sent if p.revision < executor.plan.revision]
            checked = brain.verify(executor.plan, task, world, earlier)
            row["brain_s"] += checked.seconds + cfg.correction_settle_s
            row["verifications"].append(checked.findings)
            if checked.plan is not None and not cfg.correction:
                row["verify_error"] = "goal not reached: " + "; ".join(checked.findings)
            if checked.plan is None or not cfg.correction:
                row["verify_error"] = row["verify_error"] or checked.error or ""
                break  # verified (the stack's SUCCEEDED stands) or failed (it becomes FAILED)
            row["corrections"] += 1
            row["plans"].append(checked.plan.code_lines())
            sent.append(checked.plan)
            pos, quat = world.ee_pose()
            try:
                executor.set_plan(checked.plan, pos, quat)
            except ValueError as exc:
                row["brain_error"] = row["verify_error"] = str(exc)
                break
            continue
        if step % camera_every == 0:
            rgb, depth = world.render()
            policy.update_image(rgb, depth)
            executor.update_view(depth, camera, rgb)
        pos, quat = world.ee_pose()
        tick_t0 = time.perf_counter()
        result = executor.tick(Observation(pos, quat, world.gripper_width01()), 0.0, 0.0, 1.0 / hz)
        if row["first_command_s"] is None:
            row["first_command_s"] = row["brain_s"] + time.perf_counter() - tick_t0
        if result.failure is not None:
            row["detections"].append((result.failure.kind, step))
            if row["detected"] is None and injector is None:
                row["confirmed"] = world_failure(world, executor.plan, result.subtask_index, result.failure.kind)
            row["detected"] = row["detected"] or (result.failure.kind, step)
            if cfg.correction and row["corrections"] < cfg.max_corrections:
                commanded = result.command.target_pos if result.command is not None else None
                failure = FailureInfo(result.failure.kind, result.failure.detail, result.subtask_index,
                                      np.asarray(pos), commanded)
                world.settle(cfg.correction_settle_s)  # a dropped object lands before the brain looks
                revised = brain.correct(executor.plan, failure, task, world)
                row["brain_s"] += revised.seconds + cfg.correction_settle_s
                if revised.plan is not None:
                    row["corrections"] += 1
                    row["plans"].append(revised.plan.code_lines())
                    sent.append(revised.plan)
                    try:
                        executor.set_plan(revised.plan, pos, quat)
                    except ValueError as exc:
                        row["brain_error"] = str(exc)
                else:
                    row["brain_error"] = revised.error
            if executor.state == State.RUNNING:
                continue
        gripper = result.gripper if result.gripper is not None else 1.0
        if injector:
            gripper = injector.before_step(step, phase_output(executor.plan, result.subtask_index, result.progress,
                                                              gripper))
        world.set_ee_target(result.safe.pos, result.safe.quat)
        world.set_gripper(gripper)
        world.step_control()
        step += 1
    world.settle(cfg.settle_s)
    row["success"] = bool(task.check_success(world))
    row["steps"], row["sim_s"] = step, step / hz
    row["state"] = executor.state.name
    # the stack's own verdict, beside the world's: the cerebellum's SUCCEEDED unless the brain saw a goal unmet
    row["stack_success"] = executor.state == State.SUCCEEDED and not row["verify_error"]
    row["perturbation"] = (injector.event.kind, injector.event.step) if injector and injector.event else None
    row["time_to_success_s"] = row["sim_s"] + row["brain_s"] if row["success"] else None
    row["wall_s"] = time.perf_counter() - t0
    return row


def _worker(job: tuple[str, BrainSpec, list[tuple[int, str, str | None, str | None]], ClosedLoopConfig]) -> list[dict]:
    import torch

    checkpoint, spec, episodes, cfg = job
    torch.set_num_threads(spec.threads)
    policy = CerebellumPolicy.load(checkpoint)
    brain = make_brain(spec, cfg)
    world = SimWorld(WorldConfig(control_period=1.0 / policy.cfg.policy_hz))
    try:
        return [run_episode(policy, brain, seed, split, fam, pert, cfg, world) for seed, split, fam, pert in episodes]
    finally:
        world.close()


def episode_specs(episodes: int, split: str, modes: list[str | None], seed0: int,
                  families: list[str] | None = None) -> list[tuple]:
    """``(seed, split, family, mode)`` for ``episodes`` episodes per mode; ``families`` (default: all four)
    cycle, seeds are shared across modes so that runs with and without a setting compare the same scenes.

    Raises:
        ValueError: a family the simulator does not have.
    """
    fams = tuple(families) if families else FAMILIES
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown task families {unknown}; the simulator has {list(FAMILIES)}")
    return [(seed0 + i // len(fams), split, fams[i % len(fams)], mode) for mode in modes for i in range(episodes)]


def run_specs(checkpoint: Path, brain: BrainSpec, specs: list[tuple], cfg: ClosedLoopConfig, workers: int = 2,
              progress: bool = True, label: str = "closed loop") -> list[dict]:
    """Run the episodes of ``specs`` over ``workers`` processes; rows in the order of ``specs``."""
    chunks = [specs[i:i + 4] for i in range(0, len(specs), 4)]
    jobs = [(str(checkpoint), brain, chunk, cfg) for chunk in chunks]
    rows = [row for part in run_jobs(_worker, jobs, workers, len(specs), label, size=len, progress=progress)
            for row in part]
    order = {(seed, fam, mode): i for i, (seed, _, fam, mode) in enumerate(specs)}
    return sorted(rows, key=lambda r: order[(r["seed"], r["family"], r["perturb"])])


def evaluate(checkpoint: Path, episodes: int, split: str, perturb: list[str] | None = None, seed0: int = 0,
             workers: int = 2, cfg: ClosedLoopConfig | None = None, progress: bool = True,
             brain: BrainSpec | None = None, families: list[str] | None = None) -> dict:
    """Run ``episodes`` clean episodes plus ``episodes`` per perturbation mode (of ``families``, default all);
    returns the report."""
    cfg = cfg or ClosedLoopConfig()
    brain = brain or BrainSpec()
    specs = episode_specs(episodes, split, [None, *(perturb or [])], seed0, families)
    t0 = time.perf_counter()
    rows = run_specs(checkpoint, brain, specs, cfg, workers, progress, f"closed loop {brain.name} {split}")
    out = report(rows, split, time.perf_counter() - t0)
    out.update(brain=brain.name, correction=cfg.correction)
    return out


def _rate(rows: list[dict]) -> float | None:
    return float(np.mean([r["success"] for r in rows])) if rows else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(rows: list[dict], split: str, wall_s: float) -> dict:
    """Success per family (clean episodes), corrections, latencies, and failure detection (see module doc)."""
    clean = [r for r in rows if r["perturb"] is None]
    by_family: dict[str, list[dict]] = defaultdict(list)
    for r in clean:
        by_family[r["family"]].append(r)
    perturbed = [r for r in rows if r["perturb"] is not None]
    by_mode: dict[str, list[dict]] = defaultdict(list)
    for r in perturbed:
        by_mode[r["perturb"]].append(r)
    tp = sum(r["detected"] is not None for r in perturbed if r["perturbation"] is not None)
    fn = sum(r["detected"] is None for r in perturbed if r["perturbation"] is not None)
    fp_strict = sum(r["detected"] is not None for r in clean)
    confirmed = sum(r["detected"] is not None and bool(r.get("confirmed")) for r in clean)
    fp = fp_strict - confirmed
    first = [r["first_command_s"] for r in rows if r["first_command_s"] is not None]
    verdicts = [(bool(r["stack_success"]), bool(r["success"])) for r in rows if r.get("stack_success") is not None]
    tts = [r["time_to_success_s"] for r in rows if r["time_to_success_s"] is not None]
    return {
        "episodes": len(clean),
        "split": split,
        "success_rate": {f: _rate(rs) for f, rs in sorted(by_family.items())},
        "overall_success": _rate(clean),
        "corrections": int(sum(r["corrections"] for r in rows)),
        "corrections_per_episode": float(np.mean([r["corrections"] for r in rows])) if rows else None,
        "recovered_after_correction": int(sum(r["success"] and r["corrections"] > 0 for r in rows)),
        "time_to_success_s_median": _pct(tts, 50),
        "first_command_s_p50": _pct(first, 50),
        "first_command_s_p95": _pct(first, 95),
        "brain_failures": int(sum(bool(r["brain_error"]) for r in rows)),
        "perturbed_episodes": len(perturbed),
        "perturbed_success": _rate(perturbed),
        "perturbed_success_by_mode": {m: _rate(rs) for m, rs in sorted(by_mode.items())},
        "failure_detection": {
            "precision": (tp + confirmed) / (tp + confirmed + fp) if tp + confirmed + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "recall_by_mode": _recall(by_mode),
            "recall_by_family": _recall(_group(perturbed, "family")),
            "precision_strict": tp / (tp + fp_strict) if tp + fp_strict else None,
            "true_positives": tp, "confirmed_in_clean": confirmed, "false_positives": fp,
            "false_negatives": fn,
            "clean_flagged": [(r["family"], r["seed"], r["detected"][0], r.get("confirmed", ""))
                              for r in clean if r["detected"]],
            "detected_kinds": _count(d[0] for r in rows for d in r["detections"]),
        },
        "verdict": verdict_matrix(verdicts),
        "verdict_mismatches": [(r["family"], r["seed"], r["perturb"], "SUCCEEDED" if r["stack_success"] else "FAILED",
                                "success" if r["success"] else "failure", str(r["state"]), (r.get("plans") or [[]])[-1])
                               for r in rows if r.get("stack_success") is not None
                               and bool(r["stack_success"]) != bool(r["success"])],
        "mean_sim_s": float(np.mean([r["sim_s"] for r in rows])) if rows else None,
        "wall_s": wall_s,
        "failed_seeds": {f: [r["seed"] for r in rs if not r["success"]] for f, rs in sorted(by_family.items())},
        "brain_errors": sorted({r["brain_error"][:160] for r in rows if r["brain_error"]})[:10],
    }


def verdict_matrix(pairs: list[tuple[bool, bool]]) -> dict:
    """The stack's final SUCCEEDED/FAILED against the simulator's success check: a confusion matrix and the
    share of episodes where they agree (``pairs``: (stack says succeeded, world says succeeded))."""
    cells = {"succeeded_and_world_success": (True, True), "succeeded_but_world_failure": (True, False),
             "failed_but_world_success": (False, True), "failed_and_world_failure": (False, False)}
    out: dict = {name: sum(p == cell for p in pairs) for name, cell in cells.items()}
    out["episodes"] = len(pairs)
    out["agreement"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
    return out


def correction_value(checkpoint: Path, brain: BrainSpec, episodes: int, split: str, modes: list[str],
                     seed0: int = 0, workers: int = 2, cfg: ClosedLoopConfig | None = None,
                     progress: bool = True, ros: bool = False, families: list[str] | None = None) -> dict:
    """Success with and without correction on the same perturbed episodes (of ``families``, default all), per
    perturbation mode.

    ``ros``: run the episodes as nodes over DDS (sim_node injects the perturbations; ``workers`` stacks
    side by side, each in its own ROS domain) instead of in one process.

    ``recovered_by_revision``: episodes that succeeded with correction, after at least one revised
    plan, and failed without correction (the revision is what made the difference).
    """
    cfg = cfg or ClosedLoopConfig()
    specs = episode_specs(episodes, split, list(modes), seed0, families)
    t0 = time.perf_counter()
    if ros:
        from robo_system.stack import ros_rows

        with_c = ros_rows(checkpoint, brain, specs, replace(cfg, correction=True), progress=progress, stacks=workers)
        without = ros_rows(checkpoint, brain, specs, replace(cfg, correction=False), progress=progress,
                           stacks=workers)
    else:
        with_c = run_specs(checkpoint, brain, specs, replace(cfg, correction=True), workers, progress,
                           f"{brain.name} {split} with correction")
        without = run_specs(checkpoint, brain, specs, replace(cfg, correction=False), workers, progress,
                            f"{brain.name} {split} without correction")
    table = {}
    for mode in modes:
        pairs = [(a, b) for a, b in zip(with_c, without, strict=True) if a["perturb"] == mode]
        table[mode] = {
            "episodes": len(pairs),
            "success_with_correction": _rate([a for a, _ in pairs]),
            "success_without_correction": _rate([b for _, b in pairs]),
            "corrections": int(sum(a["corrections"] for a, _ in pairs)),
            "recovered_by_revision": int(sum(a["success"] and a["corrections"] > 0 and not b["success"]
                                             for a, b in pairs)),
            "detected": int(sum(b["detected"] is not None for _, b in pairs)),
        }
    gain = {m: (t["success_with_correction"] - t["success_without_correction"]) for m, t in table.items()}
    return {"brain": brain.name, "split": split, "episodes_per_mode": episodes, "modes": table,
            "mode": "ros" if ros else "in-process",
            "success_with_correction": _rate(with_c), "success_without_correction": _rate(without),
            "gain_points": 100 * (_rate(with_c) - _rate(without)) if with_c else None,
            "gain_points_by_mode": {m: 100 * g for m, g in gain.items()},
            "wall_s": time.perf_counter() - t0}


def correction_table(result: dict) -> str:
    """The Markdown table of :func:`correction_value` (what the README shows)."""
    lines = [f"brain `{result['brain']}`, split `{result['split']}`, {result['episodes_per_mode']} episodes per mode",
             "", "| perturbation | success, no correction | success, with correction | corrections | "
             "recovered by the revised plan |", "|---|---|---|---|---|"]
    for mode, t in result["modes"].items():
        lines.append(f"| {mode} | {t['success_without_correction']:.0%} | {t['success_with_correction']:.0%} | "
                     f"{t['corrections']} | {t['recovered_by_revision']} |")
    lines.append(f"| **all** | {result['success_without_correction']:.0%} | {result['success_with_correction']:.0%}"
                 f" | {sum(t['corrections'] for t in result['modes'].values())} | "
                 f"{sum(t['recovered_by_revision'] for t in result['modes'].values())} |")
    return "\n".join(lines) + "\n"


def _group(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def _recall(groups: dict[str, list[dict]]) -> dict[str, float | None]:
    """Detected over happened perturbations, per group."""
    out = {}
    for name, rs in sorted(groups.items()):
        happened = [r for r in rs if r["perturbation"] is not None]
        out[name] = sum(r["detected"] is not None for r in happened) / len(happened) if happened else None
    return out


def _count(items: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
