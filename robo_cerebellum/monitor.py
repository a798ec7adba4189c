"""Failure monitor: the policy's learned failure head plus explicit checks on what the robot measures.

Checks (all from observations, never simulator ground truth):

* ``grasp_missed``: after a pick closed the gripper, the fingers closed on nothing (width below
  ``empty_width`` once the close command has been held ``grasp_settle_s``).
* ``object_dropped``: during a place, before its release, the gripper commanded firmly closed
  (below ``firm_grip``) and the fingers closed further than a held object allows, for
  ``drop_s`` in a row. The release is an open command once the policy's own progress
  is past ``release_progress`` (the release phase): when a block slips out during the carry, the
  policy sees the fingers open and commands open for a step or two, then closes on nothing, and a
  release latched on any open command hid every slip.
* ``object_dropped`` also when the gripper is commanded open for ``drop_s`` in a row during
  a place while the hand is more than ``release_radius`` (horizontally) or ``release_height``
  (vertically) from the place keypoint: an object let go there does not land on its target. Over
  DDS the shipped policy opens the fingers for ~0.5 s as a place starts, ~15 cm above and ~14 cm
  beside the bowl (README, "Known defect"); a shorter open command, like a shorter empty grip, is
  not counted.
* ``tracking_error``: measured TCP farther than ``tracking_error_m`` from the command for
  ``tracking_s`` in a row.
* ``no_progress``: the progress head has not advanced by ``min_progress`` in ``no_progress_s``.
* ``timeout``: one subtask has run longer than ``subtask_timeout_s``.
* ``low_confidence``: the learned failure probability stayed above ``failure_threshold`` for
  ``failure_s`` in a row. Off by default (``failure_threshold`` 1.0, a probability never
  exceeds it): the shipped policy's head fires with high confidence at ordinary releases (a slip,
  fingers opening during a carry, is what it learned as failure), so in clean closed-loop episodes
  it raised false alarms in about one episode of eight even at 0.9-0.99, and each one costs a
  retreat and a re-plan. Set it below 1 for a policy whose head is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_common.rates import seconds_to_steps


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds of the failure monitor (see ``config/cerebellum.yaml``).

    Durations are in seconds, whatever the policy's rate; :class:`FailureMonitor` turns them into a number
    of its steps (at least one). The defaults were tuned at 20 Hz as 3, 14, 10 and 3 steps.
    """

    empty_width: float = 0.2
    firm_grip: float = 0.1
    drop_s: float = 0.15
    release_progress: float = 0.4
    release_radius: float = 0.05
    release_height: float = 0.08
    grasp_settle_s: float = 0.7
    tracking_error_m: float = 0.05
    tracking_s: float = 0.5
    no_progress_s: float = 8.0
    min_progress: float = 0.05
    subtask_timeout_s: float = 30.0
    failure_threshold: float = 1.0
    failure_s: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 < self.empty_width < 1.0:
            raise ValueError(f"empty_width must be in (0, 1), got {self.empty_width}")
        if not 0.0 < self.failure_threshold <= 1.0:
            raise ValueError(f"failure_threshold must be in (0, 1], got {self.failure_threshold}")
        for name in ("grasp_settle_s", "tracking_s", "failure_s", "drop_s", "tracking_error_m", "no_progress_s",
                     "subtask_timeout_s", "release_radius", "release_height"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MonitorConfig.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class Failure:
    """A detected failure: a FailureReport kind and a human-readable detail."""

    kind: str
    detail: str


class FailureMonitor:
    """Watches one subtask at a time; call :meth:`start_subtask`, then :meth:`check` every step."""

    def __init__(self, config: MonitorConfig, rate_hz: float) -> None:
        """Thresholds in seconds are converted with the step rate ``rate_hz``."""
        self.config = config
        self.rate_hz = rate_hz
        self.grasp_settle_steps = seconds_to_steps(config.grasp_settle_s, rate_hz)
        self.drop_steps = seconds_to_steps(config.drop_s, rate_hz)
        self.tracking_steps = seconds_to_steps(config.tracking_s, rate_hz)
        self.failure_steps = seconds_to_steps(config.failure_s, rate_hz)
        self.start_subtask("")

    def start_subtask(self, skill: str, place_point: np.ndarray | None = None) -> None:
        """Reset the per-subtask counters for a new subtask of ``skill`` (a place: with its keypoint, if known)."""
        self.skill = skill
        self.place_point = None if place_point is None else np.asarray(place_point, float)
        self.steps = 0
        self.closed_steps = 0
        self.empty_closed = 0
        self.released = False
        self.open_away = 0
        self.tracking_bad = 0
        self.high_failure = 0
        self.best_progress = 0.0
        self.best_progress_step = 0

    def check(self, commanded_pos: np.ndarray, measured_pos: np.ndarray, gripper_command: float,
              gripper_width: float, progress: float, failure_probability: float) -> Failure | None:
        """Run every check on one step; returns the first failure found, or None."""
        self.steps += 1
        return (self._grasp(gripper_command, gripper_width)
                or self._drop(gripper_command, gripper_width, progress, measured_pos)
                or self._tracking(commanded_pos, measured_pos) or self._progress(progress)
                or self._timeout() or self._learned(failure_probability))

    def _grasp(self, command: float, width: float) -> Failure | None:
        if self.skill != "pick":
            return None
        self.closed_steps = self.closed_steps + 1 if command < 0.5 else 0
        if self.closed_steps >= self.grasp_settle_steps and width < self.config.empty_width:
            return Failure("grasp_missed", f"gripper closed to {width:.2f} of open: nothing between the fingers")
        return None

    def _drop(self, command: float, width: float, progress: float, measured: np.ndarray) -> Failure | None:
        if self.skill != "place" or self.released:
            return None
        away = False
        if command >= 0.5 and self.place_point is not None:
            offset = np.asarray(measured, float) - self.place_point
            across, up = float(np.linalg.norm(offset[:2])), float(offset[2])
            away = across > self.config.release_radius or abs(up) > self.config.release_height
        self.open_away = self.open_away + 1 if away else 0
        if away:
            if self.open_away >= self.drop_steps:
                return Failure("object_dropped", f"gripper opened {across * 100:.1f} cm beside and {up * 100:+.1f} cm "
                                                 f"above the place point: the object is let go away from its target")
            return None
        if command >= 0.5 and progress >= self.config.release_progress:
            self.released = True
            return None
        empty = command < self.config.firm_grip and width < self.config.empty_width
        self.empty_closed = self.empty_closed + 1 if empty else 0
        if self.empty_closed >= self.drop_steps:
            return Failure("object_dropped", f"gripper closed to {width:.2f} of open while placing: the object is "
                                             f"no longer in the hand")
        return None

    def _tracking(self, commanded: np.ndarray, measured: np.ndarray) -> Failure | None:
        error = float(np.linalg.norm(np.asarray(commanded) - np.asarray(measured)))
        self.tracking_bad = self.tracking_bad + 1 if error > self.config.tracking_error_m else 0
        if self.tracking_bad >= self.tracking_steps:
            return Failure("tracking_error", f"measured pose {error * 100:.1f} cm from the command "
                                             f"for {self.tracking_bad / self.rate_hz:.2f} s")
        return None

    def _progress(self, progress: float) -> Failure | None:
        if progress > self.best_progress + self.config.min_progress:
            self.best_progress, self.best_progress_step = progress, self.steps
        stalled = (self.steps - self.best_progress_step) / self.rate_hz
        if stalled > self.config.no_progress_s:
            return Failure("no_progress", f"progress stuck at {self.best_progress:.2f} for {stalled:.1f} s")
        return None

    def _timeout(self) -> Failure | None:
        elapsed = self.steps / self.rate_hz
        if elapsed > self.config.subtask_timeout_s:
            return Failure("timeout", f"subtask running for {elapsed:.1f} s")
        return None

    def _learned(self, probability: float) -> Failure | None:
        self.high_failure = self.high_failure + 1 if probability > self.config.failure_threshold else 0
        if self.high_failure >= self.failure_steps:
            return Failure("low_confidence", f"learned failure probability {probability:.2f} for "
                                             f"{self.high_failure / self.rate_hz:.2f} s")
        return None
