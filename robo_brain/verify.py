"""Did the task get done? The brain's look at the scene after the cerebellum reports a plan complete (ROS-free).

The cerebellum says SUCCEEDED when it has run every step: the fingers opened at the place point, the
push reached its end. That is what it did, not what became of the scene: a block released over its
bowl may have bounced out, a push may have slid the block aside or not far enough. Before the stack
calls a task done, the brain therefore checks the goal of every ``place`` and ``push`` step in the
current colour and depth images (:func:`robo_brain.goal_check.step_goal`, not simulator truth):

* every goal holds, or the image cannot tell: the task is done (``verified``);
* a goal does not hold and the plan has corrections left: a revision redoes only those steps (a
  failed ``place`` with the ``pick`` before it, a failed ``push``), in the plan's order. Their objects
  are found again in the scene listing of the current image (:func:`robo_brain.perception.perceive`):
  the grasp and push keypoints come from where the objects are now; a place keeps its keypoint (its
  target, a container or a block, stays where it was). Steps whose goals hold are never redone.
* otherwise (corrections used up, or a goal that redoing cannot reach: a push that went far enough but
  drifted sideways) the task failed, with what the image showed.

A revision holds only the steps still to do, so the check covers the goals of every revision of the plan
(``earlier``): each ``place`` (with the ``pick`` before it) and ``push`` once, with the keypoints of the
latest revision that has it; a push's object is looked for along the latest push line but measured from
where it stood before the first push, as the task is.

The plan's goals are what the brain planned, not the instruction: a first plan that left out an object
("match every block with the container of its colour" with one block missed, perhaps hidden by the arm
when it planned) ran to its end with every goal it had met. So once the plan's own goals hold, the
instruction is planned again on the current image, and the steps of that plan on objects that no
revision moved are checked like the others: one whose goal does not hold is redone. An object some
revision already moved is never moved again on the say-so of the re-plan (a re-plan that names another
target for it would undo a goal that holds), nor one that may be a moved object under another name
(:func:`missed_goals`), nor one of a colour the instruction does not name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from robo_brain.goal_check import GoalCheckConfig, GoalVerdict, is_container, step_arg, step_goal
from robo_brain.grounding import answer_text_with_keypoints
from robo_brain.perception import PerceptionConfig, perceive
from robo_common.camera import CameraModel
from robo_common.colours import named_colour
from robo_common.plan_language import Locate, PlanParseError, TextLimits, plan_from_model_output
from robo_common.plan_types import PlanData, SubtaskData

VERIFY_KIND = "goal_not_reached"
"""The failure kind a revision after the final check names in its reasoning."""


def step_verdicts(plan: PlanData, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
                  cfg: GoalCheckConfig, first_push: dict[str, SubtaskData] | None = None,
                  ) -> list[tuple[int, GoalVerdict]]:
    """The goal verdict of every ``place`` and ``push`` step of ``plan`` in the current image (a push measured
    from before the first push of its code line, ``first_push``)."""
    first_push = first_push or {}
    return [(i, step_goal(plan, i, rgb, depth, camera, cfg, first_push.get(s.code)))
            for i, s in enumerate(plan.subtasks) if s.skill in ("place", "push")]


def steps_to_redo(plan: PlanData, verdicts: list[tuple[int, GoalVerdict]]) -> list[int]:
    """Indexes of the steps a revision redoes: each failed push, each failed place with the pick before it."""
    redo: set[int] = set()
    for i, verdict in verdicts:
        if verdict.holds is not False:
            continue
        redo.add(i)
        if plan.subtasks[i].skill == "place" and i > 0 and plan.subtasks[i - 1].skill == "pick":
            redo.add(i - 1)
    return sorted(redo)


def redo_plan(plan: PlanData, redo: list[int], rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
              locate: Locate, perception: PerceptionConfig, limits: TextLimits, stamp_ns: int = 0) -> PlanData:
    """The revision of ``plan`` that redoes the steps ``redo`` (then ``done()``), grounded in the current image.

    Raises:
        PlanParseError: an object of those steps is not in the current scene listing, or a keypoint
            cannot be lifted to 3D.
    """
    scene = perceive(rgb, depth, camera, perception)
    lines = [_rename_merged(plan, i, scene) for i in redo]
    try:
        text = answer_text_with_keypoints(lines, scene, camera, "redo the steps whose goals do not hold")
    except KeyError as exc:
        seen = ", ".join(o.name for o in scene) or "nothing"
        raise PlanParseError(0, f"cannot redo the steps: {exc.args[0]!r} is not in the current image (seen: "
                                f"{seen})") from None
    new = plan_from_model_output(f"{text}\ndone()", instruction=plan.instruction, locate=locate,
                                 plan_id=plan.plan_id, revision=plan.revision + 1, stamp_ns=stamp_ns,
                                 limits=limits, frame_id=plan.frame_id)
    subtasks = []
    for sub, old in zip(new.subtasks, [*(plan.subtasks[i] for i in redo), None], strict=True):
        keypoints = list(old.keypoints) if old is not None and old.skill == "place" else list(sub.keypoints)
        subtasks.append(SubtaskData(sub.index, sub.code, sub.skill, keypoints))
    new.subtasks = subtasks
    return new


def _rename_merged(plan: PlanData, index: int, scene: Sequence) -> str:
    """Step ``index``'s code line, its object or target renamed to what the current scene listing calls it when
    the listing has no object of that exact name: an object of the same colour and category (block or
    container), the nearest to where the step's keypoints put it. Objects merge in a listing and come back under
    other names: a block in a tray of its colour makes the tray read as a bowl, a large block beside nothing to
    compare reads as a block. Unchanged when the name is listed or no such object is (the redo then says so)."""
    sub = plan.subtasks[index]
    names = {o.name for o in scene}
    key = "target" if sub.skill == "place" else "object"
    name = step_arg(sub, key)
    if not name or name in names or named_colour(name) is None:
        return sub.code
    block = not is_container(name)
    alike = [o for o in scene if o.colour == named_colour(name) and o.is_block == block]
    steps = [sub, *plan.subtasks[index + 1:index + 2]] if sub.skill == "pick" else [sub]  # a pick: its place too
    refs = [np.asarray(kp.point, float) for s in steps for kp in s.keypoints]
    if not alike or not refs:
        return sub.code

    def distance(o: object) -> float:
        return min(float(np.linalg.norm(np.asarray(o.centre[:2]) - r[:2])) for r in refs)

    best = min(alike, key=distance)
    return sub.code.replace(f'"{name}"', f'"{best.name}"', 1)


def goal_steps(plan: PlanData, earlier: Sequence[PlanData] = ()) -> PlanData:
    """The plan whose steps carry every goal of ``earlier`` revisions and ``plan``: each place (after its pick)
    and push once, in the order first seen, renumbered; the ``plan_id``, revision and reasoning of ``plan``."""
    goals: dict[tuple[str, ...], list[SubtaskData]] = {}  # in the order first seen
    for rev in [*earlier, plan]:
        subs = rev.subtasks
        for i, sub in enumerate(subs):
            pick = subs[i - 1] if sub.skill == "place" and i > 0 and subs[i - 1].skill == "pick" else None
            key = (sub.code,) if sub.skill == "push" else (pick.code if pick else "", sub.code)
            if sub.skill == "push":
                goals[key] = [sub]  # the latest push line: where the object is looked for
            elif sub.skill == "place":
                goals[key] = [s for s in (pick, sub) if s is not None]  # the latest place point (a correction's)
    steps = [s for group in goals.values() for s in group]
    subtasks = [SubtaskData(i, s.code, s.skill, list(s.keypoints)) for i, s in enumerate(steps)]
    return PlanData(plan.plan_id, plan.revision, plan.instruction, plan.reasoning, subtasks, plan.frame_id,
                    plan.stamp_ns)


def moved_objects(plans: Sequence[PlanData]) -> set[str]:
    """The objects that the ``pick`` and ``push`` steps of ``plans`` name."""
    names = {step_arg(sub, "object") for rev in plans for sub in rev.subtasks if sub.skill in ("pick", "push")}
    return names - {None}


MERGE_RADIUS_M = 0.06
"""An object of a moved object's colour this near (horizontally) to where a plan put an object of that colour
is taken for that object, merged with what it was put on or into."""


def _places_by_colour(plans: Sequence[PlanData]) -> tuple[dict[str, list[np.ndarray]], set[str]]:
    """Where ``plans`` put objects, by the held object's colour, and the blocks they put objects on."""
    points: dict[str, list[np.ndarray]] = {}
    bases: set[str] = set()
    for rev in plans:
        subs = rev.subtasks
        for i, sub in enumerate(subs):
            kp = sub.keypoint("place") if sub.skill == "place" else None
            if kp is None or i == 0 or subs[i - 1].skill != "pick":
                continue
            held, target = step_arg(subs[i - 1], "object"), step_arg(sub, "target")
            if held is None or target is None:
                continue
            points.setdefault(named_colour(held) or "", []).append(np.asarray(kp.point, float))
            if not is_container(target):
                bases.add(target)
    return points, bases


def missed_goals(replanned: PlanData, done: Sequence[PlanData], instruction: str = "") -> list[SubtaskData]:
    """The steps of ``replanned`` (the instruction planned again) on objects no plan of ``done`` moved: each
    push, and each place with its pick; one step per object (the first: a re-plan that moves an object twice
    is not followed the second time).

    A re-plan on the final image sees another scene than the first plan did: objects stacked or put into a
    container of their colour merge in the scene listing and come back under other names ("yellow block" for
    a large yellow block stacked on a small one). So an object is not taken as left out when it has the
    colour of an object a plan put within :data:`MERGE_RADIUS_M` of where it is now (or, for a push, the
    colour of any moved object), when it has a colour the ``instruction`` does not name (if it names any),
    or when the re-plan puts it on a block a plan already stacked on.
    """
    moved = moved_objects(done)
    moved_colours = {named_colour(name) for name in moved} - {None}
    asked = {term for word in re.findall(r"[a-z]+", instruction.lower()) if (term := named_colour(word))}
    placed, bases = _places_by_colour(done)

    def left_out(name: str, where: SubtaskData | None) -> bool:
        colour = named_colour(name)
        if name in moved or (asked and colour not in asked):
            return False
        if colour not in moved_colours:
            return True
        grasp = where.keypoint("grasp") if where is not None else None
        if grasp is None:  # a push, or no keypoint to tell where it is
            return False
        at = np.asarray(grasp.point, float)[:2]
        return all(np.linalg.norm(at - p[:2]) > MERGE_RADIUS_M for p in placed.get(colour or "", []))

    subs, out = replanned.subtasks, []
    for i, sub in enumerate(subs):
        if sub.skill == "push" and (obj := step_arg(sub, "object")) is not None and left_out(obj, None):
            out.append(sub)
            moved.add(obj)
        elif sub.skill == "place" and i > 0 and subs[i - 1].skill == "pick":
            held, target = step_arg(subs[i - 1], "object"), step_arg(sub, "target")
            if held is not None and target is not None and target not in bases and left_out(held, subs[i - 1]):
                out.extend([subs[i - 1], sub])
                moved.add(held)
    return out


SEVERAL_WORDS = frozenset("all every each both sort tidy group match blocks cubes bricks them".split())
"""Words of an instruction about several objects: only such an instruction can have a first plan that left one
out. A re-plan of "put the large red block in the red bowl" on the final image, the large block now merged with
the bowl in the listing, names the small red block: moving it would do what nobody asked."""


def asks_for_several(instruction: str) -> bool:
    """Whether ``instruction`` is about several objects, the only kind the re-plan on the final image looks at: it
    has a word of :data:`SEVERAL_WORDS`, or "and" with a colour that is no container's within the next three words
    ("put red in the bowl and green on the tray"; not "... and place it in the blue bowl")."""
    words = re.findall(r"[a-z]+", instruction.lower())
    if SEVERAL_WORDS & set(words):
        return True
    for i, w in enumerate(words):
        if w != "and":
            continue
        for j in range(i + 1, min(i + 4, len(words))):
            nxt = words[j + 1] if j + 1 < len(words) else ""
            if named_colour(words[j]) is not None and not (nxt and is_container(nxt)):
                return True
    return False


LISTED_SLACK_M = 0.04
"""Beyond the place check's radius, how far from a re-plan's place point the listing may put its object (a
container's slot is 3.3 cm from its centre) before the goal is taken as not reached."""


def _listed_elsewhere(plan: PlanData, index: int, cfg: GoalCheckConfig) -> GoalVerdict | None:
    """A re-plan's ``place`` step whose object the scene listing of the same image puts far from the place
    point (its grasp keypoint is where the listing sees it now): the goal does not hold, whatever pixels of its
    colour are near the place point (a block of that colour already there, merged with the container in the
    listing, read as this one). None when the step is no such place or the object is near enough."""
    sub = plan.subtasks[index]
    if sub.skill != "place" or index == 0 or plan.subtasks[index - 1].skill != "pick":
        return None
    grasp, place = plan.subtasks[index - 1].keypoint("grasp"), sub.keypoint("place")
    held, target = step_arg(plan.subtasks[index - 1], "object"), step_arg(sub, "target")
    if grasp is None or place is None or not held or not target:
        return None
    limit = (cfg.container_radius if is_container(target) else cfg.block_radius) + LISTED_SLACK_M
    d = float(np.linalg.norm(np.asarray(grasp.point, float)[:2] - np.asarray(place.point, float)[:2]))
    if d <= limit:
        return None
    return GoalVerdict(False, f"{sub.code}: the scene listing of the current image puts the {held} {d * 100:.0f} cm "
                              f"from the place point of the {target} (at most {limit * 100:.0f} cm for the goal)")


def verify_plan(plan: PlanData, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel, *,
                goal: GoalCheckConfig, perception: PerceptionConfig, limits: TextLimits, locate: Locate,
                max_corrections: int, stamp_ns: int = 0, earlier: Sequence[PlanData] = (),
                replan: Callable[[], PlanData | None] | None = None) -> tuple[str, PlanData | None, list[str], str]:
    """Check the goals of a completed plan (and of its ``earlier`` revisions) in the image: ``(outcome, revision,
    findings, reason)``. When they all hold, ``replan`` (the instruction planned again on this image, None when
    that fails) is asked, and its steps on objects no revision moved (:func:`missed_goals`) are checked too.

    ``outcome`` is ``verified`` (no goal seen unmet; no revision), ``corrected`` (the revision redoing the
    unmet steps) or ``failed`` (``reason`` says why: corrections used up, or the steps cannot be redone).
    """
    first_push: dict[str, SubtaskData] = {}
    for rev in [*earlier, plan]:
        for sub in rev.subtasks:
            if sub.skill == "push":
                first_push.setdefault(sub.code, sub)
    done = [*earlier, plan]
    plan = goal_steps(plan, earlier)
    verdicts = step_verdicts(plan, rgb, depth, camera, goal, first_push)
    redo = steps_to_redo(plan, verdicts)
    replanned = replan() if replan is not None and not redo and asks_for_several(plan.instruction) else None
    missed = missed_goals(replanned, done, plan.instruction) if replanned is not None else []
    if missed:  # the plan's goals hold: does the instruction ask for more?
        first_missed = len(plan.subtasks)
        plan.subtasks = [SubtaskData(i, s.code, s.skill, list(s.keypoints))
                         for i, s in enumerate([*plan.subtasks, *missed])]
        verdicts = [(i, _listed_elsewhere(plan, i, goal) or v) if i >= first_missed else (i, v)
                    for i, v in step_verdicts(plan, rgb, depth, camera, goal, first_push)]
        redo = steps_to_redo(plan, verdicts)
    findings = [v.line() for _, v in verdicts]
    if not redo:
        return "verified", None, findings, ""
    unmet = "; ".join(v.text for _, v in verdicts if v.holds is False)
    if any(v.holds is False and not v.redoable for _, v in verdicts):
        return "failed", None, findings, f"goal not reached, and doing the step again cannot reach it: {unmet}"
    if plan.revision >= max_corrections:
        return "failed", None, findings, (f"goal not reached after {plan.revision} corrections (max_corrections "
                                          f"{max_corrections}): {unmet}")
    reasoning = "\n".join(line for line in (
        plan.reasoning.strip(), "",
        f"[revision {plan.revision + 1}] {VERIFY_KIND}: the plan ran to its end, but the current image shows "
        f"{unmet}.", *(f"check: {f}" for f in findings),
        f"Redo {'; '.join(plan.subtasks[i].code for i in redo)} from where the objects are now; the goals that "
        "hold stay as they are.") if line is not None).strip()
    try:
        new = redo_plan(plan, redo, rgb, depth, camera, locate, perception, limits, stamp_ns)
    except PlanParseError as exc:
        return "failed", None, findings, f"goal not reached ({unmet}) and {exc}"
    new.reasoning = reasoning
    return "corrected", new, findings, ""

