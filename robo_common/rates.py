"""Durations and control rates: the one conversion from seconds to a number of steps (ROS-free)."""

from __future__ import annotations


def seconds_to_steps(seconds: float, hz: float, minimum: int = 1) -> int:
    """``seconds`` as a whole number of steps at ``hz`` (rounded, at least ``minimum``).

    Every duration the stack counts in steps (the monitor's windows, the simulator's labels and perturbations,
    training labels) is written in seconds and converted here, so that it means the same at 20 Hz and 200 Hz.
    """
    return max(minimum, int(round(seconds * hz)))
