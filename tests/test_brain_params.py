"""brain_node's parameters without ROS: defaults, configs, the fallback camera pose, instruction checks."""

from __future__ import annotations

import numpy as np
import pytest

from robo_brain.params import (
    MAX_INSTRUCTION_BYTES,
    PARAMETERS,
    camera_pose_from_parameter,
    checked_instruction,
    configs_from_parameters,
)

DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}


def test_every_parameter_has_a_description() -> None:
    assert all(isinstance(text, str) and text for _, text in PARAMETERS.values())


def test_defaults_configure_the_shipped_brain_v2() -> None:
    planner, backend = configs_from_parameters(DEFAULTS)
    assert backend.backend == "transformers" and backend.model_path.endswith("brain_lm")
    assert planner.snap_radius == 6 and planner.max_corrections == 3 and planner.correction == "auto"
    assert planner.checks.keypoints.workspace.x == (0.15, 0.85)
    assert planner.generation.max_new_tokens == 256 and not planner.generation.do_sample


def test_values_reach_the_configs() -> None:
    values = {**DEFAULTS, "backend": "openai", "model_path": "m", "request_retries": 5, "depth_window": 3,
              "workspace": [0.0, 1.0, -1.0, 1.0, -0.1, 0.5], "keypoint_snap_radius": 0}
    planner, backend = configs_from_parameters(values)
    assert (backend.backend, backend.model_path, backend.retries) == ("openai", "m", 5)
    assert planner.checks.keypoints.window == 3 and planner.checks.keypoints.workspace.z == (-0.1, 0.5)
    assert planner.snap_radius == 0


def test_a_bad_workspace_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="6 numbers"):
        configs_from_parameters({**DEFAULTS, "workspace": [0.0, 1.0]})


def test_fallback_camera_pose() -> None:
    assert camera_pose_from_parameter([0.0]) is None
    T = camera_pose_from_parameter([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0])
    assert np.allclose(T, [[1, 0, 0, 0.1], [0, 1, 0, 0.2], [0, 0, 1, 0.3], [0, 0, 0, 1]])
    for bad in ([1.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0, 1.0]):
        with pytest.raises(ValueError, match="camera_pose"):
            camera_pose_from_parameter(bad)


def test_instruction_checks() -> None:
    assert checked_instruction("  put the red\nblock  away ", 500) == "put the red block away"
    with pytest.raises(ValueError, match="at most 4096"):
        checked_instruction("x" * (MAX_INSTRUCTION_BYTES + 1), 10_000)
    with pytest.raises(ValueError, match="the current plan is kept"):
        checked_instruction("x" * 20, 10)
    with pytest.raises(ValueError, match="empty"):
        checked_instruction(" \n ", 500)
    with pytest.raises(ValueError, match="not valid UTF-8"):
        checked_instruction(b"put the \xff red block".decode("utf-8", errors="replace"), 500)
