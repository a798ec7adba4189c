"""Shared pieces of the brain tests that look at simulator renders (the goal checks)."""

from __future__ import annotations

import numpy as np

from robo_brain.backends import BrainBackend
from robo_common.camera import CameraModel
from robo_common.plan_types import KeypointData
from robo_sim.world import SimWorld


class NeverAsked(BrainBackend):
    """A back-end that fails the test when asked: a goal check and its revision need no model."""

    name = "never-asked"

    def generate(self, messages, image=None, settings=None, cancel=None) -> str:  # noqa: ANN001
        raise AssertionError("the model was asked, but a goal check needs no model")


def camera_of(world: SimWorld) -> CameraModel:
    """The brain's camera model of the simulator's camera."""
    info = world.camera_info()
    return CameraModel(info.K, info.T_base_camera, info.width, info.height)


def keypoint(world: SimWorld, name: str, point) -> KeypointData:  # noqa: ANN001
    """A keypoint at a 3D point in the robot base frame, with its pixel in the simulator's camera."""
    u, v = world.project(np.asarray(point, float)[None, :])
    return KeypointData(name, tuple(float(c) for c in point), float(u[0]), float(v[0]))
