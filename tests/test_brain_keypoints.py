"""Keypoints: pixel + rendered depth -> 3D base-frame point, checked against the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from robo_brain.keypoints import (
    KeypointConfig,
    KeypointError,
    WorkspaceBox,
    make_locator,
    pixel_to_base,
    window_depth,
)
from robo_common.camera import CameraModel
from robo_sim.world import SimWorld, WorldConfig


@pytest.fixture(scope="module")
def scene():
    with SimWorld(WorldConfig()) as world:
        blocks = {
            "red block": world.add_block("red", 0.05, (0.45, 0.10, 0.025), 0.3),
            "green block": world.add_block("green", 0.04, (0.55, -0.12, 0.02), 0.0),
            "blue block": world.add_block("blue", 0.05, (0.40, -0.05, 0.025), 1.0),
        }
        world.settle(0.2)
        rgb, depth = world.render()
        info = world.camera_info()
        centres = {name: world.object_pose(bid)[0] for name, bid in blocks.items()}
        yield rgb, depth, CameraModel(info.K, info.T_base_camera, info.width, info.height), centres


def test_block_top_centres_recovered_within_1p5_cm(scene) -> None:
    _, depth, cam, centres = scene
    for name, centre in centres.items():
        top = centre + np.array([0.0, 0.0, 0.02])  # just under the top face: the surface the camera sees
        u, v = cam.project(top)
        point = pixel_to_base(u, v, depth, cam)
        err = np.linalg.norm(point[:2] - centre[:2])
        assert err < 0.015, f"{name}: xy error {err * 100:.1f} cm"
        assert 0.02 < point[2] < 0.06, f"{name}: z {point[2]:.3f} is not on the block top"


def test_table_point_and_project_deproject_round_trip(scene) -> None:
    _, depth, cam, _ = scene
    target = np.array([0.60, 0.20, 0.0])
    u, v = cam.project(target)
    assert np.allclose(cam.deproject(u, v, float((np.linalg.inv(cam.T_base_camera) @ [*target, 1])[2])), target)
    point = pixel_to_base(u, v, depth, cam)
    assert np.linalg.norm(point - target) < 0.015


def test_many_point_projections_match_the_one_point_ones(scene) -> None:
    _, _, cam, centres = scene
    points = np.array(list(centres.values()))
    pixels = cam.project_many(points)
    assert np.allclose(pixels, [cam.project(p) for p in points])
    depths = np.array([0.6, 0.7, 0.8])
    assert np.allclose(cam.deproject_many(pixels[:, 0], pixels[:, 1], depths),
                       [cam.deproject(u, v, d) for (u, v), d in zip(pixels, depths, strict=True)])


def test_median_window_ignores_bad_pixels(scene) -> None:
    _, depth, cam, centres = scene
    u, v = cam.project(centres["red block"] + [0, 0, 0.02])
    noisy = depth.copy()
    col, row = int(round(u)), int(round(v))
    noisy[row, col] = np.nan
    noisy[row - 1, col] = 0.0
    noisy[row, col + 1] = 50.0
    assert abs(window_depth(noisy, u, v) - window_depth(depth, u, v)) < 0.01


def test_checks_raise_clear_errors(scene) -> None:
    _, depth, cam, centres = scene
    with pytest.raises(KeypointError, match="outside the 128x128 image"):
        pixel_to_base(130.0, 5.0, depth, cam)
    with pytest.raises(KeypointError, match="no valid depth"):
        pixel_to_base(64.0, 64.0, np.full_like(depth, np.nan), cam)
    with pytest.raises(KeypointError, match="below the table"):
        pixel_to_base(64.0, 64.0, depth + 0.3, cam)
    tight = KeypointConfig(workspace=WorkspaceBox(x=(0.5, 0.6), y=(-0.5, 0.5), z=(-0.03, 0.45)))
    u, v = cam.project(centres["blue block"])
    with pytest.raises(KeypointError, match="outside the workspace"):
        pixel_to_base(u, v, depth, cam, tight)
    with pytest.raises(KeypointError, match="depth image is 64x64"):
        pixel_to_base(10, 10, depth[:64, :64], cam)


def test_locator_and_config_validation(scene) -> None:
    _, depth, cam, centres = scene
    u, v = cam.project(centres["green block"] + [0, 0, 0.015])
    kp = make_locator(depth, cam)("grasp", u, v)
    assert kp.name == "grasp" and (kp.u, kp.v) == (u, v)
    assert np.linalg.norm(np.array(kp.point[:2]) - centres["green block"][:2]) < 0.015
    with pytest.raises(ValueError, match="window"):
        KeypointConfig(window=-1)
    with pytest.raises(ValueError, match=r"WorkspaceBox.x"):
        WorkspaceBox(x=(1.0, 0.0))
    with pytest.raises(ValueError, match="6 numbers"):
        WorkspaceBox.from_flat([0, 1])
    with pytest.raises(ValueError, match="K must be"):
        CameraModel(np.zeros((3, 3)), np.eye(4), 10, 10)


def test_push_keypoints_lie_on_the_pushers_path_not_on_the_table(scene) -> None:
    """A push keypoint's pixel is lifted to the pusher's height (PUSH_Z_M), where the expert pushes: lifted
    with the depth image it lay on the table (the policy drove the fingers into it: push stalls) or, where
    the block hides the path from the camera, on the block's top."""
    from robo_brain.perception import PUSH_Z_M
    from robo_brain.planner import Planner, PlannerConfig
    from tests.brain_scene_helpers import NeverAsked

    _, depth, cam, centres = scene
    locate = Planner(NeverAsked(), PlannerConfig()).locator(depth, cam)
    for name, centre in centres.items():
        start = np.array([centre[0] - 0.06, centre[1], PUSH_Z_M])  # behind the block, pushing forward (+x)
        u, v = cam.project(start)
        kp = locate("push_start", u, v)
        assert np.allclose(kp.point, start, atol=1e-6), (name, kp.point, start)
        seen = make_locator(depth, cam)("push_start", u, v)  # the surface the depth image shows there
        assert abs(seen.point[2] - PUSH_Z_M) > 0.008, (name, seen.point)
    with pytest.raises(KeypointError, match="outside the workspace"):
        locate("push_end", *cam.project(np.array([0.5, 0.8, PUSH_Z_M])))
    grasp = locate("grasp", *cam.project(centres["green block"] + [0, 0, 0.015]))
    assert 0.01 < grasp.point[2] < 0.03  # grasps still come from the depth image (the block's middle)
    with pytest.raises(KeypointError, match="does not meet the plane"):
        locate("push_start", 64.0, -3000.0)  # a pixel above the horizon
