"""Tests of robo_sim.world: IK tracking, motion limits, gripper, camera geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robo_common.geometry import quat_angle
from robo_sim.expert import topdown_quat
from robo_sim.world import SimWorld, WorldConfig


def _track(world: SimWorld, pos, quat, steps: int = 40) -> None:
    for _ in range(steps):
        world.set_ee_target(np.array(pos), quat)
        world.step_control()


@pytest.mark.parametrize(
    "pos,yaw",
    [((0.5, 0.1, 0.2), 0.3), ((0.4, -0.2, 0.05), -0.7), ((0.65, 0.25, 0.03), 0.0), ((0.35, 0.2, 0.3), 1.2)],
)
def test_ik_tracks_within_1cm_5deg(world, pos, yaw):
    world.reset_robot()
    q = topdown_quat(yaw)
    _track(world, pos, q)
    ee, eq = world.ee_pose()
    assert np.linalg.norm(ee - np.array(pos)) < 0.01
    assert math.degrees(quat_angle(eq, q)) < 5.0


def test_rejects_nonfinite_and_clamps(world):
    world.reset_robot()
    with pytest.raises(ValueError):
        world.set_ee_target(np.array([np.nan, 0, 0.2]), topdown_quat(0))
    with pytest.raises(ValueError):
        world.set_ee_target(np.array([0.4, 0, 0.2]), np.array([0, 0, 0, np.inf]))
    start, _ = world.ee_target
    assert world.set_ee_target(start + np.array([0.3, 0, 0]), topdown_quat(0)) is True
    moved, _ = world.ee_target
    assert np.linalg.norm(moved - start) == pytest.approx(world.config.max_step_translation, abs=1e-6)
    assert world.set_ee_target(moved, topdown_quat(0)) is False


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="max_step_translation"):
        WorldConfig(max_step_translation=0.0)
    with pytest.raises(ValueError, match="far"):
        WorldConfig(near=1.0, far=0.5)


def test_gripper_opens_and_closes(world):
    world.reset_robot()
    world.set_gripper(0.0)
    world.step(0.6)
    assert world.gripper_width01() < 0.05
    world.set_gripper(1.0)
    world.step(0.6)
    assert world.gripper_width01() > 0.95
    names, pos, vel, eff = world.joint_state()
    assert len(names) == 9 and pos.shape == (9,) and names[0] == "panda_joint1"


def test_camera_deprojects_rendered_block_within_1cm(world):
    world.remove_all_objects()
    bid = world.add_block("red", 0.05, (0.5, 0.05, 0.025), 0.4)
    world.settle(0.2)
    rgb, depth = world.render()
    info = world.camera_info()
    assert rgb.shape == (info.height, info.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == (info.height, info.width) and depth.dtype == np.float32
    pos, _ = world.object_pose(bid)
    top = pos + np.array([0, 0, 0.025])
    u, v = world.project(top[None, :])
    ui, vi = int(round(u[0])), int(round(v[0]))
    assert rgb[vi, ui, 0] > 120 and rgb[vi, ui, 1] < 80  # the red block is at that pixel
    back = world.deproject(ui, vi, float(depth[vi, ui]))
    assert np.linalg.norm(back - top) < 0.01
    world.remove_all_objects()


def test_project_deproject_roundtrip_and_frames(world):
    info = world.camera_info()
    pts = np.array([[0.4, -0.1, 0.0], [0.6, 0.2, 0.1], [0.5, 0.0, 0.05]])
    u, v = world.project(pts)
    T_cam_base = np.linalg.inv(info.T_base_camera)
    for i, pt in enumerate(pts):
        z = (T_cam_base @ np.append(pt, 1.0))[2]
        assert np.allclose(world.deproject(u[i], v[i], z), pt, atol=1e-9)
    z_axis = info.T_base_camera[:3, 2]
    assert z_axis[2] < -0.3  # optical z looks down at the table
    assert info.K[0, 0] == pytest.approx(info.K[1, 1]) and info.K[2, 2] == 1.0


def test_two_worlds_coexist():
    a, b = SimWorld(), SimWorld()
    try:
        assert a.cid != b.cid
        a.add_block("blue", 0.04, (0.5, 0.0, 0.02), 0.0)
        assert len(a.objects) == 1 and len(b.objects) == 0
    finally:
        a.close()
        b.close()


def test_bowl_is_round_and_tray_is_square(world):
    """A bowl is a disc and a ring wall: a block dropped at its centre rests on the floor inside, one dropped
    where a square bowl's corner would be lands on the ring or the table outside, in the tray it lands inside."""
    from robo_sim.tasks import in_container

    for kind, inside_at_corner in (("bowl", False), ("tray", True)):
        world.remove_all_objects()
        world.add_container("yellow", kind, (0.5, 0.0), 0.0)
        world.add_block("red", 0.04, (0.5, 0.0, 0.06), 0.0, name="centre block")
        # 5.6 cm along x and y: inside the 14 cm tray's square, 7.9 cm from the centre (> the bowl's 6.5 cm)
        world.add_block("blue", 0.02, (0.556, 0.056, 0.08), 0.0, name="corner block")
        world.settle(1.0)
        assert in_container(world, "centre block", f"yellow {kind}")
        assert in_container(world, "corner block", f"yellow {kind}") == inside_at_corner, kind
        info = world.object_by_name(f"yellow {kind}")
        assert info.kind == kind and info.size == pytest.approx(0.15 if kind == "bowl" else 0.16)
    # the camera sees a round rim: the bowl's pixels fill about pi/4 of their bounding box, a tray's all of it
    fills = {}
    for kind in ("bowl", "tray"):
        world.remove_all_objects()
        world.add_container("yellow", kind, (0.5, 0.0), 0.0)
        world.settle(0.1)
        rgb, _ = world.render()
        mask = (rgb[..., 0] > 110) & (rgb[..., 1] > 95) & (rgb[..., 2] < 70)  # yellow, lit or shaded
        vs, us = np.nonzero(mask)
        fills[kind] = mask.sum() / ((np.ptp(us) + 1) * (np.ptp(vs) + 1))
    assert fills["bowl"] < 0.85 < fills["tray"], fills
    world.remove_all_objects()


@pytest.mark.parametrize("hz,pattern", [(20.0, [12] * 5), (200.0, [1, 1, 1, 1, 2]), (240.0, [1] * 5)])
def test_control_periods_keep_simulated_time_in_pace_with_the_control_clock(hz, pattern):
    """5 ms periods on 240 Hz physics alternate 1 and 2 physics steps (not 1 each: time would run 17 % slow)."""
    w = SimWorld(WorldConfig(control_period=1.0 / hz))
    try:
        steps = []
        for _ in range(5):
            before = w.sim_time
            w.step_control()
            steps.append(round((w.sim_time - before) * 240.0))
        assert steps == pattern
        for _ in range(995):
            w.step_control()
        assert w.sim_time == pytest.approx(1000 / hz, abs=1.0 / 240.0)
    finally:
        w.close()
