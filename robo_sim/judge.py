"""The simulator's ground truth as judge of a failure report (does the world agree the step failed?).

Evaluation only: the cerebellum detects failures from what the robot measures; the simulator, which
knows where every object is, says whether a report was right. In process the closed loop asks
:func:`world_failure` at the moment of the report; over DDS ``sim_node`` asks it when a
``/robo/failure`` arrives and publishes the verdict in ``/sim/episode`` (``failures``).
"""

from __future__ import annotations

import numpy as np

from robo_common.plan_types import PlanData
from robo_sim import catalog
from robo_sim.episode import HAND_RADIUS, hand_distance
from robo_sim.expert import ExpertConfig, parse_code
from robo_sim.tasks import pushed
from robo_sim.world import SimWorld

EMPTY_WIDTH = 0.2
"""Finger opening (0..1) below which closed fingers hold nothing (the failure monitor's ``empty_width``)."""

MEASURED_KINDS = ("tracking_error", "no_progress", "timeout", "unsafe_command")
"""Failure kinds that are measurements of the arm itself (a stall, a lag): true when reported."""


def world_failure(world: SimWorld, plan: PlanData, index: int, kind: str, gripper_width: float | None = None) -> str:
    """Why the simulator's ground truth agrees that subtask ``index`` of ``plan`` has failed ("" if it does not).

    Checked at the moment the monitor reports ``kind`` in an episode without an injected perturbation:
    a pick whose object left its keypoint or that closed the fingers on nothing (an opening narrower than
    any block: even with the object a few cm from the hand, above or beside the fingers), a place whose
    object is no longer in the hand or whose release was stopped off the target's footprint, a push
    that did not move its object along (as the task's success test counts it, from where its
    keypoints say the object stood), or a failure of the arm itself (``MEASURED_KINDS``). A report
    that none of these confirms (e.g. the learned head firing on a good push) is a false alarm.

    ``gripper_width``: the finger opening (0-1) to judge a pick by, default the world's now. Over DDS a report
    reaches sim_node after the cerebellum's hold may have opened the fingers again; the session passes the
    narrowest opening of the moments before the report (:data:`robo_sim.sim_session.JUDGE_WINDOW_S`).
    """
    width = world.gripper_width01() if gripper_width is None else gripper_width
    sub = plan.subtasks[index]
    if kind in MEASURED_KINDS and sub.skill != "push":
        return kind
    try:
        _, args = parse_code(sub.code)
        if sub.skill == "push":
            name, start = args["object"], sub.keypoint("push_start")
            d = np.array(catalog.DIRECTIONS[args["direction"]])
            half = world.object_by_name(name).size / 2.0 + ExpertConfig().push_gap
            start_xy = np.asarray(start.point)[:2] + d * half
            if not pushed(world, name, args["direction"], tuple(start_xy)):
                return f"{name} was not pushed {args['direction']} (from where its push_start keypoint puts it)"
            return kind if kind in ("tracking_error", "unsafe_command") else ""
        if sub.skill == "pick":
            name = args["object"]
            pos, _ = world.object_pose(world.object_by_name(name).body_id)
            moved = float(np.linalg.norm(pos[:2] - np.asarray(sub.keypoint("grasp").point)[:2]))
            in_hand = hand_distance(world, name)
            if moved > 0.03 and in_hand > HAND_RADIUS:
                return f"{name} is {moved * 100:.1f} cm from its grasp keypoint"
            if width < EMPTY_WIDTH:  # narrower than any block: nothing is between the fingers, however near
                return f"fingers closed on nothing, {in_hand * 100:.1f} cm from {name}"
        elif sub.skill == "place" and index > 0 and plan.subtasks[index - 1].skill == "pick":
            name = parse_code(plan.subtasks[index - 1].code)[1]["object"]
            in_hand = hand_distance(world, name)
            if in_hand > HAND_RADIUS:
                return f"{name} is {in_hand * 100:.1f} cm from the hand"
            target = world.object_by_name(args["target"])
            across = float(np.linalg.norm(world.ee_pose()[0][:2] - world.object_pose(target.body_id)[0][:2]))
            if kind == "object_dropped" and across > target.size / 2.0 + 0.01:
                return f"the hand is {across * 100:.1f} cm from the centre of {target.name}: a release there misses it"
    except (KeyError, ValueError, AttributeError):  # a model's plan naming an object the scene does not have
        return "the plan names an object the scene does not have"
    return ""
