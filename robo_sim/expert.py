"""Scripted expert: a ground-truth plan in the skill language and a phase-by-phase controller.

Plan lines are ``pick(object="red block")``, ``place(target="blue bowl")``,
``push(object="red block", direction="left")`` and ``done()``. The controller drives from the
plan's keypoints (a wrong keypoint really misleads it) and uses ground-truth yaw for orientation.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from dataclasses import dataclass

import numpy as np
import pybullet as p

from robo_common.constants import BASE_FRAME
from robo_common.geometry import quat_angle, slerp
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from robo_common.rates import seconds_to_steps
from robo_sim import catalog
from robo_sim.tasks import PUSH_DISTANCE, SkillStep, Task
from robo_sim.world import SimWorld

logger = logging.getLogger(__name__)

_CODE_RE = re.compile(r"^(\w+)\((.*)\)$")
_ARG_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class ExpertConfig:
    """Speeds, heights and timings of the scripted expert (metres, seconds: the same motion at any control rate)."""

    approach_height: float = 0.12
    fast_speed: float = 0.35
    slow_speed: float = 0.12
    push_speed: float = 0.08
    grasp_dz: float = -0.004
    release_clearance: float = 0.012
    stack_release_clearance: float = 0.006
    push_z: float = 0.013
    push_gap: float = 0.025
    push_gripper: float = 0.4
    angular_speed: float = 1.5
    close_s: float = 0.6
    open_s: float = 0.4
    settle_s: float = 0.1
    pos_tol: float = 0.008
    max_wait_s: float = 1.25
    progress_label: str = "half"
    """How a segment without a hold (a subtask's last lift or retreat) counts in the progress label: ``half``
    (the label of every shipped checkpoint: its move fills half its share, so a subtask's label reaches
    (n - 0.5) / n and jumps to 1.0 on its last step) or ``full`` (the move fills its whole share: the label
    reaches 1.0 as the commanded pose arrives)."""

    def __post_init__(self) -> None:
        if self.progress_label not in ("half", "full"):
            raise ValueError(f"ExpertConfig.progress_label must be 'half' or 'full', got {self.progress_label!r}")
        for name in ("approach_height", "fast_speed", "slow_speed", "push_speed", "angular_speed", "pos_tol",
                     "push_z", "close_s", "open_s", "settle_s", "max_wait_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ExpertConfig.{name} must be > 0, got {getattr(self, name)!r}")


def parse_code(code: str) -> tuple[str, dict[str, str]]:
    """Parse ``skill(key="value", ...)`` into ``(skill, {key: value})``; ValueError if malformed."""
    m = _CODE_RE.match(code.strip())
    if not m:
        raise ValueError(f"not a skill call: {code!r}")
    return m.group(1), dict(_ARG_RE.findall(m.group(2)))


def topdown_quat(yaw: float) -> np.ndarray:
    """Quaternion (xyzw) of a top-down TCP whose hand x axis points along ``yaw``."""
    return np.array(p.getQuaternionFromEuler((math.pi, 0.0, yaw)))


def wrap_period(yaw: float, ref: float = 0.0, period: float = math.pi / 2.0) -> float:
    """The yaw equal to ``yaw`` modulo ``period`` that is closest to ``ref``."""
    return ref + ((yaw - ref + period / 2.0) % period) - period / 2.0


def wrap_quarter(yaw: float, ref: float = 0.0) -> float:
    """The yaw equal to ``yaw`` modulo 90 degrees (a block's symmetry) that is closest to ``ref``."""
    return wrap_period(yaw, ref, math.pi / 2.0)


# ---------------------------------------------------------------- plan
def _keypoint(world: SimWorld, name: str, point: np.ndarray) -> KeypointData:
    u, v = world.project(np.asarray(point)[None, :])
    return KeypointData(name, tuple(float(c) for c in point), float(u[0]), float(v[0]), 1.0)


def place_point(world: SimWorld, target: str, slot: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Ground-truth place point: container floor (plus slot offset) or a block's top-face centre."""
    info = world.object_by_name(target)
    pos, _ = world.object_pose(info.body_id)
    if info.is_block:
        return pos + np.array([0.0, 0.0, info.size / 2.0])
    yaw = world.object_yaw(info.body_id)
    c, s = math.cos(yaw), math.sin(yaw)
    off = np.array([c * slot[0] - s * slot[1], s * slot[0] + c * slot[1], info.extra["base"]])
    return pos + off


def push_points(
    world: SimWorld, obj: str, direction: str, cfg: ExpertConfig
) -> tuple[np.ndarray, np.ndarray]:
    """TCP start (behind the object) and end points of a push of PUSH_DISTANCE."""
    info = world.object_by_name(obj)
    pos, _ = world.object_pose(info.body_id)
    d = np.array([*catalog.DIRECTIONS[direction], 0.0])
    start = pos - d * (info.size / 2.0 + cfg.push_gap)
    start[2] = cfg.push_z
    return start, start + d * (PUSH_DISTANCE + cfg.push_gap)


def step_code(step: SkillStep) -> str:
    """The pseudo-code line of one expert step, e.g. ``push(object="red block", direction="left")``."""
    if step.skill == "pick":
        return f'pick(object="{step.arg}")'
    if step.skill == "place":
        return f'place(target="{step.arg}")'
    if step.skill == "push":
        return f'push(object="{step.arg}", direction="{step.direction}")'
    raise ValueError(f"unknown skill {step.skill!r}")


def _subtask(world: SimWorld, index: int, step: SkillStep, cfg: ExpertConfig) -> SubtaskData:
    code = step_code(step)
    if step.skill == "pick":
        pos, _ = world.object_pose(world.object_by_name(step.arg).body_id)
        return SubtaskData(index, code, "pick", [_keypoint(world, "grasp", pos)])
    if step.skill == "place":
        pt = place_point(world, step.arg, step.slot)
        return SubtaskData(index, code, "place", [_keypoint(world, "place", pt)])
    s, e = push_points(world, step.arg, step.direction, cfg)
    return SubtaskData(index, code, "push", [_keypoint(world, "push_start", s), _keypoint(world, "push_end", e)])


def expert_plan(task: Task, world: SimWorld, config: ExpertConfig | None = None) -> PlanData:
    """Ground-truth plan for ``task`` in the current ``world`` state (keypoints in ``panda_link0``)."""
    cfg = config or ExpertConfig()
    subtasks = [_subtask(world, i, s, cfg) for i, s in enumerate(task.steps)]
    subtasks.append(SubtaskData(len(subtasks), "done()", "done", []))
    reasoning = f"The task is a {task.family.replace('_', ' ')}; do it in {len(task.steps)} skill steps."
    return PlanData(uuid.uuid4().hex, 0, task.instruction, reasoning, subtasks, frame_id=BASE_FRAME)


# ---------------------------------------------------------------- controller
@dataclass
class Waypoint:
    """One phase segment: move the commanded TCP to ``pos``/``quat`` with ``gripper``, then hold."""

    phase: str
    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    speed: float
    hold: int = 0


@dataclass
class ControlOutput:
    """What the expert commands at one control step, with its progress."""

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    subtask_index: int
    skill: str
    phase: str
    progress: float
    subtask_done: bool
    done: bool


class ExpertController:
    """Turns a plan into EE targets and gripper commands, one control step at a time."""

    def __init__(self, plan: PlanData, world: SimWorld, config: ExpertConfig | None = None) -> None:
        """Start at the plan's first subtask from the world's current commanded pose."""
        self.plan = plan
        self.world = world
        self.cfg = config or ExpertConfig()
        self.dt = world.config.control_period
        self._max_wait = self._steps(self.cfg.max_wait_s)
        self.index = 0
        self.done = False
        self.held: tuple[str, float] | None = None
        self._pos, self._quat = world.ee_target
        self._gripper = world.gripper_command
        self._start_subtask()

    @property
    def subtask(self) -> SubtaskData:
        """The active subtask."""
        return self.plan.subtasks[min(self.index, len(self.plan.subtasks) - 1)]

    def _start_subtask(self) -> None:
        st = self.subtask
        self._seg = 0
        self._hold = 0
        self._wait = 0
        self._seg_start = self._pos.copy()
        builders = {
            "pick": self._pick_waypoints,
            "place": self._place_waypoints,
            "push": self._push_waypoints,
        }
        if st.skill == "done":
            self.done = True
            self._wps: list[Waypoint] = []
            return
        if st.skill not in builders:
            raise ValueError(f"the expert cannot execute skill {st.skill!r}")
        self._wps = builders[st.skill](st)

    def _pick_waypoints(self, st: SubtaskData) -> list[Waypoint]:
        c = self.cfg
        g = np.array(st.keypoint("grasp").point)
        _, args = parse_code(st.code)
        obj = self.world.object_by_name(args["object"])
        q = topdown_quat(wrap_quarter(self.world.object_yaw(obj.body_id), self._yaw()))
        up = np.array([0, 0, c.approach_height])
        low = g + np.array([0, 0, c.grasp_dz])
        low[2] = max(low[2], 0.012)
        return [
            Waypoint("approach", g + up, q, 1.0, c.fast_speed),
            Waypoint("descend", low, q, 1.0, c.slow_speed, hold=self._steps(c.settle_s)),
            Waypoint("close", low, q, 0.0, c.slow_speed, hold=self._steps(c.close_s)),
            Waypoint("lift", g + up + np.array([0, 0, 0.03]), q, 0.0, c.slow_speed),
        ]

    def _place_waypoints(self, st: SubtaskData) -> list[Waypoint]:
        c = self.cfg
        pt = np.array(st.keypoint("place").point)
        _, args = parse_code(st.code)
        target = self.world.object_by_name(args["target"])
        # Containers: hand x along the container x axis, so the fingers never reach towards the slots.
        period = math.pi / 2.0 if target.is_block else math.pi
        q = topdown_quat(wrap_period(self.world.object_yaw(target.body_id), self._yaw(), period))
        h = self.held[1] if self.held else 0.025
        size = self.world.object_by_name(self.held[0]).size if self.held else 0.05
        release = min(1.0, (size + 0.025) / (2 * 0.04))
        clearance = c.stack_release_clearance if target.is_block else c.release_clearance
        low = pt + np.array([0, 0, h + clearance])
        high = np.array([pt[0], pt[1], max(self._pos[2], low[2] + c.approach_height)])
        return [
            Waypoint("carry", high, q, 0.0, c.fast_speed),
            Waypoint("descend", low, q, 0.0, c.slow_speed, hold=self._steps(c.settle_s)),
            Waypoint("open", low, q, release, c.slow_speed, hold=self._steps(c.open_s)),
            Waypoint("retreat", low + np.array([0, 0, c.approach_height]), q, 1.0, c.fast_speed),
        ]

    def _push_waypoints(self, st: SubtaskData) -> list[Waypoint]:
        c = self.cfg
        s = np.array(st.keypoint("push_start").point)
        e = np.array(st.keypoint("push_end").point)
        d = (e - s) / max(1e-6, float(np.linalg.norm(e - s)))
        q = topdown_quat(wrap_period(math.atan2(d[1], d[0]), self._yaw(), math.pi))
        up = np.array([0, 0, c.approach_height])
        back = e - d * 0.03
        w = c.push_gripper
        return [
            Waypoint("approach", s + up, q, w, c.fast_speed),
            Waypoint("lower", s, q, w, c.slow_speed, hold=self._steps(c.settle_s)),
            Waypoint("push", e, q, w, c.push_speed),
            Waypoint("retreat", back, q, w, c.slow_speed),
            Waypoint("retreat", back + up, q, w, c.fast_speed),
        ]

    def _steps(self, seconds: float) -> int:
        """Control steps in ``seconds`` at this world's control period (2 s = 40 steps at 20 Hz, 400 at 200 Hz)."""
        return seconds_to_steps(seconds, 1.0 / self.dt)

    def _yaw(self) -> float:
        x_axis = np.array(p.getMatrixFromQuaternion(self._quat.tolist())).reshape(3, 3)[:, 0]
        return math.atan2(x_axis[1], x_axis[0])

    def step(self) -> ControlOutput:
        """Advance the commanded pose one control step and return the command."""
        if self.done:
            return self._output(False)
        wp = self._wps[self._seg]
        self._move_towards(wp)
        if self._reached(wp):
            self._hold += 1
            if self._hold > wp.hold:
                return self._next_segment()
        return self._output(False)

    def _move_towards(self, wp: Waypoint) -> None:
        delta = wp.pos - self._pos
        dist = float(np.linalg.norm(delta))
        step = wp.speed * self.dt
        self._pos = wp.pos.copy() if dist <= step else self._pos + delta * (step / dist)
        # Turn at a bounded rate: a 90-degree turn (a push to the side) spans ~1 s of demonstration, so
        # the rotation is a signal of many steps that the policy learns, not a jump of two or three.
        angle, turn = quat_angle(self._quat, wp.quat), self.cfg.angular_speed * self.dt
        self._quat = wp.quat.copy() if angle <= turn else slerp(self._quat, wp.quat, turn / angle)
        self._gripper = wp.gripper

    def _reached(self, wp: Waypoint) -> bool:
        if float(np.linalg.norm(wp.pos - self._pos)) > 1e-9 or quat_angle(self._quat, wp.quat) > 1e-6:
            return False
        self._wait += 1
        measured, _ = self.world.ee_pose()
        return (float(np.linalg.norm(measured - wp.pos)) <= self.cfg.pos_tol
                or self._wait >= self._max_wait)

    def _next_segment(self) -> ControlOutput:
        wp = self._wps[self._seg]
        if self.subtask.skill == "pick" and wp.phase == "close":
            self._record_held()
        self._seg += 1
        self._hold = 0
        self._wait = 0
        self._seg_start = self._pos.copy()
        if self._seg < len(self._wps):
            return self._output(False)
        out = self._output(True)
        if self.subtask.skill == "place":
            self.held = None
        self.index += 1
        self._start_subtask()
        out.done = self.done
        return out

    def _record_held(self) -> None:
        _, args = parse_code(self.subtask.code)
        info = self.world.object_by_name(args["object"])
        opos, _ = self.world.object_pose(info.body_id)
        tcp, _ = self.world.ee_pose()
        self.held = (info.name, float(np.clip(tcp[2] - (opos[2] - info.size / 2.0), 0.0, info.size)))

    def _output(self, subtask_done: bool) -> ControlOutput:
        n = max(1, len(self._wps))
        if self.done and not subtask_done:
            progress, phase = 1.0, "done"
        elif subtask_done:
            progress, phase = 1.0, self._wps[-1].phase
        else:
            wp = self._wps[self._seg]
            total = float(np.linalg.norm(wp.pos - self._seg_start))
            frac = 1.0 if total < 1e-9 else 1.0 - float(np.linalg.norm(wp.pos - self._pos)) / total
            if wp.hold > 0 or self.cfg.progress_label == "half":  # half the share for the move, half the hold
                frac = 0.5 * frac + 0.5 * min(1.0, self._hold / max(1, wp.hold + 1))
            progress, phase = (self._seg + frac) / n, wp.phase
        return ControlOutput(
            self._pos.copy(),
            self._quat.copy(),
            self._gripper,
            self.subtask.index,
            self.subtask.skill,
            phase,
            float(np.clip(progress, 0.0, 1.0)),
            subtask_done,
            self.done,
        )
