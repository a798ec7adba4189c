"""The cerebellum node's ROS-free parts: parameter settings, step and tick schedules, throttles, camera tracking."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from robo_cerebellum.params import PARAMETERS, settings_from_parameters
from robo_cerebellum.scheduling import (
    ControlSchedule,
    FrameThinner,
    PolicySchedule,
    StatusThrottle,
    Throttle,
    raise_priority,
)
from robo_common.camera import CameraTracker

DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}


def test_settings_from_the_default_parameters_and_bad_values() -> None:
    cfg = settings_from_parameters(DEFAULTS)
    assert cfg.control_rate_hz == 200.0 and cfg.safety.state_timeout_s == 0.08 and cfg.gate.state_margin_m == 0.3
    assert cfg.scene is not None and cfg.grounding is not None and cfg.max_subtasks == 32
    with pytest.raises(ValueError, match="control_rate_hz"):
        settings_from_parameters({**DEFAULTS, "control_rate_hz": 0.0})
    with pytest.raises(ValueError, match="below workspace_max"):
        settings_from_parameters({**DEFAULTS, "workspace_min": [1.0, 0.0, 0.0]})
    assert settings_from_parameters({**DEFAULTS, "push_check": False}).scene is None


def test_status_throttle_sends_changes_at_once_and_progress_once_per_period_on_the_grid() -> None:
    throttle = StatusThrottle(0.05)
    running = ("running", 0, "running pick")
    sent = [t for t in np.arange(0.0, 0.2, 0.005) if throttle.due(running, float(t))]  # a 200 Hz policy
    assert np.allclose(sent, [0.0, 0.05, 0.1, 0.15])  # the grid a lock-stepped simulator waits on
    assert throttle.due(("running", 1, "running place"), 0.201)  # a new subtask: at once
    assert not throttle.due(("running", 1, "running place"), 0.205)
    assert throttle.due(("failed", 1, "object_dropped: ..."), 0.21)  # a failure: at once
    every = StatusThrottle(0.05)  # a 20 Hz policy: every step still goes out
    assert all(every.due(running, 0.05 * k) for k in range(10))
    assert all(StatusThrottle(0.0).due(running, 0.001 * k) for k in range(5))  # 0: no throttle
    assert settings_from_parameters(DEFAULTS).status_period_s == 0.05


def test_policy_schedule_wall_clock_steps_once_per_period_without_catching_up() -> None:
    s = PolicySchedule(0.05, sim_time=False)
    assert s.wait_s(10.0) == 0.0
    assert s.wait_s(10.01) == pytest.approx(0.04)
    assert s.wait_s(10.05) == 0.0
    steps = sum(s.wait_s(11.0) == 0.0 for _ in range(20))  # a stall of 0.9 s: not 18 catch-up steps
    assert steps == 1 and s.wait_s(11.0) > 0.0
    assert s.wait_s(-math.inf) == 0.002  # no state yet: poll


def test_policy_schedule_sim_time_steps_on_the_stamp_grid() -> None:
    s = PolicySchedule(0.05, sim_time=True)
    assert s.wait_s(0.012) == 0.0 and s.next_time == pytest.approx(0.05)
    assert 0 < s.wait_s(0.03) <= 0.002  # a short poll: the simulated clock may run fast or slow
    assert s.wait_s(0.05) == 0.0 and s.next_time == pytest.approx(0.10)


def test_control_schedule_keeps_absolute_deadlines_and_restarts_after_a_stall() -> None:
    c = ControlSchedule(0.005, now=0.0)
    assert c.next_delay(0.001) == pytest.approx(0.004)
    assert c.next_delay(0.0062) == pytest.approx(0.0038)  # a late tick does not shift the next deadline
    assert c.next_delay(0.1) == 0.0 and c.deadline == pytest.approx(0.1)  # stalled: restart from now
    c.extra_tick()
    assert c.next_delay(0.1) == pytest.approx(0.0)


def test_throttle_and_priority() -> None:
    t = Throttle(0.5)
    assert t.ready(0.0) and not t.ready(0.4) and t.ready(0.5)
    t.reset()
    assert t.ready(0.6)
    assert "normal scheduling" in raise_priority(0)


def test_camera_tracker_needs_intrinsics_and_a_finite_pose_in_the_base_frame() -> None:
    cam = CameraTracker("panda_link0")
    info = SimpleNamespace(k=[100.0, 0, 32, 0, 100.0, 32, 0, 0, 1], width=64, height=64)
    assert cam.set_info(info) == "" and cam.model is None
    assert "frame 'world'" in cam.set_pose("world", np.array([0, 0, 1, 0, 0, 0, 1.0]))
    assert "camera pose ignored" in cam.set_pose("panda_link0", np.array([np.nan, 0, 1, 0, 0, 0, 1.0]))
    assert cam.set_pose("panda_link0", np.array([0.5, 0, 1, 1, 0, 0, 0.0])) == "" and cam.model is not None
    assert cam.model.width == 64


def test_camera_frames_reach_the_policy_at_its_training_rate() -> None:
    """A 15 Hz camera feeds a policy trained on 5 Hz frames every third frame (by the frames' stamps); 0 Hz lets
    every frame through; a stamp that goes back (a restarted simulator) restarts the count; bad rates refuse."""
    thin = FrameThinner(5.0)
    stamps = [k / 15.0 for k in range(31)]
    through = [t for t in stamps if thin.due(t)]
    assert through == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0])
    assert thin.due(0.1)  # back in time: through, and counted from there
    assert not thin.due(0.2) and thin.due(0.3)
    assert thin.due(None)  # a frame without a stamp is never held back
    every = FrameThinner(0.0)
    assert all(every.due(t) for t in stamps)
    with pytest.raises(ValueError, match="image rate"):
        FrameThinner(-1.0)
    assert settings_from_parameters(DEFAULTS).policy_image_hz == 0.0
    with pytest.raises(ValueError, match="policy_image_hz"):
        settings_from_parameters({**DEFAULTS, "policy_image_hz": -5.0})
