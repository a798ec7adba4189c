"""The push-result check on depth images rendered by the simulator, and the executor's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from robo_cerebellum.executor import PlanExecutor, State
from robo_cerebellum.policy import Observation
from robo_cerebellum.safety import Verdict
from robo_cerebellum.scene_checks import SceneCheckConfig, push_outcome
from robo_common.camera import CameraModel
from robo_common.plan_types import KeypointData, PlanData, SubtaskData
from tests.cerebellum_helpers import tiny_executor

Q0 = np.array([1.0, 0.0, 0.0, 0.0])
HOME = np.array([0.5, 0.0, 0.3])
BLOCK = np.array([0.5, 0.05, 0.025])  # a 5 cm block, resting on the table
LEFT = np.array([0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def scene():
    from robo_sim.world import SimWorld

    world = SimWorld()
    block = world.add_block("red", 0.05, tuple(BLOCK), 0.0)
    world.settle(0.2)
    info = world.camera_info()
    _, depth = world.render()
    yield world, block, depth, CameraModel(info.K, info.T_base_camera, info.width, info.height)
    world.close()


def _push(end: np.ndarray, shift: np.ndarray | None = None) -> SubtaskData:
    """A leftward push whose object, if it went along, now stands 2.5 cm past ``end``."""
    shift = np.zeros(3) if shift is None else shift
    start = end - LEFT * 0.125
    return SubtaskData(0, 'push(object="red block", direction="left")', "push",
                       [KeypointData("push_start", tuple(start + shift)), KeypointData("push_end", tuple(end + shift))])


def test_push_outcome_sees_the_pushed_object(scene) -> None:
    _, _, depth, camera = scene
    end = BLOCK - LEFT * 0.025
    end[2] = 0.013
    assert push_outcome(_push(end), depth, camera) is None
    # the object 2 cm short of where the push should have left it: still counted as pushed along
    assert push_outcome(_push(end + LEFT * 0.02), depth, camera) is None


@pytest.mark.parametrize("shift", [np.array([0.09, 0.0, 0.0]), np.array([-0.08, 0.0, 0.0]),
                                   np.array([0.0, -0.12, 0.0])])
def test_push_outcome_flags_a_missed_or_short_push(scene, shift) -> None:
    _, _, depth, camera = scene
    end = BLOCK - LEFT * 0.025
    end[2] = 0.013
    failure = push_outcome(_push(end, shift), depth, camera)
    assert failure is not None and failure.kind == "no_progress"
    assert "nothing stands where the push should have left the object" in failure.detail


def test_push_outcome_is_inconclusive_without_keypoints_or_view(scene) -> None:
    _, _, depth, camera = scene
    no_kp = SubtaskData(0, 'push(object="red block", direction="left")', "push", [])
    assert push_outcome(no_kp, depth, camera) is None
    blind = np.full_like(depth, np.nan)  # no valid depth at all
    end = BLOCK - LEFT * 0.025
    assert push_outcome(_push(end, np.array([0.09, 0.0, 0.0])), blind, camera) is None
    near = np.full_like(depth, 0.05)  # everything 5 cm from the lens: the arm in front of the camera
    assert push_outcome(_push(end, np.array([0.09, 0.0, 0.0])), near, camera) is None
    with pytest.raises(ValueError, match="min_height"):
        SceneCheckConfig(min_height=0.1, max_height=0.05)


def _plan(push: SubtaskData) -> PlanData:
    return PlanData("p1", 0, "push the red block left", "", [push, SubtaskData(1, "done()", "done", [])])


def _finish_push(ex: PlanExecutor) -> None:
    ex._subtask_finished = lambda progress: True  # the progress head says the push is over
    first = ex.tick(Observation(HOME, Q0, 0.4), 0.0, 0.0, 0.05)
    assert first.state == State.RUNNING and ex.index == 0


def test_executor_checks_a_finished_push_on_the_next_frame(scene) -> None:
    _, _, depth, camera = scene
    end = BLOCK - LEFT * 0.025
    end[2] = 0.013
    ex = tiny_executor()
    ex.update_view(depth, camera)  # a frame from before the push ended does not count
    ex.set_plan(_plan(_push(end)), HOME, Q0)
    _finish_push(ex)
    waiting = ex.tick(Observation(HOME, Q0, 0.4), 0.0, 0.0, 0.05)
    assert waiting.detail == "checking the push result" and waiting.safe.verdict == Verdict.HOLD
    ex.update_view(depth, camera)
    done = ex.tick(Observation(HOME, Q0, 0.4), 0.0, 0.0, 0.05)
    assert done.state == State.SUCCEEDED and done.failure is None


def test_executor_reports_a_missed_push_as_no_progress(scene) -> None:
    _, _, depth, camera = scene
    end = BLOCK - LEFT * 0.025
    end[2] = 0.013
    ex = tiny_executor()
    ex.update_view(depth, camera)
    ex.set_plan(_plan(_push(end, np.array([0.09, 0.0, 0.0]))), HOME, Q0)
    _finish_push(ex)
    ex.update_view(depth, camera)
    failed = ex.tick(Observation(HOME, Q0, 0.4), 0.0, 0.0, 0.05)
    assert failed.state == State.FAILED and failed.failure.kind == "no_progress"
    assert failed.safe.verdict == Verdict.HOLD


def test_executor_without_a_new_frame_goes_on_unchecked(scene) -> None:
    _, _, depth, camera = scene
    end = BLOCK - LEFT * 0.025
    ex = tiny_executor()
    ex.update_view(depth, camera)
    ex.set_plan(_plan(_push(end, np.array([0.09, 0.0, 0.0]))), HOME, Q0)
    _finish_push(ex)
    results = [ex.tick(Observation(HOME, Q0, 0.4), 0.0, 0.0, 0.05) for _ in range(21)]
    assert results[-2].detail == "checking the push result"
    assert results[-1].state == State.SUCCEEDED  # 1 s without a frame: not checked, not failed
