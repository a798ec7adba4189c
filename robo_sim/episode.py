"""Closed-loop episodes: the scripted expert drives the world, with optional perturbations and rendering.

Perturbation modes and the failure kind each one is labelled with:

* ``grasp_offset``: the first grasp keypoint is shifted 6.5 cm sideways (along the hand x axis,
  so the fingers close beside the block) -> ``grasp_missed``. For a push the push keypoints are
  shifted 9 cm sideways -> ``no_progress``.
* ``nudge``: the object is pushed 7 cm away when the approach ends -> ``grasp_missed``
  (push: shifted sideways when the push starts -> ``no_progress``).
* ``slip``: the fingers open for 0.4 s mid-carry so the block falls -> ``object_dropped``
  (push: the block is knocked 7 cm sideways mid-push -> ``no_progress``).
* ``wrong_keypoint``: the first grasp keypoint is moved onto another object (or 12 cm away on
  the table) -> ``grasp_missed`` (push: push keypoints moved onto another spot -> ``no_progress``).

The failure monitor labels ``grasp_missed`` (picked object not lifted after a pick),
``object_dropped`` (held object left the fingers during a place), ``no_progress`` (push moved the
object too little), ``tracking_error`` (measured TCP > 5 cm from the command for 10 steps) and
``timeout``. An episode stops at its first failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robo_common.plan_types import KeypointData, PlanData
from robo_common.rates import seconds_to_steps
from robo_sim import catalog
from robo_sim.expert import ControlOutput, ExpertConfig, ExpertController, expert_plan, parse_code
from robo_sim.scene import build_scene
from robo_sim.tasks import PUSH_MIN_ALONG, Task, make_task
from robo_sim.world import SimWorld, WorldConfig

logger = logging.getLogger(__name__)

EXPECTED_KIND = {
    "grasp_offset": "grasp_missed",
    "nudge": "grasp_missed",
    "slip": "object_dropped",
    "wrong_keypoint": "grasp_missed",
}
"""Failure kind each perturbation is expected to cause in grasping families (push: ``no_progress``)."""


@dataclass
class FailureLabel:
    """A labelled failure or perturbation event: FailureReport kind, control step and detail."""

    kind: str
    step: int
    detail: str = ""


@dataclass
class StepRecord:
    """Everything observable at one control step.

    The command (target, gripper) was issued at ``time - control period``; the measured state
    and the images are taken at ``time``, after the physics ran for one control period.
    ``time`` counts simulated seconds from the start of the episode's first control step.
    """

    step: int
    time: float
    target_pos: np.ndarray
    target_quat: np.ndarray
    gripper_command: float
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    joint_names: list[str]
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    joint_efforts: np.ndarray
    gripper_width: float
    subtask_index: int
    skill: str
    phase: str
    progress: float
    clamped: bool
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None


@dataclass
class EpisodeResult:
    """Outcome of one episode."""

    seed: int
    split: str
    family: str
    instruction: str
    plan: PlanData
    success: bool
    n_steps: int
    duration: float
    wall_time: float
    failures: list[FailureLabel] = field(default_factory=list)
    perturbation: FailureLabel | None = None
    task: Task | None = None


@dataclass
class EpisodeConfig:
    """Episode settings: control rate, render period in control steps (0 = never) and time limit."""

    control_hz: float = 20.0
    render_every: int = 0
    timeout_s: float = 60.0
    image_size: int = 128
    stop_on_failure: bool = True

    def __post_init__(self) -> None:
        if not 1.0 <= self.control_hz <= 240.0:
            raise ValueError(f"EpisodeConfig.control_hz must be in [1, 240], got {self.control_hz}")
        if self.render_every < 0:
            raise ValueError(f"EpisodeConfig.render_every must be >= 0, got {self.render_every}")
        if self.timeout_s <= 0:
            raise ValueError(f"EpisodeConfig.timeout_s must be > 0, got {self.timeout_s}")


def run_episode(
    seed: int,
    split: str = "seen",
    family: str | None = None,
    perturb: str | None = None,
    control_hz: float = 20.0,
    render_every: int = 0,
    on_step: Callable[[StepRecord], None] | None = None,
    timeout_s: float = 60.0,
    world: SimWorld | None = None,
    on_start: Callable[[PlanData, PlanData], None] | None = None,
    expert: ExpertConfig | None = None,
) -> EpisodeResult:
    """Run the expert on ``make_task(seed, split, family)`` in closed loop.

    Args:
        seed: Task seed.
        split: ``seen`` or ``unseen``.
        family: Task family, or None to draw one from the seed.
        perturb: None or one of :data:`robo_sim.catalog.PERTURB_MODES`.
        control_hz: Control rate (physics runs at 240 Hz).
        render_every: Render RGB-D every this many control steps (0: never).
        on_step: Called with a :class:`StepRecord` every control step.
        timeout_s: Simulated-time limit.
        world: Reuse this world (its objects are replaced); a new one is made and closed otherwise.
        on_start: Called once before the first step with the plan the expert executes (perturbed
            for plan-level perturbations) and the unperturbed ground-truth plan.
        expert: The expert's settings (default :class:`ExpertConfig`).

    ``StepRecord.time`` is simulated time since the episode's first control step began.
    """
    if perturb is not None and perturb not in catalog.PERTURB_MODES:
        raise ValueError(f"perturb must be None or one of {catalog.PERTURB_MODES}, got {perturb!r}")
    cfg = EpisodeConfig(control_hz, render_every, timeout_s)
    own = world is None
    world = world or SimWorld(WorldConfig(control_period=1.0 / control_hz))
    try:
        return _run(seed, split, family, perturb, cfg, world, on_step, on_start, expert)
    finally:
        if own:
            world.close()


def _run(
    seed: int,
    split: str,
    family: str | None,
    perturb: str | None,
    cfg: EpisodeConfig,
    world: SimWorld,
    on_step: Callable[[StepRecord], None] | None,
    on_start: Callable[[PlanData, PlanData], None] | None = None,
    expert: ExpertConfig | None = None,
) -> EpisodeResult:
    t0 = time.perf_counter()
    task = make_task(seed, split, family)
    world.reset_robot()
    build_scene(world, task.scene)
    plan = clean_plan = expert_plan(task, world)
    rng = np.random.default_rng([seed, 7])
    injector = Perturber(perturb, task, world, rng) if perturb else None
    if injector:
        plan = injector.perturb_plan(plan)
    if on_start:
        on_start(plan, clean_plan)
    t_start = world.sim_time
    ctrl = ExpertController(plan, world, expert or ExpertConfig())
    monitor = FailureMonitor(plan, world)
    max_steps = int(cfg.timeout_s * cfg.control_hz)
    step = 0
    while not ctrl.done and step < max_steps:
        out = ctrl.step()
        gripper = injector.before_step(step, out) if injector else out.gripper
        clamped = world.set_ee_target(out.pos, out.quat)
        world.set_gripper(gripper)
        world.step_control()
        if on_step:
            on_step(_record(world, step, out, gripper, clamped, cfg.render_every, t_start))
        monitor.check(step, out)
        step += 1
        if monitor.failures and cfg.stop_on_failure:
            break
    if not ctrl.done and not monitor.failures:
        monitor.failures.append(FailureLabel("timeout", step, f"not done after {step} steps"))
    world.settle(0.3)
    success = task.check_success(world)
    return EpisodeResult(
        seed,
        split,
        task.family,
        task.instruction,
        plan,
        success,
        step,
        step / cfg.control_hz,
        time.perf_counter() - t0,
        monitor.failures,
        injector.event if injector else None,
        task,
    )


def _record(
    world: SimWorld, step: int, out: ControlOutput, gripper: float, clamped: bool, render_every: int,
    t_start: float = 0.0,
) -> StepRecord:
    ee_pos, ee_quat = world.ee_pose()
    names, q, dq, tau = world.joint_state()
    tpos, tquat = world.ee_target
    rgb = depth = None
    if render_every and step % render_every == 0:
        rgb, depth = world.render()
    return StepRecord(
        step,
        world.sim_time - t_start,
        tpos,
        tquat,
        gripper,
        ee_pos,
        ee_quat,
        names,
        q,
        dq,
        tau,
        world.gripper_width01(),
        out.subtask_index,
        out.skill,
        out.phase,
        out.progress,
        clamped,
        rgb,
        depth,
    )


TRACKING_S = 0.5
"""A measured TCP more than 5 cm from the command for this long (s) is a ``tracking_error``."""
SLIP_AFTER_S, SLIP_OPEN_S, PUSH_KNOCK_AFTER_S = 0.2, 0.4, 0.3
"""``slip``: the fingers open this long (s) into the carry, for this long; the push variant knocks the object
sideways this long into the push. (4, 8 and 6 steps at 20 Hz, the rate the modes were written for.)"""


HAND_RADIUS = 0.06
"""An object farther than this (m) from the TCP is not in the hand."""


def hand_distance(world: SimWorld, name: str) -> float:
    """Distance (m) from the TCP to the object called ``name`` (KeyError if the scene has none)."""
    pos, _ = world.object_pose(world.object_by_name(name).body_id)
    tcp, _ = world.ee_pose()
    return float(np.linalg.norm(pos - tcp))


class FailureMonitor:
    """Labels failures from ground truth as the episode runs."""

    def __init__(self, plan: PlanData, world: SimWorld) -> None:
        """Watch the execution of ``plan`` in ``world`` (one :meth:`check` per control period of its config)."""
        self.codes = plan.code_lines()
        self.world = world
        self.failures: list[FailureLabel] = []
        self._far_steps = 0
        self._far_limit = seconds_to_steps(TRACKING_S, 1.0 / world.config.control_period)
        self._start: dict[str, np.ndarray] = {}

    def check(self, step: int, out: ControlOutput) -> None:
        """Inspect the world after control step ``step`` commanded ``out``."""
        self._check_tracking(step, out)
        _, args = parse_code(self._code(out.subtask_index))
        if out.skill == "pick" and out.subtask_done:
            self._check_lifted(step, args["object"])
        elif out.skill == "place" and out.phase in ("carry", "descend"):
            self._check_held(step, out.subtask_index)
        elif out.skill == "push":
            self._check_push(step, out, args["object"], args["direction"])

    def _code(self, index: int) -> str:
        return self.codes[index]

    def _fail(self, kind: str, step: int, detail: str) -> None:
        if not any(f.kind == kind for f in self.failures):
            logger.debug("failure %s at step %d: %s", kind, step, detail)
            self.failures.append(FailureLabel(kind, step, detail))

    def _check_tracking(self, step: int, out: ControlOutput) -> None:
        ee, _ = self.world.ee_pose()
        self._far_steps = self._far_steps + 1 if np.linalg.norm(ee - out.pos) > 0.05 else 0
        if self._far_steps >= self._far_limit:
            self._fail("tracking_error", step, f"TCP {np.linalg.norm(ee - out.pos):.3f} m from target")

    def _check_lifted(self, step: int, name: str) -> None:
        info = self.world.object_by_name(name)
        pos, _ = self.world.object_pose(info.body_id)
        if pos[2] < info.size / 2.0 + 0.04 or hand_distance(self.world, name) > HAND_RADIUS:
            self._fail("grasp_missed", step, f"{name} not lifted (z={pos[2]:.3f})")

    def _check_held(self, step: int, index: int) -> None:
        _, args = parse_code(self._code(index - 1))
        name = args.get("object", "")
        distance = hand_distance(self.world, name)
        if distance > HAND_RADIUS:
            self._fail("object_dropped", step, f"{name} is {distance:.3f} m from the TCP")

    def _check_push(self, step: int, out: ControlOutput, name: str, direction: str) -> None:
        pos, _ = self.world.object_pose(self.world.object_by_name(name).body_id)
        self._start.setdefault(name, pos.copy())
        if out.subtask_done:
            along = float((pos - self._start[name])[:2] @ np.array(catalog.DIRECTIONS[direction]))
            if along < PUSH_MIN_ALONG:
                self._fail("no_progress", step, f"{name} moved {along:.3f} m {direction}")


PHASES = {"pick": ("approach", "descend", "close", "lift"), "place": ("carry", "descend", "open", "retreat"),
          "push": ("approach", "lower", "push", "retreat", "retreat")}
"""Phase names by progress quarter/fifth, as the expert labels them (for step-level perturbations of a
policy's execution, whose phase is known only from its progress)."""


def phase_output(plan: PlanData, index: int, progress: float, gripper: float) -> ControlOutput:
    """What the step-level perturbations need to know of a policy's step: subtask, skill and phase (from progress)."""
    sub = plan.subtasks[index]
    names = PHASES.get(sub.skill, ("run",))
    phase = names[min(len(names) - 1, int(progress * len(names)))]
    return ControlOutput(np.zeros(3), np.array([0, 0, 0, 1.0]), gripper, index, sub.skill, phase, progress,
                         False, False)


class Perturber:
    """Injects one perturbation into a plan or an episode and records when it happened."""

    def __init__(self, mode: str, task: Task, world: SimWorld, rng: np.random.Generator,
                 step_hz: float | None = None) -> None:
        """Prepare perturbation ``mode`` for ``task``; ``step`` arguments count periods of ``step_hz`` (default: the
        world's control rate)."""
        self.mode = mode
        self.task = task
        self.world = world
        self.rng = rng
        self.event: FailureLabel | None = None
        hz = step_hz if step_hz is not None else 1.0 / world.config.control_period
        self._slip_after, self._slip_open = seconds_to_steps(SLIP_AFTER_S, hz), seconds_to_steps(SLIP_OPEN_S, hz)
        self._knock_after = seconds_to_steps(PUSH_KNOCK_AFTER_S, hz)
        self._open_until = -1
        self._carry_start: int | None = None
        self._push_start: int | None = None
        self.expected = "no_progress" if task.family == "push" else EXPECTED_KIND[mode]

    def perturb_plan(self, plan: PlanData) -> PlanData:
        """Apply plan-level perturbations (``grasp_offset``, ``wrong_keypoint``); others pass through."""
        if self.mode not in ("grasp_offset", "wrong_keypoint"):
            return plan
        st = plan.subtasks[0]
        _, args = parse_code(st.code)
        info = self.world.object_by_name(args["object"])
        pos, _ = self.world.object_pose(info.body_id)
        shift = (
            self._offset(info.body_id, pos)
            if self.mode == "grasp_offset"
            else self._elsewhere(info.body_id, pos)
        )
        st.keypoints = [self._moved(kp, shift) for kp in st.keypoints]
        self.event = FailureLabel(
            self.mode, 0, f"{st.code} keypoints shifted by {np.round(shift, 3).tolist()}"
        )
        return plan

    def perturb_world(self, plan: PlanData) -> bool:
        """The plan-level perturbations for a plan that cannot be edited (it travels over DDS to the robot):
        the world moves instead, so that the plan's first keypoints stand where :meth:`perturb_plan` would
        have put them relative to the objects. ``grasp_offset`` moves the object by minus the keypoint
        shift; ``wrong_keypoint`` swaps the object with the other block the keypoints would point at.
        Returns True when applied (once).
        """
        if self.mode not in ("grasp_offset", "wrong_keypoint") or self.event is not None or not plan.subtasks:
            return False
        st = plan.subtasks[0]
        _, args = parse_code(st.code)
        info = self.world.object_by_name(args["object"])
        pos, quat = self.world.object_pose(info.body_id)
        if self.mode == "grasp_offset":
            shift = self._offset(info.body_id, pos)
            self.world.move_object(info.body_id, pos - shift, quat)
            detail = f"{info.name} moved by {np.round(-shift, 3).tolist()} after planning"
        else:
            others = [o for o in self.world.objects.values() if o.body_id != info.body_id and o.is_block]
            if not others:
                return False
            other = others[int(self.rng.integers(len(others)))]
            opos, oquat = self.world.object_pose(other.body_id)
            self.world.move_object(info.body_id, np.array([*opos[:2], pos[2]]), quat)
            self.world.move_object(other.body_id, np.array([*pos[:2], opos[2]]), oquat)
            detail = f"{info.name} and {other.name} swapped after planning"
        self.event = FailureLabel(self.mode, 0, detail)
        return True

    def _moved(self, kp: KeypointData, shift: np.ndarray) -> KeypointData:
        pt = np.array(kp.point) + shift
        u, v = self.world.project(pt[None, :])
        return KeypointData(kp.name, tuple(pt), float(u[0]), float(v[0]), kp.confidence)

    def _offset(self, body_id: int, pos: np.ndarray) -> np.ndarray:
        if self.task.family == "push":
            d = np.array(catalog.DIRECTIONS[self.task.steps[0].direction])
            return np.array([-d[1], d[0], 0.0]) * 0.09 * self.rng.choice([-1.0, 1.0])
        yaw = self.world.object_yaw(body_id) + self.rng.choice([0.0, math.pi])
        return np.array([math.cos(yaw), math.sin(yaw), 0.0]) * 0.065

    def _elsewhere(self, body_id: int, pos: np.ndarray) -> np.ndarray:
        others = [o for o in self.world.objects.values() if o.body_id != body_id and o.is_block]
        if others:
            other = others[int(self.rng.integers(len(others)))]
            opos, _ = self.world.object_pose(other.body_id)
            return np.array([opos[0] - pos[0], opos[1] - pos[1], 0.0])
        ang = self.rng.uniform(-math.pi, math.pi)
        return np.array([math.cos(ang), math.sin(ang), 0.0]) * 0.12

    def forces_open(self, step: int) -> bool:
        """True while a ``slip`` holds the fingers open at control step ``step``."""
        return step < self._open_until

    def before_step(self, step: int, out: ControlOutput) -> float:
        """Apply step-level perturbations; return the gripper command to send."""
        if self.event is None and self.mode == "nudge":
            self._nudge(step, out)
        elif self.event is None and self.mode == "slip":
            self._slip(step, out)
        return 1.0 if step < self._open_until else out.gripper

    def _nudge(self, step: int, out: ControlOutput) -> None:
        trigger = (out.skill == "pick" and out.phase == "descend") or (
            out.skill == "push" and out.phase == "lower"
        )
        if trigger and out.subtask_index == 0:
            self._knock(step, 0.07, "nudged during approach")

    def _slip(self, step: int, out: ControlOutput) -> None:
        if out.skill == "place" and out.phase == "carry":
            self._carry_start = step if self._carry_start is None else self._carry_start
            if step - self._carry_start + 1 >= self._slip_after:
                self._open_until = step + self._slip_open
                self.event = FailureLabel("slip", step, f"fingers opened for {SLIP_OPEN_S} s during carry")
        elif out.skill == "push" and out.phase == "push":
            self._push_start = step if self._push_start is None else self._push_start
            if step - self._push_start + 1 >= self._knock_after:
                self._knock(step, 0.07, "knocked sideways during push")

    def _knock(self, step: int, dist: float, detail: str) -> None:
        name = self.task.steps[0].arg  # the first step is a pick or a push: its argument is the object
        info = self.world.object_by_name(name)
        pos, quat = self.world.object_pose(info.body_id)
        if self.task.family == "push":
            d = np.array(catalog.DIRECTIONS[self.task.steps[0].direction])
            direction = np.array([-d[1], d[0]]) * self.rng.choice([-1.0, 1.0])
        else:
            ang = self.rng.uniform(-math.pi, math.pi)
            direction = np.array([math.cos(ang), math.sin(ang)])
        new = pos.copy()
        new[:2] += direction * dist
        self.world.move_object(info.body_id, new, quat)
        self.event = FailureLabel(self.mode, step, f"{name} {detail} by {dist:.2f} m")


def run_many(
    seeds: list[int], split: str, family: str | None = None, perturb: str | None = None
) -> list[EpisodeResult]:
    """Run several episodes in one reused world (no rendering)."""
    world = SimWorld()
    try:
        return [run_episode(s, split, family, perturb, world=world) for s in seeds]
    finally:
        world.close()
