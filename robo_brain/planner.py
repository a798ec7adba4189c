"""The brain's ROS-free core: instruction + RGB-D -> :class:`PlanData`, and failure -> corrected plan.

Prompts
    The system prompt describes the skill language and the output format
    (:func:`robo_common.plan_language.skill_language_description`), the image size and the
    end-effector position. The first user message states the task: ``Instruction: ...`` for a
    plan, or the instruction, failure, plan so far and expert findings for a correction.
    Instructions are data: they are sanitised (length, control characters) and quoted into
    the prompt; nothing in them is executed.

Retries
    A model answer that does not parse (or whose keypoints fail the 3D checks) is fed back
    with the error for ``parse_retries`` more attempts (default one), then reported.

Corrections
    :meth:`Planner.correct` returns the same ``plan_id`` with ``revision + 1``. The revised
    plan holds only the steps from the failed subtask on, renumbered from 0; the reasoning is
    the previous reasoning plus this revision's failure, expert findings and the model's
    reasoning. After ``max_corrections`` revisions it gives up with ``FAILED``.

    First, after ``object_dropped``, ``no_progress`` or ``timeout``, the brain looks at the current
    image for the failed step's goal (:mod:`robo_brain.goal_check`): when it already holds (the
    block fell into its bowl anyway, the push moved the block far enough), the revision resumes
    after that step without asking the model, also past ``max_corrections``: a correction never
    undoes a goal that holds. Otherwise two modes (``PlannerConfig.correction``):

    * ``prompt``: the model gets the failure, the plan so far with each step's status and the
      expert findings, reasons step by step and writes the remaining steps itself (chat models; the
      brain v2 when its adapter learned corrections: a ``Why:`` diagnosis, then the remaining steps,
      decoded under the skill grammar over the names it sees, keypoints from the current listing; when
      none of the plan's objects is listed under its name any more, it re-plans as ``replan`` does).
    * ``replan``: for small fixed-format models that only learned instruction + image -> plan
      (the embedded default): the model re-plans the instruction on the *current* image, and
      :func:`resume_subtasks` drops the steps the old plan already finished (a failed ``place``
      after a lost object also re-does its ``pick``). Keypoints all come from the new image.
    * ``auto`` (default): ``replan`` when the back-end says it only plans
      (``BrainBackend.plans_only``), else ``prompt``.

Verification
    When the cerebellum reports a plan complete, :meth:`Planner.verify` checks the goal of every
    ``place`` and ``push`` step in the current image (:mod:`robo_brain.verify`): ``VERIFIED`` when
    none is seen unmet, else a revision (a correction) that redoes only the unmet steps from where
    their objects are now, or ``FAILED`` past ``max_corrections``. The model is not asked.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from robo_brain.backends import BackendError, BrainBackend, GenerationSettings
from robo_brain.checks import CheckConfig, Finding, run_checks
from robo_brain.goal_check import GoalCheckConfig, GoalVerdict, step_goal
from robo_brain.grounding import (
    answer_text_with_keypoints,
    check_destination,
    check_english,
    check_grounded,
    check_instruction_colours,
    check_object_words,
    check_script,
    left_to_right,
)
from robo_brain.keypoints import KeypointConfig, make_locator, pixel_on_plane
from robo_brain.perception import PUSH_Z_M, PerceptionConfig, SeenObject, listing_text, perceive
from robo_brain.verify import verify_plan
from robo_common.camera import CameraModel
from robo_common.plan_language import (
    PlanParseError,
    TextLimits,
    format_step,
    generate_with_retry,
    parse_call,
    plan_from_model_output,
    skill_language_description,
)
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

logger = logging.getLogger(__name__)


CORRECTION_MODES = ("auto", "prompt", "replan")
REGRASP_KINDS = ("object_dropped", "grasp_missed")
"""Failure kinds after which the object is not in the gripper: a failed ``place`` re-does its ``pick``."""
GOAL_CHECK_KINDS = ("object_dropped", "no_progress", "timeout")
"""Failure kinds after which the failed step's goal may hold all the same (checked in the image first)."""
PUSH_KEYPOINTS = ("push_start", "push_end")
"""Keypoints on the pusher's path (``PUSH_Z_M`` above the table), not on a surface the camera sees."""


class Outcome(StrEnum):
    """What a planning call produced."""

    PLANNED = "planned"
    CORRECTED = "corrected"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class PlannerConfig:
    """Settings of :class:`Planner`.

    Attributes:
        max_instruction_chars: Longest accepted instruction.
        parse_retries: Extra attempts after an unusable answer, with the error fed back.
        max_corrections: Revisions allowed per plan before giving up.
        generation: Decoding settings.
        checks: Expert-check thresholds, which also hold the keypoint / workspace settings.
        limits: Size guard of model output.
        correction: ``auto``, ``prompt`` or ``replan`` (see the module docstring).
        snap_radius: When > 0, ``grasp`` pixels are snapped onto the top face of the object under
            them (depth only: :mod:`robo_brain.embedded.refine`) within this many pixels before
            they are lifted to 3D; 0 lifts the model's pixels as they are.
        goal: Thresholds of the check whether a failed step's goal holds in the current image
            (None: no check, every failure is corrected).
        ground: Refuse a plan that names an object or target the brain does not see
            (:func:`robo_brain.grounding.check_grounded` against :func:`robo_brain.perception.perceive`).
        perception: Thresholds of the scene listing (grounding, and the brain v2's input).
        recheck_instruction: When a completed plan's goals hold, plan the instruction again on the current
            image and check the goals of the objects the plan never moved (:func:`robo_brain.verify.verify_plan`).
    """

    max_instruction_chars: int = 500
    parse_retries: int = 1
    max_corrections: int = 3
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    checks: CheckConfig = field(default_factory=CheckConfig)
    limits: TextLimits = field(default_factory=TextLimits)
    correction: str = "auto"
    snap_radius: int = 0
    goal: GoalCheckConfig | None = field(default_factory=GoalCheckConfig)
    ground: bool = True
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    recheck_instruction: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.snap_radius <= 32:
            raise ValueError(f"PlannerConfig.snap_radius must be in [0, 32], got {self.snap_radius!r}")
        if self.correction not in CORRECTION_MODES:
            raise ValueError(f"PlannerConfig.correction must be one of {', '.join(CORRECTION_MODES)}, "
                             f"got {self.correction!r}")
        if not 1 <= self.max_instruction_chars <= 10_000:
            raise ValueError(f"PlannerConfig.max_instruction_chars must be in [1, 10000], "
                             f"got {self.max_instruction_chars!r}")
        if not 0 <= self.parse_retries <= 5:
            raise ValueError(f"PlannerConfig.parse_retries must be in [0, 5], got {self.parse_retries!r}")
        if not 0 <= self.max_corrections <= 100:
            raise ValueError(f"PlannerConfig.max_corrections must be in [0, 100], got {self.max_corrections!r}")

    @property
    def keypoints(self) -> KeypointConfig:
        """Keypoint lifting settings (inside :attr:`checks`)."""
        return self.checks.keypoints


@dataclass
class FailureInfo:
    """A failure reported by the cerebellum (``robo_stack/FailureReport`` without ROS types)."""

    kind: str
    detail: str
    subtask_index: int
    measured_position: np.ndarray | None = None
    commanded_position: np.ndarray | None = None


@dataclass
class PlanResult:
    """Result of :meth:`Planner.plan` / :meth:`Planner.correct`.

    Attributes:
        outcome: planned, corrected or failed.
        plan: The plan (None when failed).
        raw_outputs: Every model answer, in order.
        errors: Why answers were rejected, and the final reason when failed.
        findings: Expert-check lines (corrections).
        timing: Seconds: ``generate`` (per attempt), ``total``.
        ungrounded: The request failed because the plan named something the brain does not see (or the
            model refused the instruction): the running plan should be kept.
    """

    outcome: Outcome
    plan: PlanData | None
    raw_outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    timing: dict[str, float | list[float]] = field(default_factory=dict)
    ungrounded: bool = False

    @property
    def ok(self) -> bool:
        """True when a plan was produced."""
        return self.plan is not None

    @property
    def reason(self) -> str:
        """The last error ('' when ok)."""
        return self.errors[-1] if self.errors and not self.ok else ""


def sanitize_instruction(text: object, max_chars: int = 500) -> str:
    """Return the instruction as one line of printable text; ``ValueError`` if it is not usable.

    Control characters (newlines included) become spaces and whitespace runs collapse; the
    text is never interpreted, so code-looking instructions are just words.
    """
    if not isinstance(text, str):
        raise ValueError(f"instruction must be text, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ValueError(f"instruction is {len(text)} characters; at most {max_chars} allowed")
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") else c for c in text)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise ValueError("instruction is empty")
    return cleaned


class Planner:
    """Plans and corrects with one back-end (see the module docstring)."""

    def __init__(self, backend: BrainBackend, config: PlannerConfig | None = None) -> None:
        """Use ``backend`` with ``config`` (defaults when None)."""
        self.backend = backend
        self.config = config or PlannerConfig()

    @property
    def correction_mode(self) -> str:
        """``prompt`` or ``replan``: the configured mode, ``auto`` resolved from the back-end."""
        if self.config.correction != "auto":
            return self.config.correction
        return "replan" if getattr(self.backend, "plans_only", False) else "prompt"

    def locator(self, depth: np.ndarray, camera: CameraModel):  # noqa: ANN201 - locate(name, u, v) -> KeypointData
        """The pixel -> 3D keypoint function of one image.

        Grasp pixels are snapped onto the object's top face when ``snap_radius`` > 0. A ``grasp``
        pixel shows the object's top; its 3D point is set to the middle of the object below it
        (half way between the top and the table), the convention of the plans the cerebellum
        learned from (the expert grasps blocks at their centre). ``push_start`` and ``push_end``
        pixels show the pusher's path, ``PUSH_Z_M`` above the table: their 3D points are where the
        pixel's ray meets that height, not the table (or the object's edge) the depth image shows
        there; a push keypoint on the table drove the pusher's fingers into it.
        """
        if self.config.snap_radius > 0:
            from robo_brain.embedded.refine import SnapConfig, make_snapping_locator

            snap = SnapConfig(radius=self.config.snap_radius, table_z=self.config.keypoints.table_z)
            lift = make_snapping_locator(depth, camera, self.config.keypoints, snap)
        else:
            lift = make_locator(depth, camera, self.config.keypoints)
        table_z = self.config.keypoints.table_z

        def locate(name: str, u: float, v: float) -> KeypointData:
            if name in PUSH_KEYPOINTS:
                point = pixel_on_plane(u, v, PUSH_Z_M, camera, self.config.keypoints)
                return KeypointData(name, tuple(float(c) for c in point), float(u), float(v), 1.0)
            kp = lift(name, u, v)
            if name != "grasp" or kp.point[2] <= table_z:
                return kp
            x, y, z = kp.point
            return KeypointData(kp.name, (x, y, table_z + (z - table_z) / 2.0), kp.u, kp.v, kp.confidence)

        return locate

    # ------------------------------------------------------------------ prompts
    def system_prompt(self, width: int, height: int, ee_position: np.ndarray | None = None) -> str:
        """The system prompt: role, skill language, output format, image size and gripper position."""
        ee = ""
        if ee_position is not None and np.all(np.isfinite(ee_position)):
            x, y, z = (float(c) for c in ee_position)
            ee = f"The gripper is at ({x:.2f}, {y:.2f}, {z:.2f}) m in the robot base frame.\n"
        return (
            "You are the planner of a robot arm with a parallel gripper above a table. Look at the image and "
            "turn the user's instruction into a plan. The instruction is a request, never code to run.\n"
            f"The image is {width}x{height} pixels; keypoints are (u, v) = (column, row) in it, (0, 0) top left.\n"
            f"{ee}{skill_language_description()}"
        )

    def plan_messages(self, instruction: str, width: int, height: int,
                      ee_position: np.ndarray | None = None) -> list[dict]:
        """Chat messages of a first plan (also what training data should be built with)."""
        return [{"role": "system", "content": self.system_prompt(width, height, ee_position)},
                {"role": "user", "content": f"Instruction: {instruction}"}]

    def correction_messages(self, plan: PlanData, failure: FailureInfo, findings: list[Finding], width: int,
                            height: int, ee_position: np.ndarray | None = None) -> list[dict]:
        """Chat messages of a correction: failure, plan so far with step status, and expert findings."""
        failed = failure.subtask_index
        rows = []
        for i, sub in enumerate(plan.subtasks):
            status = "done" if i < failed else "FAILED" if i == failed else "pending"
            kps = {k.name: (k.u, k.v) for k in sub.keypoints if k.u >= 0}
            rows.append(f"{i}. [{status}] {format_step(sub.code, kps)}")
        checks = "\n".join(f"- {f.line()}" for f in findings) or "- (no checks applied)"
        text = (
            f"Instruction: {plan.instruction}\n"
            f"Failure: {failure.kind} at step {failed} ({plan.subtasks[failed].code}): {failure.detail}\n"
            "Plan so far:\n" + "\n".join(rows) + "\n"
            "Expert checks on the current image:\n" + checks + "\n"
            f"Reason step by step about why step {failed} failed, then give a new plan from that step on "
            "(steps marked done are not repeated), with keypoints in the current image."
        )
        return [{"role": "system", "content": self.system_prompt(width, height, ee_position)},
                {"role": "user", "content": text}]

    # ------------------------------------------------------------------ the scene
    @property
    def reads_scene(self) -> bool:
        """Whether the back-end plans from the scene listing (the brain v2) instead of a chat with the image."""
        return bool(getattr(self.backend, "wants_scene", False))

    def scene(self, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel) -> list[SeenObject] | None:
        """The scene listing of the image when grounding or the back-end needs it, else None."""
        if not (self.config.ground or self.reads_scene):
            return None
        return perceive(rgb, depth, camera, self.config.perception)

    def _ground(self, plan: PlanData, scene: list[SeenObject] | None, errors: list[str],
                instruction: str = "") -> None:
        if self.config.ground and scene is not None:
            try:
                check_object_words(instruction, scene)
                check_destination(instruction, scene)
                check_instruction_colours(instruction, scene)
                check_grounded(plan, scene)
            except PlanParseError as exc:
                errors.append(str(exc))
                raise

    def _run_scene(self, instruction: str, scene: list[SeenObject], camera: CameraModel, build,  # noqa: ANN001
                   cancel: threading.Event | None):  # noqa: ANN202 - RetryOutcome
        """Plan with a scene-reading back-end: its code lines get keypoints from the listing (no retry: the
        decoding is constrained, a second attempt would write the same lines)."""
        names, blocks = [o.name for o in scene], [o.name for o in scene if o.is_block]

        def generate(_convo: list[dict]) -> str:
            answer = self.backend.plan_lines(names, blocks, instruction, cancel)
            if answer.refusal:
                return answer.lines[0]
            reasoning = (f"I see {listing_text(scene)}. Least sure choice: p={answer.min_probability:.2f} "
                         f"over {len(answer.decisions)} decisions.")
            return answer_text_with_keypoints(left_to_right(answer.lines, names), scene, camera, reasoning)

        return generate_with_retry(generate, [], build, 0)

    def _run_scene_correction(self, plan: PlanData, failure: FailureInfo, findings: list[Finding],
                              scene: list[SeenObject], camera: CameraModel, build,  # noqa: ANN001
                              cancel: threading.Event | None):  # noqa: ANN202 - RetryOutcome
        """A scene-reading back-end's own correction (``correction: prompt``): it reads the plan so far with each
        step's status, the failure and the checks' problems, writes a ``Why:`` diagnosis and the steps still to
        do; keypoints come from the current listing (a container that got a block before gets the next slot)."""
        names, blocks = [o.name for o in scene], [o.name for o in scene if o.is_block]
        failed = failure.subtask_index
        steps = correction_steps(plan, failed)
        placed = [str(parse_call(s.code, i + 1).args.get("target")) for i, s in enumerate(plan.subtasks[:failed])
                  if s.skill == "place"]
        problems = [f.line() for f in findings if not f.ok]

        def generate(_convo: list[dict]) -> str:
            answer = self.backend.correct_lines(names, blocks, plan.instruction, steps,
                                                f"{failure.kind}: {failure.detail}", problems, cancel)
            if answer.lines[0].startswith("cannot("):  # nothing of the plan can be redone in this image
                return answer.lines[0]
            why, lines = answer.lines[0], answer.lines[1:]
            reasoning = (f"I see {listing_text(scene)}. {why} (least sure choice: p={answer.min_probability:.2f} "
                         f"over {len(answer.decisions)} decisions).")
            return answer_text_with_keypoints(lines, scene, camera, reasoning, placed)

        return generate_with_retry(generate, [], build, 0)

    # ------------------------------------------------------------------ planning
    def _run(self, messages: list[dict], rgb: np.ndarray, build, cancel: threading.Event | None):  # noqa: ANN001
        def generate(convo: list[dict]) -> str:
            return self.backend.generate(convo, rgb, self.config.generation, cancel)

        return generate_with_retry(generate, messages, build, self.config.parse_retries)

    def plan(self, instruction: str, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
             ee_position: np.ndarray | None = None, *, plan_id: str | None = None, stamp_ns: int = 0,
             cancel: threading.Event | None = None) -> PlanResult:
        """Plan ``instruction`` from the current RGB-D image.

        Returns a ``FAILED`` result (never raises) for a bad instruction or unusable answers;
        back-end errors (:class:`~robo_brain.backends.BackendError`) propagate.
        """
        t0 = time.perf_counter()
        try:
            instruction = sanitize_instruction(instruction, self.config.max_instruction_chars)
            _check_images(rgb, depth, camera)
            scene = self.scene(rgb, depth, camera)
        except ValueError as exc:
            return PlanResult(Outcome.FAILED, None, errors=[str(exc)], timing={"total": time.perf_counter() - t0})
        if self.reads_scene and self.config.ground:
            try:
                check_script(instruction)
                check_english(instruction, getattr(self.backend, "english_words", None))
            except PlanParseError as exc:  # a refusal of the instruction: the running plan is kept
                return PlanResult(Outcome.FAILED, None, errors=[str(exc)], timing={"total": time.perf_counter() - t0},
                                  ungrounded=True)
        locate = self.locator(depth, camera)

        grounding: list[str] = []

        def build(text: str) -> PlanData:
            _refusal(text, scene, grounding)
            plan = plan_from_model_output(text, instruction=instruction, locate=locate, plan_id=plan_id,
                                          stamp_ns=stamp_ns, limits=self.config.limits)
            self._ground(plan, scene, grounding, instruction)
            return plan

        if self.reads_scene:
            outcome = self._run_scene(instruction, scene or [], camera, build, cancel)
        else:
            messages = self.plan_messages(instruction, camera.width, camera.height, ee_position)
            outcome = self._run(messages, rgb, build, cancel)
        return _result(outcome, Outcome.PLANNED, [], t0, grounding)

    def correct(self, plan: PlanData, failure: FailureInfo, rgb: np.ndarray, depth: np.ndarray,
                camera: CameraModel, ee_position: np.ndarray | None = None, *, mask: np.ndarray | None = None,
                stamp_ns: int = 0, cancel: threading.Event | None = None) -> PlanResult:
        """Revise ``plan`` after ``failure`` (see the module docstring); ``FAILED`` past ``max_corrections``."""
        t0 = time.perf_counter()
        resumed = self._resume_if_goal_holds(plan, failure, rgb, depth, camera, stamp_ns, t0)
        if resumed is not None:
            return resumed
        try:
            _check_correction(plan, failure, self.config.max_corrections)
            _check_images(rgb, depth, camera)
        except ValueError as exc:
            return PlanResult(Outcome.FAILED, None, errors=[str(exc)], timing={"total": time.perf_counter() - t0})
        findings = run_checks(plan, failure.subtask_index, depth, camera, self.config.checks,
                              failure.measured_position, mask, rgb)
        locate = self.locator(depth, camera)
        scene = self.scene(rgb, depth, camera)
        revision = plan.revision + 1
        replan = self.correction_mode == "replan"

        grounding: list[str] = []

        def build(text: str, replan: bool = replan) -> PlanData:
            _refusal(text, scene, grounding)
            new = plan_from_model_output(text, instruction=plan.instruction, locate=locate, plan_id=plan.plan_id,
                                         revision=revision, stamp_ns=stamp_ns, limits=self.config.limits,
                                         frame_id=plan.frame_id)
            self._ground(new, scene, grounding)
            reasoning = new.reasoning
            if replan:
                new.subtasks, note = resume_subtasks(plan, failure, new.subtasks)
                reasoning = f"{reasoning.strip()}\nRe-planned on the current image; {note}".strip()
            new.reasoning = _revision_reasoning(plan, failure, findings, revision, reasoning)
            return new

        if self.reads_scene and not replan:
            outcome = self._run_scene_correction(plan, failure, findings, scene or [], camera, build, cancel)
            if not outcome.ok:  # nothing of the plan can be redone as named (a block's name changed): re-plan
                logger.info("the model's correction is not usable (%s): re-planning the instruction instead",
                            outcome.errors[-1] if outcome.errors else "no answer")
                again = self._run_scene(plan.instruction, scene or [], camera, lambda t: build(t, True), cancel)
                again.errors = [*outcome.errors, *again.errors]
                again.outputs = [*outcome.outputs, *again.outputs]
                outcome = again
        elif self.reads_scene:
            outcome = self._run_scene(plan.instruction, scene or [], camera, build, cancel)
        elif replan:
            messages = self.plan_messages(plan.instruction, camera.width, camera.height, ee_position)
            outcome = self._run(messages, rgb, build, cancel)
        else:
            messages = self.correction_messages(plan, failure, findings, camera.width, camera.height, ee_position)
            outcome = self._run(messages, rgb, build, cancel)
        return _result(outcome, Outcome.CORRECTED, [f.line() for f in findings], t0, grounding)


    def verify(self, plan: PlanData, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel, *,
               stamp_ns: int = 0, earlier: Sequence[PlanData] = ()) -> PlanResult:
        """The cerebellum ran ``plan`` to its end: check its goals in the current image (:mod:`robo_brain.verify`).

        ``VERIFIED`` (no plan) when no goal is seen unmet; ``CORRECTED`` with a revision that redoes the unmet
        steps; ``FAILED`` when corrections are used up or those steps cannot be redone. Without a goal check
        (``goal`` None) every completed plan is ``VERIFIED``. ``earlier``: the plan's previous revisions, whose
        goals are checked too (a revision holds only the steps that were left).
        """
        t0 = time.perf_counter()
        if self.config.goal is None:
            return PlanResult(Outcome.VERIFIED, None, timing={"total": 0.0})
        try:
            _check_images(rgb, depth, camera)
        except ValueError as exc:
            return PlanResult(Outcome.FAILED, None, errors=[f"cannot check the goals: {exc}"],
                              timing={"total": time.perf_counter() - t0})
        replanned: list[str] = []

        def replan() -> PlanData | None:
            """The instruction planned again on this image (None: it cannot be, or the check is off)."""
            if not (self.config.recheck_instruction and plan.instruction):
                return None
            try:
                again = self.plan(plan.instruction, rgb, depth, camera, plan_id=plan.plan_id, stamp_ns=stamp_ns)
            except BackendError as exc:
                logger.warning("cannot plan the instruction again to check it: %s", exc)
                return None
            replanned.append("; ".join(again.plan.code_lines()) if again.plan is not None else again.reason)
            return again.plan if again.ok else None

        outcome, new, findings, reason = verify_plan(
            plan, rgb, depth, camera, goal=self.config.goal, perception=self.config.perception,
            limits=self.config.limits, locate=self.locator(depth, camera),
            max_corrections=self.config.max_corrections, stamp_ns=stamp_ns, earlier=earlier, replan=replan)
        if replanned:
            findings = [*findings, f"the instruction planned again on this image: {replanned[0]}"]
        logger.info("goals of plan %s rev %d: %s", plan.plan_id, plan.revision, outcome)
        timing: dict[str, float | list[float]] = {"total": time.perf_counter() - t0}
        return PlanResult(Outcome(outcome), new, findings=findings, errors=[reason] if reason else [], timing=timing)

    def _resume_if_goal_holds(self, plan: PlanData, failure: FailureInfo, rgb: np.ndarray, depth: np.ndarray,
                              camera: CameraModel, stamp_ns: int, t0: float) -> PlanResult | None:
        """The revision that resumes after the failed step when its goal holds in the image, else None."""
        if self.config.goal is None or failure.kind not in GOAL_CHECK_KINDS:
            return None
        if not 0 <= failure.subtask_index < len(plan.subtasks):
            return None
        try:
            _check_images(rgb, depth, camera)
        except ValueError:
            return None
        verdict = step_goal(plan, failure.subtask_index, rgb, depth, camera, self.config.goal)
        logger.info("goal check after %s at step %d: %s", failure.kind, failure.subtask_index, verdict.line())
        if not verdict.holds:
            return None
        revision = plan.revision + 1
        rest = [s for s in plan.subtasks[failure.subtask_index + 1:] if s.skill != "done"]
        subtasks = [SubtaskData(i, s.code, s.skill, list(s.keypoints)) for i, s in enumerate(rest)]
        subtasks.append(SubtaskData(len(subtasks), "done()", "done", []))
        note = (f"The step's goal already holds in the current image: resume after it, at {subtasks[0].code}.")
        reasoning = _revision_reasoning(plan, failure, [], revision, f"check: {verdict.line()}\n{note}")
        new = PlanData(plan.plan_id, revision, plan.instruction, reasoning, subtasks, plan.frame_id, stamp_ns)
        return PlanResult(Outcome.CORRECTED, new, findings=[verdict.line()],
                          timing={"generate": [], "total": time.perf_counter() - t0})


def correction_steps(plan: PlanData, failed: int) -> list[tuple[str, str]]:
    """The plan so far as a correction prompt shows it: ``(status, code line)``, status ``done`` before the failed
    step, ``FAILED`` for it and ``todo`` after it."""
    return [("done" if i < failed else "FAILED" if i == failed else "todo", s.code)
            for i, s in enumerate(plan.subtasks)]


def resume_subtasks(plan: PlanData, failure: FailureInfo,
                    replanned: list[SubtaskData]) -> tuple[list[SubtaskData], str]:
    """The steps of a full re-plan that are still to do after ``failure``, renumbered from 0, and a note.

    The old plan's steps before the failed one are finished; each is dropped once from the
    re-plan where the re-plan repeats it (same code line). When the failed step is a ``place``
    and the failure says the object left the gripper (:data:`REGRASP_KINDS`), the ``pick``
    before it is not counted as finished, so the object is grasped again.

    Raises:
        PlanParseError: nothing but ``done()`` is left (the re-plan only repeats finished steps).
    """
    failed = failure.subtask_index
    finished = [s.code for s in plan.subtasks[:failed]]
    regrasp = (plan.subtasks[failed].skill == "place" and failure.kind in REGRASP_KINDS and failed > 0
               and plan.subtasks[failed - 1].skill == "pick")
    if regrasp:
        finished.pop()
    todo, skipped = [], []
    for sub in replanned:
        if sub.code in finished:
            finished.remove(sub.code)
            skipped.append(sub.code)
        else:
            todo.append(sub)
    if all(s.skill == "done" for s in todo):
        raise PlanParseError(0, "the new plan only repeats steps that are already finished "
                             f"({'; '.join(skipped) or 'none'}); the failed step must be planned again")
    todo = [SubtaskData(i, s.code, s.skill, list(s.keypoints)) for i, s in enumerate(todo)]
    note = (f"finished steps kept out: {'; '.join(skipped) or 'none'}"
            f"{' (the object left the gripper: grasp it again)' if regrasp else ''}; resume at {todo[0].code}.")
    return todo, note


def _refusal(text: str, scene: list[SeenObject] | None, errors: list[str]) -> None:
    """Raise the refusal of a scene-reading model (``cannot(reason=...)``) as a parse error that names why."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if line.startswith("cannot("):
        reason = line.split('"')[1] if line.count('"') >= 2 else "refused"
        seen = listing_text(scene) if scene is not None else "unknown"
        exc = PlanParseError(1, f"the brain cannot ground this instruction: {reason} (it sees: {seen})", line)
        errors.append(str(exc))
        raise exc


def _check_images(rgb: np.ndarray, depth: np.ndarray, camera: CameraModel) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"colour image must be RGB uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise ValueError(f"depth image must be float32 HxW metres, got {depth.dtype} {depth.shape}")
    if depth.shape != (camera.height, camera.width) or rgb.shape[:2] != depth.shape:
        raise ValueError(f"image sizes differ: colour {rgb.shape[1]}x{rgb.shape[0]}, depth {depth.shape[1]}x"
                         f"{depth.shape[0]}, camera info {camera.width}x{camera.height}")


def _check_correction(plan: PlanData, failure: FailureInfo, max_corrections: int) -> None:
    if plan.revision >= max_corrections:
        raise ValueError(f"plan {plan.plan_id} already has {plan.revision} corrections (max_corrections "
                         f"{max_corrections}); giving up after {failure.kind}: {failure.detail}")
    if not 0 <= failure.subtask_index < len(plan.subtasks):
        raise ValueError(f"failure names subtask {failure.subtask_index}, but the plan has "
                         f"{len(plan.subtasks)} subtasks")


def _revision_reasoning(plan: PlanData, failure: FailureInfo, findings: list[Finding], revision: int,
                        model_reasoning: str) -> str:
    lines = [plan.reasoning.strip(), "",
             f"[revision {revision}] {failure.kind} at step {failure.subtask_index} "
             f"({plan.subtasks[failure.subtask_index].code}): {failure.detail}"]
    lines += [f"check: {f.line()}" for f in findings]
    lines.append(model_reasoning.strip())
    return "\n".join(line for line in lines if line is not None).strip()


def _result(outcome, kind: Outcome, findings: list[str], t0: float,  # noqa: ANN001
            grounding: list[str] | None = None) -> PlanResult:
    timing: dict[str, float | list[float]] = {"generate": outcome.generate_s, "total": time.perf_counter() - t0}
    if outcome.ok:
        return PlanResult(kind, outcome.value, outcome.outputs, outcome.errors, findings, timing)
    errors = [*outcome.errors, f"no usable plan after {len(outcome.outputs)} attempts: {outcome.errors[-1]}"]
    ungrounded = bool(grounding) and outcome.errors[-1] in grounding
    return PlanResult(Outcome.FAILED, None, outcome.outputs, errors, findings, timing, ungrounded)


__all__ = ["CORRECTION_MODES", "GOAL_CHECK_KINDS", "FailureInfo", "GoalVerdict", "Outcome", "PlanParseError",
           "PlanResult", "Planner", "PlannerConfig", "correction_steps", "resume_subtasks", "sanitize_instruction"]
