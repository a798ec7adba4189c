"""The keypoint check of a pick or push (is its object there, in the named colour?) on frames rendered by the
simulator, the colour-name reading it uses, and the executor's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from robo_cerebellum.executor import State
from robo_cerebellum.policy import Observation
from robo_cerebellum.safety import Verdict
from robo_cerebellum.scene_checks import GroundingConfig, keypoint_grounding
from robo_common import vocabulary
from robo_common.camera import CameraModel
from robo_common.colours import contradicts, named_colour, read_colour
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from tests.cerebellum_helpers import tiny_executor

Q0 = np.array([1.0, 0.0, 0.0, 0.0])
HOME = np.array([0.5, 0.0, 0.3])
# every colour of the simulator (held-out ones included), 4 cm blocks on a grid
GRID = [(0.40, -0.15), (0.40, 0.0), (0.40, 0.15), (0.50, -0.15), (0.50, 0.0), (0.50, 0.15), (0.60, -0.15),
        (0.60, 0.0), (0.60, 0.15)]
BLOCKS = dict(zip(vocabulary.COLORS, GRID, strict=True))


@pytest.fixture(scope="module")
def scene():
    from robo_sim.world import SimWorld

    world = SimWorld()
    for colour, (x, y) in BLOCKS.items():
        world.add_block(colour, 0.04, (x, y, 0.02), 0.3)
    world.settle(0.2)
    info = world.camera_info()
    rgb, depth = world.render()
    yield world, rgb, depth, CameraModel(info.K, info.T_base_camera, info.width, info.height)
    world.close()


def _pick(name: str, at: tuple[float, float]) -> SubtaskData:
    return SubtaskData(0, f'pick(object="{name}")', "pick", [KeypointData("grasp", (at[0], at[1], 0.02))])


def _push_left(name: str, at: tuple[float, float]) -> SubtaskData:
    """A leftward (+y) push of the object standing at ``at`` (keypoints as the expert places them)."""
    start = np.array([at[0], at[1] - 0.045, 0.02])
    return SubtaskData(0, f'push(object="{name}", direction="left")', "push",
                       [KeypointData("push_start", tuple(start)),
                        KeypointData("push_end", tuple(start + np.array([0.0, 0.125, 0.0])))])


def test_named_colour_reads_the_colour_word() -> None:
    assert named_colour("small red block") == "red"
    assert named_colour("large Gray cube") == "grey"
    assert named_colour("the mug") is None


@pytest.mark.parametrize("colour", list(vocabulary.COLORS))
def test_every_simulated_colour_reads_as_its_name(scene, colour) -> None:
    world, rgb, depth, camera = scene
    x, y = BLOCKS[colour]
    u, v = world.project(np.array([[x, y, 0.04]]))
    col, row = int(round(u[0])), int(round(v[0]))
    reading = read_colour(rgb[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3))
    assert reading.term == colour
    assert not contradicts(reading, colour)
    others = [c for c in vocabulary.COLORS if c != colour]
    # a chromatic block contradicts every other name but its hue neighbours within the margin
    assert sum(contradicts(reading, c) for c in others) >= len(others) - 1


def test_read_colour_ignores_shading_and_refuses_no_pixels() -> None:
    red = np.array([[202, 23, 23]])
    assert read_colour(red).term == read_colour(red * 0.6).term == "red"  # a shaded side face
    assert read_colour(np.array([[128, 128, 128]])).term == "grey"
    assert not contradicts(read_colour(np.array([[128, 128, 128]])), "white")  # exposure, not colour
    with pytest.raises(ValueError, match="at least one pixel"):
        read_colour(np.zeros((0, 3)))


@pytest.mark.parametrize("colour", list(vocabulary.COLORS))
def test_a_pick_keypoint_on_its_object_passes(scene, colour) -> None:
    _, rgb, depth, camera = scene
    result = keypoint_grounding(_pick(f"{colour} block", BLOCKS[colour]), rgb, depth, camera)
    assert result.verdict == "ok", result.detail


@pytest.mark.parametrize(("named", "actual"), [("red", "blue"), ("purple", "green"), ("cyan", "white"),
                                               ("orange", "blue"), ("yellow", "pink")])
def test_a_pick_keypoint_on_another_colour_is_wrong(scene, named, actual) -> None:
    _, rgb, depth, camera = scene
    result = keypoint_grounding(_pick(f"small {named} block", BLOCKS[actual]), rgb, depth, camera)
    assert result.verdict == "wrong_colour" and result.failed
    assert f"not {named}" in result.detail and actual in result.detail


def test_a_pick_keypoint_on_the_table_has_no_object(scene) -> None:
    _, rgb, depth, camera = scene
    result = keypoint_grounding(_pick("red block", (0.45, -0.075)), rgb, depth, camera)
    assert result.verdict == "no_object" and result.failed and "bare table" in result.detail


def test_a_hidden_or_unseen_keypoint_is_inconclusive(scene) -> None:
    _, rgb, depth, camera = scene
    near = np.full_like(depth, 0.05)  # everything 5 cm from the lens: the arm in front of the camera
    hidden = keypoint_grounding(_pick("red block", BLOCKS["red"]), rgb, near, camera)
    assert hidden.verdict == "occluded" and not hidden.failed and not hidden.final
    blind = keypoint_grounding(_pick("red block", BLOCKS["red"]), rgb, np.full_like(depth, np.nan), camera)
    assert blind.verdict == "unchecked" and blind.final and not blind.failed
    no_kp = SubtaskData(0, 'pick(object="red block")', "pick", [])
    assert keypoint_grounding(no_kp, rgb, depth, camera).verdict == "unchecked"
    nameless = keypoint_grounding(_pick("mug", BLOCKS["red"]), rgb, depth, camera)
    assert nameless.verdict == "ok" and "names no basic colour" in nameless.detail


def test_a_push_is_checked_ahead_of_its_start(scene) -> None:
    _, rgb, depth, camera = scene
    assert keypoint_grounding(_push_left("green block", BLOCKS["green"]), rgb, depth, camera).verdict == "ok"
    wrong = keypoint_grounding(_push_left("green block", BLOCKS["yellow"]), rgb, depth, camera)
    assert wrong.verdict == "wrong_colour" and "push_start" in wrong.detail
    empty = keypoint_grounding(_push_left("green block", (0.45, -0.075)), rgb, depth, camera)
    assert empty.verdict == "no_object"


def test_grounding_config_is_validated() -> None:
    with pytest.raises(ValueError, match="radius"):
        GroundingConfig(radius=0.0)
    with pytest.raises(ValueError, match="min_pixels"):
        GroundingConfig(min_pixels=0)


def _plan(first: SubtaskData) -> PlanData:
    return PlanData("p1", 0, "pick it", "", [first, SubtaskData(1, "done()", "done", [])])


def test_executor_stops_a_pick_of_the_wrong_object_before_moving(scene) -> None:
    _, rgb, depth, camera = scene
    ex = tiny_executor()
    ex.update_view(depth, camera, rgb)  # a frame from before the plan is not looked at
    ex.set_plan(_plan(_pick("red block", BLOCKS["blue"])), HOME, Q0)
    assert ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05).state == State.RUNNING
    ex.update_view(depth, camera, rgb)
    result = ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert result.state == State.FAILED and result.failure.kind == "grasp_missed"
    assert "not red" in result.failure.detail
    assert result.safe.verdict == Verdict.HOLD and result.command is None  # the policy did not step


def test_executor_runs_a_good_pick_and_retries_an_occluded_view(scene) -> None:
    _, rgb, depth, camera = scene
    ex = tiny_executor()
    ex.set_plan(_plan(_pick("red block", BLOCKS["red"])), HOME, Q0)
    ex.update_view(np.full_like(depth, 0.05), camera, rgb)  # the arm hides the keypoint in this frame
    first = ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert first.state == State.RUNNING and first.command is not None  # the policy runs meanwhile
    assert "hidden" in ex.last_grounding
    ex.update_view(depth, camera, rgb)
    ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert ex._ground is None and "the object there is red" in ex.last_grounding


def test_executor_reports_a_push_of_the_wrong_object_as_no_progress(scene) -> None:
    _, rgb, depth, camera = scene
    ex = tiny_executor()
    ex.set_plan(_plan(_push_left("green block", BLOCKS["pink"])), HOME, Q0)
    ex.update_view(depth, camera, rgb)
    result = ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert result.state == State.FAILED and result.failure.kind == "no_progress"


def test_executor_without_a_colour_frame_gives_up_unchecked(scene) -> None:
    _, _, depth, camera = scene
    ex = tiny_executor()
    ex.set_plan(_plan(_pick("red block", BLOCKS["blue"])), HOME, Q0)
    results = []
    for _ in range(41):
        ex.update_view(depth, camera)  # depth only
        results.append(ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05))
    assert all(r.failure is None for r in results)
    assert ex._ground is None  # 2 s without a colour frame: the pick goes on unchecked


def test_executor_does_not_check_a_frame_taken_before_the_plan_that_arrives_after_it(scene) -> None:
    """A frame of the scene before a reset can reach the node after the plan made for the new scene (seen in
    ``check faults``: a false ``grasp_missed``); its stamp, older than the robot state at the plan's start, says so."""
    _, rgb, depth, camera = scene
    ex = tiny_executor()
    ex.robot_time_s = 10.0  # the newest robot state when the plan starts
    ex.set_plan(_plan(_pick("red block", BLOCKS["blue"])), HOME, Q0)
    ex.update_view(depth, camera, rgb, stamp_s=9.9)  # taken before: not looked at
    assert ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05).state == State.RUNNING
    assert ex._ground is not None and "before the subtask began" in ex.last_grounding
    ex.update_view(depth, camera, rgb, stamp_s=10.02)  # taken after the plan began: checked
    result = ex.tick(Observation(HOME, Q0, 1.0), 0.0, 0.0, 0.05)
    assert result.state == State.FAILED and "not red" in result.failure.detail
