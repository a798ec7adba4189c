"""A live simulated cell for the ROS bridge: world, task, commands, physics clock and camera.

ROS-free, so it is tested directly; :mod:`robo_sim.node` only converts messages. Physics is
advanced by whole 240 Hz steps as wall time passes; frames are rendered in a
:class:`~robo_sim.render_process.RenderProcess` at the camera rate, from snapshots taken at
the simulated time they are stamped with.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from robo_common.jsonable import to_jsonable
from robo_common.plan_types import PlanData
from robo_sim import catalog
from robo_sim.episode import Perturber, phase_output
from robo_sim.expert import expert_plan
from robo_sim.judge import world_failure
from robo_sim.render_process import RenderProcess, take_snapshot
from robo_sim.scene import build_scene
from robo_sim.tasks import Task, make_task
from robo_sim.world import CameraInfo, SimWorld, WorldConfig

LOG = logging.getLogger(__name__)

JUDGE_WINDOW_S = 0.5
"""A failure report is judged with the narrowest finger opening of this much simulated time before it arrives:
over DDS the cerebellum's hold may have opened the fingers again by then (a grasp_missed whose fingers had
closed on nothing read as not confirmed)."""
PERTURB_STEP_HZ = 20.0
"""The step-level perturbations of a DDS episode count steps of this rate on the simulated clock (the rate their
durations were written for; :class:`~robo_sim.episode.Perturber` converts seconds to steps)."""


@dataclass(frozen=True)
class SimSessionConfig:
    """Rates and camera of a live session (see ``config/sim.yaml``)."""

    state_rate_hz: float = 200.0
    camera_rate_hz: float = 15.0
    image_width: int = 128
    image_height: int = 128
    render: bool = True

    def __post_init__(self) -> None:
        if not 1.0 <= self.state_rate_hz <= 1000.0:
            raise ValueError(f"state_rate_hz must be in [1, 1000], got {self.state_rate_hz}")
        if not 0.0 < self.camera_rate_hz <= 60.0:
            raise ValueError(f"camera_rate_hz must be in (0, 60], got {self.camera_rate_hz}")


class SimSession:
    """The simulated cell behind ``sim_node``."""

    def __init__(self, config: SimSessionConfig) -> None:
        """Create the world (and the render process when ``config.render``)."""
        self.config = config
        wcfg = WorldConfig(control_period=1.0 / config.state_rate_hz if config.state_rate_hz <= 240 else 1 / 240,
                           image_width=config.image_width, image_height=config.image_height)
        self.world = SimWorld(wcfg)
        self.camera: CameraInfo = self.world.camera_info()
        self.renderer = RenderProcess(wcfg) if config.render else None
        self.task: Task | None = None
        self.expert_plan: PlanData | None = None
        self.rejected = 0
        self.clamped = 0
        self.perturber: Perturber | None = None
        self._force_open = False
        self.plans: dict[str, PlanData] = {}  # the latest revision of each plan seen on /robo/plan (this task's)
        self.failures: list[dict[str, Any]] = []  # failure reports of this task, each with the world's verdict
        self._physics_dt = 1.0 / wcfg.physics_hz
        self._pending = 0.0
        self._next_frame = 0.0
        self._reset_at = -math.inf  # simulated time of the last reset (frames from before it are dropped)
        self._widths: deque[tuple[float, float]] = deque()  # (sim time, finger opening) of the last moments

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the session started (monotonic across resets)."""
        return self.world.sim_time

    def reset(self, seed: int, split: str = "seen", family: str | None = None, perturb: str | None = None) -> Task:
        """Load the task of ``(seed, split, family)``: rest pose, fresh scene, expert plan.

        ``perturb``: one of :data:`robo_sim.catalog.PERTURB_MODES` to inject into this episode, as the
        in-process evaluation does (see :meth:`note_plan` and :meth:`note_status`).
        """
        if perturb and perturb not in catalog.PERTURB_MODES:
            raise ValueError(f"perturb must be empty or one of {list(catalog.PERTURB_MODES)}, got {perturb!r}")
        task = make_task(seed, split, family)
        self.plans, self.failures = {}, []
        self.world.reset_robot()
        self._widths.clear()
        build_scene(self.world, task.scene)
        self.task = task
        self.expert_plan = expert_plan(task, self.world)
        self.perturber = Perturber(perturb, task, self.world, np.random.default_rng([seed, 7]),
                                   step_hz=PERTURB_STEP_HZ) if perturb else None
        self._force_open = False
        if self.renderer is not None:
            self.renderer.load_scene(task.scene)
        self._next_frame = self._reset_at = self.sim_time
        return task

    def command_pose(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        """Set the end-effector target; returns True if the motion limits clamped it.

        Raises:
            ValueError: for NaN/inf or malformed values (the previous target is kept).
        """
        try:
            clamped = self.world.set_ee_target(pos, quat_xyzw)
        except ValueError:
            self.rejected += 1
            raise
        self.clamped += int(clamped)
        return clamped

    def command_gripper(self, width01: float) -> None:
        """Set the gripper opening (0 closed, 1 open); raises ``ValueError`` on NaN/inf."""
        try:
            self.world.set_gripper(1.0 if self._force_open else width01)
        except ValueError:
            self.rejected += 1
            raise

    def advance(self, dt: float) -> int:
        """Advance physics by ``dt`` simulated seconds in whole physics steps; returns the steps taken.

        Also requests a camera frame when one is due and the renderer is free.
        """
        self._pending += max(0.0, dt)
        steps = int(self._pending / self._physics_dt + 1e-9)
        if steps:
            self.world.step_control(steps)
            self._pending -= steps * self._physics_dt
            now = self.sim_time
            self._widths.append((now, self.world.gripper_width01()))
            while self._widths and self._widths[0][0] < now - JUDGE_WINDOW_S:
                self._widths.popleft()
        if self.renderer is not None and self.sim_time >= self._next_frame and not self.renderer.busy:
            self.renderer.request(take_snapshot(self.world))
            self._next_frame = max(self._next_frame + 1.0 / self.config.camera_rate_hz, self.sim_time)
        return steps

    def poll_camera(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Return ``(sim stamp, rgb, depth)`` of a finished frame, or None.

        A frame of the world before the last reset (requested before it, finished after) is dropped: it shows
        a scene that is gone, and a plan of the new task that looked at it would check its keypoints against
        the old objects (seen: a false ``grasp_missed`` right after a reset, in ``check faults``).
        """
        frame = self.renderer.poll() if self.renderer is not None else None
        if frame is not None and frame[0] <= self._reset_at:  # requested at or before the reset's time
            return None
        return frame

    def task_dict(self) -> dict[str, Any]:
        """The loaded task as JSON-friendly data."""
        task = self.task
        if task is None:
            return {}
        return {
            "seed": task.seed, "split": task.split, "family": task.family, "variant": task.variant,
            "instruction": task.instruction, "scene": to_jsonable(dataclasses.asdict(task.scene)),
            "goals": to_jsonable([dataclasses.asdict(g) for g in task.goals]),
        }

    def episode_dict(self) -> dict[str, Any]:
        """Live episode state: task identity, current success check, command counters."""
        task = self.task
        return {
            "seed": task.seed if task else None, "split": task.split if task else None,
            "family": task.family if task else None, "sim_time": self.sim_time,
            "success": bool(task.check_success(self.world)) if task else False,
            "rejected_commands": self.rejected, "clamped_commands": self.clamped,
            "failures": list(self.failures),
            "perturb": self.perturber.mode if self.perturber else None,
            "perturbation": ([self.perturber.event.kind, self.perturber.event.step, self.perturber.event.detail]
                             if self.perturber and self.perturber.event else None),
        }

    def note_plan(self, plan: PlanData) -> None:
        """Remember a plan (revision) that was sent to the robot, to judge its failure reports against."""
        if self.perturber is not None and plan.subtasks:
            try:
                self.perturber.perturb_world(plan)  # plan-level perturbations, applied to the world
            except (KeyError, ValueError) as exc:  # a plan naming an object the scene does not have
                LOG.info("perturbation %s not applicable to plan %s: %s", self.perturber.mode, plan.plan_id, exc)
        known = self.plans.get(plan.plan_id)
        if known is None or plan.revision >= known.revision:
            self.plans[plan.plan_id] = plan
        if len(self.plans) > 50:  # an instruction flood: keep the newest
            self.plans.pop(next(iter(self.plans)))

    def note_status(self, plan_id: str, index: int, progress: float, running: bool) -> None:
        """A policy step's status: drives the step-level perturbations (``nudge``, ``slip``) of this episode.

        The phase of the step comes from the subtask's progress (:func:`robo_sim.episode.phase_output`); a
        ``slip`` holds the fingers open for 0.4 s of simulated time whatever the gripper command says. Steps are
        counted on the simulated clock (:data:`PERTURB_STEP_HZ`), not per status, whatever the policy's rate.
        """
        plan = self.plans.get(plan_id)
        if self.perturber is None or not running or plan is None or not 0 <= index < len(plan.subtasks):
            return
        out = phase_output(plan, index, progress, self.world.gripper_command)
        step = int((self.sim_time - self._reset_at) * PERTURB_STEP_HZ + 1e-6)
        self.perturber.before_step(step, out)
        self._force_open = self.perturber.forces_open(step + 1)
        if self._force_open:
            self.world.set_gripper(1.0)

    def judge_failure(self, plan_id: str, revision: int, index: int, kind: str) -> dict[str, Any]:
        """The world's verdict on a failure report (:func:`robo_sim.judge.world_failure`), kept for the episode.

        ``confirmed`` is the reason the world agrees ("" when it does not); ``judged`` is False when the
        report names a plan or subtask this session never saw (no verdict).
        """
        plan = self.plans.get(plan_id)
        row: dict[str, Any] = {"plan_id": plan_id, "revision": int(revision), "subtask": int(index), "kind": kind,
                               "sim_time": self.sim_time, "judged": False, "confirmed": ""}
        if plan is not None and 0 <= index < len(plan.subtasks):
            width = min([w for _, w in self._widths] + [self.world.gripper_width01()])
            row.update(judged=True, confirmed=world_failure(self.world, plan, index, kind, gripper_width=width))
        self.failures.append(row)
        del self.failures[:-20]
        return row

    def close(self) -> None:
        """Stop the renderer and disconnect the world."""
        if self.renderer is not None:
            self.renderer.close()
        self.world.close()

