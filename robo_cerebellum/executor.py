"""Plan execution at policy rate: subtask sequencing, the policy, the failure monitor, the envelope.

ROS-free; the node and the closed-loop evaluation both drive a :class:`PlanExecutor`. Each
:meth:`PlanExecutor.tick` takes the latest observation and returns what to command and report:
the safe end-effector target, the gripper command, an execution status, and a failure (once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from robo_cerebellum.monitor import Failure, FailureMonitor, MonitorConfig
from robo_cerebellum.plan_checks import PlanLimits, check_plan
from robo_cerebellum.policy import CerebellumPolicy, Command, Observation
from robo_cerebellum.safety import SafeCommand, SafetyConfig, SafetyEnvelope, Verdict
from robo_cerebellum.scene_checks import GroundingConfig, SceneCheckConfig, keypoint_grounding, push_outcome
from robo_common.geometry import quat_angle
from robo_common.plan_types import PlanData
from robo_common.rates import seconds_to_steps

if TYPE_CHECKING:
    from robo_common.camera import CameraModel

LOG = logging.getLogger(__name__)
DEFAULT_SCENE_CHECKS = SceneCheckConfig()
DEFAULT_GROUNDING = GroundingConfig()


class State(IntEnum):
    """Execution states (the values of robo_stack/ExecutionStatus)."""

    IDLE = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    HOLDING = 4
    CANCELLED = 5


@dataclass
class TickResult:
    """Everything one control tick decided."""

    state: State
    subtask_index: int
    progress: float
    detail: str
    safe: SafeCommand | None = None
    gripper: float | None = None
    command: Command | None = None
    failure: Failure | None = None


class PlanExecutor:
    """Runs the subtasks of the active plan through the policy, in order."""

    def __init__(self, policy: CerebellumPolicy, safety: SafetyConfig, monitor: MonitorConfig,
                 scene: SceneCheckConfig | None = DEFAULT_SCENE_CHECKS,
                 grounding: GroundingConfig | None = DEFAULT_GROUNDING, max_subtasks: int = 32) -> None:
        """Wire a policy to a fresh envelope and monitor (stepping at the policy's trained rate).

        ``scene``: thresholds of the check of a push's result in the depth image (None: no check);
        it runs once :meth:`update_view` has given a depth frame and its camera.
        ``grounding``: thresholds of the check of a pick's (push's) keypoints in the colour and depth
        frames (None: no check); it needs :meth:`update_view` with a colour frame.
        """
        self.policy = policy
        self.envelope = SafetyEnvelope(safety)
        self.limits = PlanLimits(safety.workspace_min, safety.workspace_max, max_subtasks=max_subtasks)
        self.monitor = FailureMonitor(monitor, policy.cfg.policy_hz)
        self.plan: PlanData | None = None
        self.index = 0
        self.state = State.IDLE
        self.detail = "waiting for a plan"
        self.last_gripper = 1.0
        self.last_progress = 0.0
        self._progress_history: list[float] = []
        # a plateau: over 0.4 s (8 steps at 20 Hz), whatever the policy's rate
        self.plateau_min, self.plateau_delta = 0.8, 0.01
        self.plateau_steps = seconds_to_steps(0.4, policy.cfg.policy_hz, minimum=2)
        self.start_pose: tuple[np.ndarray, np.ndarray] | None = None
        self.recovery: tuple[np.ndarray, np.ndarray, float] | None = None
        self.recovery_tolerance = (0.01, np.deg2rad(5.0))
        self.recovery_timeout_s, self._recovery_steps = 10.0, 0
        self.scene = scene
        self._view: tuple[np.ndarray, CameraModel] | None = None
        self._view_count = 0
        self._verify: tuple[int, int] | None = None  # (frames seen when the push finished, steps waited)
        self.verify_timeout_s = 1.0
        self.grounding = grounding
        self._rgb: np.ndarray | None = None
        self._ground: tuple[int, int] | None = None  # (frames seen at the last try, steps since the pick began)
        self.last_grounding = ""
        self.robot_time_s: float | None = None  # stamp of the newest robot state (set by the node; None: unknown)
        self._view_stamp: float | None = None
        self._ground_after: float | None = None

    def update_view(self, depth: np.ndarray, camera: CameraModel, rgb: np.ndarray | None = None,
                    stamp_s: float | None = None) -> None:
        """The latest depth frame (metres), the camera that took it, its colour frame and its stamp (s, on the
        robot's clock; None: unknown), for the checks."""
        self._view = (depth, camera)
        self._rgb = rgb
        self._view_stamp = stamp_s
        self._view_count += 1

    # ------------------------------------------------------------------ plans
    def set_plan(self, plan: PlanData, measured_pos: np.ndarray, measured_quat: np.ndarray) -> str:
        """Start (or replace) the active plan; returns a log line saying what happened.

        A plan with no subtasks stops execution (hold). A new plan resets the policy's recurrent
        state; a new revision of the running plan resumes from its first subtask and keeps it,
        except after a failure or after the plan succeeded (a correction: the brain's look at the scene
        found a goal unmet): the state then describes the failed attempt (e.g.
        "carrying" after the object fell), so the revision starts from a fresh state, and the arm
        first retreats (through the safety envelope) to the pose the plan started from, the
        situation the policy was trained to start in; the gripper opens on the way unless the
        revision resumes with a ``place`` (the object is still held).

        Raises:
            ValueError: the plan fails :func:`check_plan` (size, code lines, skill fields, keypoints
                outside the workspace), a subtask uses a skill the policy does not know, or the plan is
                an older revision of the running one; the plan is refused and the running one kept.
        """
        check_plan(plan, self.limits)
        for sub in plan.subtasks:
            if sub.skill not in self.policy.cfg.skills:
                raise ValueError(f"plan {plan.plan_id} rev {plan.revision}: subtask {sub.index} uses unknown "
                                 f"skill {sub.skill!r} (known: {list(self.policy.cfg.skills)})")
        same = self.plan is not None and plan.plan_id == self.plan.plan_id
        if same and plan.revision == self.plan.revision:
            return f"ignored plan {plan.plan_id} revision {plan.revision}: already running (a re-delivery)"
        if same and plan.revision < self.plan.revision:
            raise ValueError(f"plan {plan.plan_id} revision {plan.revision} is older than the running revision "
                             f"{self.plan.revision}: ignored")
        if same and self.state == State.CANCELLED:  # e.g. a correction the brain finished before it heard the cancel
            return f"ignored plan {plan.plan_id} revision {plan.revision}: the plan was {self.detail}"
        correction = same and self.state in (State.FAILED, State.SUCCEEDED)  # after a failure or a goal check
        if not same or correction:
            self.policy.reset()
        if not same:
            self.start_pose = (np.asarray(measured_pos, float).copy(), np.asarray(measured_quat, float).copy())
        self.plan, self.index, self.recovery, self._verify = plan, 0, None, None
        self.envelope.reset(measured_pos, measured_quat)
        if not plan.subtasks:
            self.state, self.detail = State.HOLDING, "empty plan: holding position"
            return self.detail
        self.state = State.RUNNING
        if correction and self.start_pose is not None:
            gripper = self.last_gripper if plan.subtasks[0].skill == "place" else 1.0
            self.recovery, self._recovery_steps = (*self.start_pose, gripper), 0
            self.detail = "recovering: back to the plan's start pose before the revised plan"
            return f"revision {plan.plan_id} rev {plan.revision}: {len(plan.subtasks)} subtasks, after a retreat"
        self._enter_subtask()
        kind = "revision" if same else "plan"
        return f"new {kind} {plan.plan_id} rev {plan.revision}: {len(plan.subtasks)} subtasks"

    def _enter_subtask(self) -> None:
        sub = self.plan.subtasks[self.index]
        if sub.skill == "done":
            self.state, self.detail = State.SUCCEEDED, "plan complete"
            return
        self.policy.set_subtask(sub)
        place = sub.keypoint("place") if sub.skill == "place" else None
        self.monitor.start_subtask(sub.skill, None if place is None else np.asarray(place.point, float))
        # only a frame that arrives from now on counts: one taken before the subtask (before a retreat, or
        # of the scene before a reset) may not show what the plan's keypoints refer to
        self._ground = (self._view_count, 0) if self.grounding is not None and sub.skill in ("pick", "push") else None
        # and, where the node knows the stamps, only a frame taken after the newest robot state: a frame taken
        # before a reset can reach the node after the plan that follows the reset (large images travel slower)
        self._ground_after = self.robot_time_s
        self.last_progress = 0.0
        self._progress_history: list[float] = []
        self.detail = f"running {sub.code}"

    def cancel(self, by: str) -> str:
        """An operator stopped the task: hold where the arm is, until a plan with a new ``plan_id``.

        Cancels a plan that is running, holding or failed (a correction may be on its way: its revision
        is then ignored, see :meth:`set_plan`); after a plan succeeded, or with none, there is nothing
        to cancel and the state stays. Returns a log line.
        """
        if self.plan is None or self.state in (State.IDLE, State.SUCCEEDED, State.CANCELLED):
            return f"cancel by {by}: nothing to cancel ({self.state.name.lower()}: {self.detail})"
        self.recovery = self._verify = self._ground = None
        self.state, self.detail = State.CANCELLED, f"cancelled by {by}"
        return f"plan {self.plan.plan_id} rev {self.plan.revision} {self.detail} at subtask {self.index}: holding"

    def stop(self, reason: str) -> None:
        """Stop the plan and hold position (e.g. the brain reported it cannot plan)."""
        self.state, self.detail = State.HOLDING, reason

    # ------------------------------------------------------------------ ticks
    def robot_jumped(self, pos: np.ndarray, quat: np.ndarray, distance_m: float) -> str:
        """The measured pose jumped (the robot was reset or re-homed): hold where it now is.

        A running plan is stopped (its keypoints and the policy's state describe the scene before the
        jump); the hold is re-anchored at the new pose (clamped into the workspace box), so the arm is
        never pulled back to a target from before the jump. Returns a log line.
        """
        self.envelope.reset(pos, quat)
        if self.state in (State.RUNNING, State.HOLDING):
            self.recovery = self._verify = self._ground = None
            self.state = State.HOLDING
            self.detail = (f"robot state jumped {distance_m:.2f} m (robot reset or moved): plan stopped, "
                           "holding at the new pose until the next plan")
            return self.detail
        return f"robot state jumped {distance_m:.2f} m: holding at the new pose"

    def _stale(self, state_age_s: float, image_age_s: float) -> str:
        """Why the inputs are too old to act on ("" when fresh)."""
        cfg = self.envelope.config
        if state_age_s > cfg.state_timeout_s:
            return f"robot state is {state_age_s * 1e3:.0f} ms old: holding"
        if cfg.image_timeout_s and image_age_s > cfg.image_timeout_s:
            return f"camera image is {image_age_s * 1e3:.0f} ms old: holding"
        return ""

    def tick(self, obs: Observation, state_age_s: float, image_age_s: float, dt: float) -> TickResult:
        """One policy step (RUNNING) or a hold (any other state, or inputs older than their timeouts).

        On stale inputs the arm and the gripper hold their last commands and nothing else runs: the
        policy does not step (its recurrent state would absorb a frozen observation) and the monitor
        does not judge the frozen state. The plan resumes where it was when fresh inputs return.
        """
        if self.state != State.RUNNING:
            safe = self.envelope.hold(obs.ee_pos, obs.ee_quat, self.detail)
            return TickResult(self.state, self.index, self.last_progress, self.detail, safe, self.last_gripper)
        stale = self._stale(state_age_s, image_age_s)
        if stale:
            safe = self.envelope.hold(obs.ee_pos, obs.ee_quat, stale)
            return TickResult(State.HOLDING, self.index, self.last_progress, stale, safe, self.last_gripper)
        if self.recovery is not None:
            return self._recover(obs, state_age_s, image_age_s, dt)
        if self._verify is not None:
            return self._check_result(obs, dt)
        if self._ground is not None:
            failure = self._check_grounding(dt)
            if failure is not None:
                return self._fail(obs, failure)
        try:
            cmd = self.policy.step(obs)
        except ValueError as exc:
            return self._fail(obs, Failure("unsafe_command", f"policy refused the observation: {exc}"))
        safe = self.envelope.filter(cmd.target_pos, cmd.target_quat, obs.ee_pos, obs.ee_quat, state_age_s,
                                    image_age_s, dt)
        if safe.verdict == Verdict.REJECTED:
            return self._fail(obs, Failure("unsafe_command", "; ".join(safe.reasons)), cmd)
        gripper = float(np.clip(cmd.gripper, 0.0, 1.0))
        failure = self.monitor.check(cmd.target_pos, obs.ee_pos, gripper, obs.gripper_width, cmd.progress,
                                     cmd.failure_probability)
        if failure is not None:
            return self._fail(obs, failure, cmd)
        self.last_gripper, self.last_progress = gripper, cmd.progress
        result = TickResult(State.RUNNING, self.index, cmd.progress, self.detail, safe, gripper, cmd)
        if safe.verdict == Verdict.HOLD:
            result.state, result.detail = State.HOLDING, "; ".join(safe.reasons)
        elif self._subtask_finished(cmd.progress):
            if self.scene is not None and self._view is not None and self.plan.subtasks[self.index].skill == "push":
                self._verify = (self._view_count, 0)  # look at the first frame taken from now on
            else:
                self._advance()
        return result

    def _check_result(self, obs: Observation, dt: float) -> TickResult:
        """Hold until a depth frame newer than the push's end arrives, then check where the object is.

        Without a new frame within ``verify_timeout_s`` the push is taken as done, unchecked (logged).
        """
        mark, waited = self._verify
        safe = self.envelope.hold(obs.ee_pos, obs.ee_quat, "checking the push result")
        if self._view_count > mark:
            self._verify = None
            failure = push_outcome(self.plan.subtasks[self.index], *self._view, self.scene)
            if failure is not None:
                return self._fail(obs, failure)
            self._advance()
        elif (waited + 1) * dt > self.verify_timeout_s:
            LOG.warning("push result not checked: no depth frame within %.1f s of its end", self.verify_timeout_s)
            self._verify = None
            self._advance()
        else:
            self._verify = (mark, waited + 1)
            return TickResult(State.RUNNING, self.index, self.last_progress, "checking the push result", safe,
                              self.last_gripper)
        return TickResult(self.state, self.index, self.last_progress, self.detail, safe, self.last_gripper)

    def _check_grounding(self, dt: float) -> Failure | None:
        """Check a pick's (push's) keypoints in the newest frame not yet looked at (see :func:`keypoint_grounding`).

        Runs while the subtask starts, without holding the arm; an occluded keypoint is tried again in
        the next frame, for up to ``grounding.give_up_s``. A wrong keypoint is a ``grasp_missed``
        (``no_progress``) failure before the arm reaches the wrong object.
        """
        tried, steps = self._ground
        steps += 1
        if self._view is None or self._rgb is None or self._view_count == tried:
            self._ground = (tried, steps)
        elif self._ground_after is not None and self._view_stamp is not None \
                and self._view_stamp < self._ground_after:  # taken before the subtask began: wait for the next
            self._ground = (self._view_count, steps)
            self.last_grounding = (f"the newest frame is stamped {self._view_stamp:.3f} s, before the subtask "
                                   f"began ({self._ground_after:.3f} s on the robot's clock)")
        else:
            depth, camera = self._view
            result = keypoint_grounding(self.plan.subtasks[self.index], self._rgb, depth, camera, self.grounding)
            self.last_grounding = result.detail
            if result.final:
                self._ground = None
                if result.verdict == "unchecked":
                    LOG.info("keypoints not checked: %s", result.detail)
                if not result.failed:
                    return None
                sub = self.plan.subtasks[self.index]
                return Failure("grasp_missed" if sub.skill == "pick" else "no_progress", result.detail)
            self._ground = (self._view_count, steps)
        if self._ground is not None and steps * dt > self.grounding.give_up_s:
            LOG.info("keypoints not checked: no clear view within %.1f s (%s)", self.grounding.give_up_s,
                     self.last_grounding or "no colour frame")
            self._ground = None
        return None

    def _subtask_finished(self, progress: float) -> bool:
        """Progress reached ``progress_done``, or it plateaued high: above ``plateau_min`` and up by less
        than ``plateau_delta`` over the last ``plateau_steps`` steps (the progress head rarely predicts
        the last few percent of a subtask, which last one or two steps in the demonstrations)."""
        history = self._progress_history
        history.append(progress)
        cfg = self.policy.cfg
        if progress >= cfg.progress_done:
            return True
        window = history[-self.plateau_steps:]
        return (len(window) == self.plateau_steps and min(window) >= self.plateau_min
                and max(window) - window[0] < self.plateau_delta)

    def _recover(self, obs: Observation, state_age_s: float, image_age_s: float, dt: float) -> TickResult:
        """One step of the retreat to the plan's start pose; the revised plan starts once it is reached."""
        pos, quat, gripper = self.recovery
        self._recovery_steps += 1
        if self._recovery_steps * dt > self.recovery_timeout_s:
            return self._fail(obs, Failure("timeout", f"retreat to the start pose not done in "
                                                      f"{self.recovery_timeout_s:.0f} s"))
        if not (np.all(np.isfinite(obs.ee_pos)) and np.all(np.isfinite(obs.ee_quat))):
            return self._fail(obs, Failure("unsafe_command", "non-finite robot state during the retreat"))
        reached = (np.linalg.norm(obs.ee_pos - pos) < self.recovery_tolerance[0]
                   and quat_angle(obs.ee_quat, quat) < self.recovery_tolerance[1])
        if reached:
            self.recovery = None
            self.envelope.reset(obs.ee_pos, obs.ee_quat)
            self._enter_subtask()
            safe = self.envelope.hold(obs.ee_pos, obs.ee_quat, "retreat done")
            return TickResult(State.RUNNING, self.index, 0.0, self.detail, safe, gripper)
        safe = self.envelope.filter(pos, quat, obs.ee_pos, obs.ee_quat, state_age_s, image_age_s, dt)
        if safe.verdict == Verdict.REJECTED:
            return self._fail(obs, Failure("unsafe_command", "; ".join(safe.reasons)))
        self.last_gripper = gripper
        state = State.HOLDING if safe.verdict == Verdict.HOLD else State.RUNNING
        return TickResult(state, self.index, 0.0, self.detail, safe, gripper)

    def _advance(self) -> None:
        self.index += 1
        if self.index >= len(self.plan.subtasks):
            self.index -= 1
            self.state, self.detail = State.SUCCEEDED, "plan complete"
            return
        self._enter_subtask()

    def _fail(self, obs: Observation, failure: Failure, cmd: Command | None = None) -> TickResult:
        self.state = State.FAILED
        self.detail = f"{failure.kind}: {failure.detail}"
        LOG.info("subtask %d failed: %s", self.index, self.detail)
        if np.all(np.isfinite(obs.ee_pos)) and np.all(np.isfinite(obs.ee_quat)):
            self.envelope.reset(obs.ee_pos, obs.ee_quat)  # stop where the arm is, not where it was headed
        safe = self.envelope.hold(obs.ee_pos, obs.ee_quat, self.detail)
        return TickResult(State.FAILED, self.index, self.last_progress, self.detail, safe, self.last_gripper,
                          cmd, failure)
