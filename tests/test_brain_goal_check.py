"""The goal check before a correction, on simulator renders: a block that fell into its bowl, a push that
moved its block far enough, and the revision that resumes after a goal that holds."""

from __future__ import annotations

import numpy as np
import pytest

from robo_brain.goal_check import GoalCheckConfig, step_goal
from robo_brain.planner import FailureInfo, Outcome, Planner, PlannerConfig
from robo_common.plan_types import PlanData, SubtaskData
from robo_sim.world import SimWorld, WorldConfig
from tests.brain_scene_helpers import NeverAsked, camera_of, keypoint

RED_START = np.array([0.45, 0.10, 0.025])
BOWL = np.array([0.55, -0.12])


@pytest.fixture(scope="module")
def sim():
    world = SimWorld(WorldConfig())
    red = world.add_block("red", 0.05, tuple(RED_START), 0.2)
    bowl = world.add_container("blue", "bowl", tuple(BOWL), 0.0)
    world.settle(0.2)
    yield world, red, bowl, camera_of(world)
    world.close()


def _view(world: SimWorld, red: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    world.move_object(red, np.asarray(pos, float))
    world.settle(0.3)
    return world.render()


def _place_plan(world: SimWorld) -> PlanData:
    return PlanData("goal-plan", 1, "put the red block in the blue bowl", "", [
        SubtaskData(0, 'pick(object="red block")', "pick", [keypoint(world, "grasp", RED_START)]),
        SubtaskData(1, 'place(target="blue bowl")', "place", [keypoint(world, "place", (*BOWL, 0.01))]),
        SubtaskData(2, "done()", "done", []),
    ])


def _push_plan(world: SimWorld) -> PlanData:
    start = RED_START + np.array([0.0, 0.05, 0.0])  # behind the block for a push to the right (-y)
    start[2] = 0.013
    end = start + np.array([0.0, -0.125, 0.0])
    return PlanData("push-plan", 0, "push the red block to the right", "", [
        SubtaskData(0, 'push(object="red block", direction="right")', "push",
                    [keypoint(world, "push_start", start), keypoint(world, "push_end", end)]),
        SubtaskData(1, "done()", "done", []),
    ])


def test_a_block_that_fell_into_its_bowl_is_a_goal_that_holds(sim) -> None:
    world, red, _, camera = sim
    rgb, depth = _view(world, red, (*BOWL, 0.04))
    verdict = step_goal(_place_plan(world), 1, rgb, depth, camera)
    assert verdict.holds is True, verdict.text
    assert "red block" in verdict.text and "blue bowl" in verdict.text


@pytest.mark.parametrize("where", ["table", "held"])
def test_a_block_beside_the_bowl_or_still_held_above_it_is_not(sim, where: str) -> None:
    world, red, _, camera = sim
    pos = (0.40, -0.25, 0.025) if where == "table" else (*BOWL, 0.20)
    world.move_object(red, np.asarray(pos, float))
    if where == "held":  # no settling: as if the gripper still held it 20 cm above the bowl
        rgb, depth = world.render()
    else:
        rgb, depth = _view(world, red, pos)
    verdict = step_goal(_place_plan(world), 1, rgb, depth, camera)
    assert verdict.holds is not True, verdict.text
    if where == "held":
        assert "above it" in verdict.text


def test_push_goal_moved_far_enough_or_not(sim) -> None:
    world, red, _, camera = sim
    plan = _push_plan(world)
    rgb, depth = _view(world, red, RED_START + [0.0, -0.09, 0.0])
    assert step_goal(plan, 0, rgb, depth, camera).holds is True
    rgb, depth = _view(world, red, RED_START + [0.0, -0.02, 0.0])
    short = step_goal(plan, 0, rgb, depth, camera)
    assert short.holds is False and "needs 6 cm" in short.text
    rgb, depth = _view(world, red, RED_START)


def test_goal_check_cannot_tell_without_a_colour_word(sim) -> None:
    world, red, _, camera = sim
    plan = _place_plan(world)
    plan.subtasks[0] = SubtaskData(0, 'pick(object="block")', "pick", plan.subtasks[0].keypoints)
    rgb, depth = _view(world, red, (*BOWL, 0.04))
    assert step_goal(plan, 1, rgb, depth, camera).holds is None
    with pytest.raises(ValueError, match="min_pixels"):
        GoalCheckConfig(min_pixels=0)


def test_a_correction_resumes_after_a_goal_that_holds_even_past_max_corrections(sim) -> None:
    world, red, _, camera = sim
    rgb, depth = _view(world, red, (*BOWL, 0.04))
    plan = _place_plan(world)
    plan.revision = 3
    planner = Planner(NeverAsked(), PlannerConfig(max_corrections=3))
    failure = FailureInfo("object_dropped", "fingers opened 14 cm above the place point", 1)
    result = planner.correct(plan, failure, rgb, depth.astype(np.float32), camera)
    assert result.outcome == Outcome.CORRECTED and result.plan.revision == 4, result.errors
    assert result.plan.code_lines() == ["done()"] and result.plan.plan_id == plan.plan_id
    assert "goal holds" in result.plan.reasoning and "blue bowl" in result.plan.reasoning
    # a goal that does not hold goes the usual way: past max_corrections, that is giving up
    rgb, depth = _view(world, red, (0.40, -0.25, 0.025))
    given_up = planner.correct(plan, failure, rgb, depth.astype(np.float32), camera)
    assert given_up.outcome == Outcome.FAILED and "giving up" in given_up.reason
    world.move_object(red, RED_START)
    world.settle(0.2)


def test_a_redone_push_is_measured_from_where_the_object_first_stood(sim) -> None:
    world, red, _, camera = sim
    first = _push_plan(world)
    shift = np.array([0.0, -0.04, 0.0])  # the first push moved the block 4 cm; the redo starts from there
    redo = PlanData("push-plan", 1, first.instruction, "", [
        SubtaskData(0, first.subtasks[0].code, "push",
                    [keypoint(world, k.name, np.asarray(k.point) + shift) for k in first.subtasks[0].keypoints]),
        SubtaskData(1, "done()", "done", []),
    ])
    rgb, depth = _view(world, red, RED_START + [0.0, -0.085, 0.0])  # 8.5 cm in all
    assert step_goal(redo, 0, rgb, depth, camera).holds is False  # the redo alone moved it 4.5 cm
    total = step_goal(redo, 0, rgb, depth, camera, first=first.subtasks[0])
    assert total.holds is True, total.text
    world.move_object(red, RED_START)
    world.settle(0.2)


def test_a_push_that_went_far_enough_but_sideways_is_not_redone(sim) -> None:
    world, red, _, camera = sim
    plan = _push_plan(world)
    rgb, depth = _view(world, red, RED_START + [0.05, -0.09, 0.0])  # 9 cm along, 5 cm sideways
    verdict = step_goal(plan, 0, rgb, depth, camera)
    assert verdict.holds is False and not verdict.redoable and "sideways" in verdict.text
    planner = Planner(NeverAsked(), PlannerConfig(recheck_instruction=False))
    result = planner.verify(plan, rgb, depth.astype(np.float32), camera)
    assert result.outcome == Outcome.FAILED and "cannot reach" in result.reason
    world.move_object(red, RED_START)
    world.settle(0.2)


TRAY = np.array([0.52, 0.05])
SLOTS = [(*(TRAY + [-0.033, 0.0]), 0.008), (*(TRAY + [0.033, 0.0]), 0.008)]  # the brain's two tray slots
OUT_OF_TRAY = {"large": (TRAY[0] - 0.11, TRAY[1], 0.025), "small": (TRAY[0] + 0.11, TRAY[1], 0.02)}


@pytest.fixture(scope="module")
def yellow():
    """A yellow tray and two yellow blocks: "move every yellow cube into the yellow container"."""
    world = SimWorld(WorldConfig())
    world.add_container("yellow", "tray", tuple(TRAY), 0.0)
    blocks = {"large": world.add_block("yellow", 0.05, (0.40, -0.2, 0.025), 0.0),
              "small": world.add_block("yellow", 0.04, (0.45, 0.2, 0.02), 0.0)}
    world.settle(0.2)
    plan = PlanData("yellow-plan", 0, "move every yellow cube into the yellow container", "", [
        SubtaskData(0, 'pick(object="large yellow block")', "pick", [keypoint(world, "grasp", (0.40, -0.2, 0.025))]),
        SubtaskData(1, 'place(target="yellow tray")', "place", [keypoint(world, "place", SLOTS[0])]),
        SubtaskData(2, 'pick(object="small yellow block")', "pick", [keypoint(world, "grasp", (0.45, 0.2, 0.02))]),
        SubtaskData(3, 'place(target="yellow tray")', "place", [keypoint(world, "place", SLOTS[1])]),
        SubtaskData(4, "done()", "done", []),
    ])
    yield world, blocks, plan, camera_of(world)
    world.close()


@pytest.mark.parametrize("inside", [("large", "small"), ("large",), ("small",), ()])
def test_blocks_and_a_container_of_one_colour_count_only_the_block_each_place_put_there(yellow, inside) -> None:
    """The tray's own yellow pixels, and the other yellow block in the tray, are not the held block: before,
    every place here read as done (the tray's walls and floor counted), and the stack said SUCCEEDED."""
    world, blocks, plan, camera = yellow
    for (size, body), slot in zip(blocks.items(), SLOTS, strict=True):
        pos = (*slot[:2], 0.04) if size in inside else OUT_OF_TRAY[size]
        world.move_object(body, np.asarray(pos, float))
    world.settle(0.4)
    rgb, depth = world.render()
    for size, index in (("large", 1), ("small", 3)):
        verdict = step_goal(plan, index, rgb, depth, camera)
        assert verdict.holds is (size in inside), (size, inside, verdict.text)
        assert f"{size} yellow block" in verdict.text


@pytest.mark.parametrize("where", ["on", "beside"])
def test_a_block_on_a_block_of_its_own_colour_is_seen_above_the_base_top(yellow, where: str) -> None:
    world, blocks, _, camera = yellow
    base = np.array([0.45, 0.15])
    world.move_object(blocks["large"], np.asarray((*base, 0.025), float))
    top = (*base, 0.075) if where == "on" else (base[0], base[1] + 0.08, 0.02)
    world.move_object(blocks["small"], np.asarray(top, float))
    world.settle(0.4)
    rgb, depth = world.render()
    plan = PlanData("stack-plan", 0, "put the small yellow block on the large yellow block", "", [
        SubtaskData(0, 'pick(object="small yellow block")', "pick", [keypoint(world, "grasp", (0.45, 0.2, 0.02))]),
        SubtaskData(1, 'place(target="large yellow block")', "place", [keypoint(world, "place", (*base, 0.05))]),
        SubtaskData(2, "done()", "done", []),
    ])
    verdict = step_goal(plan, 1, rgb, depth, camera)
    assert verdict.holds is (where == "on"), verdict.text


def test_a_place_keypoint_lifted_onto_a_block_already_in_the_container_still_sees_the_block(yellow) -> None:
    """A correction's place pixel lifted with depth lands on what the container holds (here 5 cm up, not on its
    floor): the same-colour rule measures from the container's floor, not from the keypoint."""
    world, blocks, plan, camera = yellow
    for (_, body), slot in zip(blocks.items(), SLOTS, strict=True):
        world.move_object(body, np.asarray((*slot[:2], 0.04), float))
    world.settle(0.4)
    rgb, depth = world.render()
    lifted = (*SLOTS[1][:2], 0.05)
    high = PlanData(plan.plan_id, 1, plan.instruction, "", [
        *plan.subtasks[:3], SubtaskData(3, plan.subtasks[3].code, "place", [keypoint(world, "place", lifted)]),
        plan.subtasks[4]])
    verdict = step_goal(high, 3, rgb, depth, camera)
    assert verdict.holds is True, verdict.text
