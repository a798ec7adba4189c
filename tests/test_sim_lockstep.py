"""sim_node's lock-step clock without ROS: where simulated time stops, and for how long."""

from __future__ import annotations

import pytest

from robo_sim.lockstep import Lockstep


def test_time_stops_at_the_next_point() -> None:
    ls = Lockstep(0.05, 1.0)
    assert ls.step(0.0, 0.01) == pytest.approx(0.01)
    assert ls.step(0.04, 0.02) == pytest.approx(0.01)  # never past 0.05
    assert ls.step(0.05, 0.2) == pytest.approx(0.05)  # from a point: up to the next one
    assert ls.step(0.1 - 1e-9, 0.2) == pytest.approx(0.05, abs=1e-6)  # float noise at a point counts as the point


def test_holds_at_a_point_until_the_controller_answers() -> None:
    ls = Lockstep(0.05, 1.0)
    assert ls.state(0.03, now=0.0) == "go"  # between points
    assert ls.state(0.05, now=0.0) == "hold"
    assert ls.state(0.05, now=0.5) == "hold"
    ls.answer(0.04)  # an older status does not answer this point
    assert ls.state(0.05, now=0.6) == "hold"
    ls.answer(0.05)
    assert ls.state(0.05, now=0.7) == "go" and ls.timeouts == 0
    ls.answer(0.01)  # stamps never go back
    assert ls.answered == pytest.approx(0.05)


def test_a_silent_controller_times_out_once_per_point() -> None:
    ls = Lockstep(0.05, 0.5)
    assert ls.state(0.1, now=10.0) == "hold"
    assert ls.state(0.1, now=10.4) == "hold"
    assert ls.state(0.1, now=10.6) == "timeout" and ls.timeouts == 1
    assert ls.state(0.15, now=10.7) == "hold"  # the next point waits afresh
    assert ls.state(0.15, now=11.3) == "timeout" and ls.timeouts == 2


@pytest.mark.parametrize("period, timeout", [(0.0, 1.0), (-0.05, 1.0), (0.05, 0.0), (float("nan"), 1.0)])
def test_bad_settings_are_value_errors(period: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="lockstep"):
        Lockstep(period, timeout)
