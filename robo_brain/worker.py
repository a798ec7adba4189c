"""A planning thread: loads the back-end off the caller's thread, runs one job at a time, newest wins.

The ROS node (and any other front-end) submits :class:`Job` s and gets results through
callbacks, so its executor never blocks on a model. A new job preempts the running one: the
running job's cancel event is set (the transformers back-end stops generating at the next
token) and its result is dropped; a job still queued is replaced. :meth:`BrainWorker.cancel` (an
operator's cancel) stops the running job and drops the queued one without a "preempted" status:
the front-end reports the cancel.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robo_brain.backends import BackendError, BrainBackend, Cancelled
from robo_brain.planner import FailureInfo, Outcome, Planner, PlannerConfig, PlanResult
from robo_common.camera import CameraModel
from robo_common.plan_types import PlanData

logger = logging.getLogger(__name__)


@dataclass
class Observation:
    """What the brain sees when a job starts: RGB-D, camera and gripper position."""

    rgb: np.ndarray
    depth: np.ndarray
    camera: CameraModel
    ee_position: np.ndarray | None = None
    stamp_ns: int = 0


@dataclass
class Job:
    """A plan request (``instruction``), a correction request (``plan`` + ``failure``) or a goal check of a
    completed plan (``verify``: ``plan``)."""

    kind: str
    observation: Observation
    instruction: str = ""
    plan: PlanData | None = None
    failure: FailureInfo | None = None
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancel: threading.Event = field(default_factory=threading.Event)
    earlier: list[PlanData] = field(default_factory=list)
    """``verify``: the plan's previous revisions (their goals are checked too)."""
    cancelled_by: str = ""
    """Who cancelled the job (:meth:`BrainWorker.cancel`); empty when it was preempted or ran."""

    def __post_init__(self) -> None:
        if self.kind not in ("plan", "correct", "verify"):
            raise ValueError(f"Job.kind must be 'plan', 'correct' or 'verify', got {self.kind!r}")
        if self.kind == "correct" and (self.plan is None or self.failure is None):
            raise ValueError("a correct job needs a plan and a failure")
        if self.kind == "verify" and self.plan is None:
            raise ValueError("a verify job needs the completed plan")


ResultCallback = Callable[[Job, PlanResult], None]
StatusCallback = Callable[[str, str], None]
"""``status(state, detail)`` with state in loading, ready, planning, correcting, verifying, preempted, error."""


class BrainWorker:
    """Owns the back-end and a thread that runs jobs (see the module docstring)."""

    def __init__(self, load_backend: Callable[[], BrainBackend], config: PlannerConfig, on_result: ResultCallback,
                 on_status: StatusCallback) -> None:
        """Prepare the worker; :meth:`start` loads the back-end in the thread."""
        self._load, self.config = load_backend, config
        self._on_result, self._on_status = on_result, on_status
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: Job | None = None
        self._running: Job | None = None
        self._stop = False
        self.planner: Planner | None = None
        self.load_error = ""
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="brain_worker", daemon=True)

    def start(self) -> None:
        """Start the thread (loads the back-end, then serves jobs)."""
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``, preempting the running and the queued one."""
        with self._lock:
            if self._running is not None:
                self._running.cancel.set()
            if self._pending is not None:
                self._pending.cancel.set()
            self._pending = job
        self._wake.set()

    def cancel(self, by: str) -> list[Job]:
        """Stop the running job and drop the queued one (an operator's cancel); returns the jobs stopped.

        Their results are dropped and no status is reported for them (the caller says who cancelled).
        """
        with self._lock:
            jobs = [job for job in (self._running, self._pending) if job is not None and not job.cancel.is_set()]
            for job in jobs:
                job.cancelled_by = by
                job.cancel.set()
            self._pending = None
        return jobs

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel work and join the thread."""
        with self._lock:
            self._stop = True
            for job in (self._running, self._pending):
                if job is not None:
                    job.cancel.set()
        self._wake.set()
        self._thread.join(timeout)
        if self.planner is not None:
            self.planner.backend.close()

    def _main(self) -> None:
        self._on_status("loading", "loading the model")
        t0 = time.perf_counter()
        try:
            self.planner = Planner(self._load(), self.config)
        except (BackendError, ValueError, OSError) as exc:
            self.load_error = str(exc)
            logger.error("model failed to load: %s", exc)
            self._on_status("error", f"model failed to load: {exc}")
            return
        warm_up = getattr(self.planner.backend, "warm_up", None)
        if warm_up is not None:
            logger.info("warm-up generation took %.2f s", warm_up())
        self.ready.set()
        self._on_status("ready", f"{self.planner.backend.name} loaded in {time.perf_counter() - t0:.2f} s")
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                if self._stop:
                    return
                job, self._pending, self._running = self._pending, None, self._pending
            if job is not None:
                try:
                    self._run(job)
                except Exception as exc:  # noqa: BLE001 - the worker must survive any job
                    logger.exception("job for plan %s crashed", job.plan_id)
                    self._on_status("error", f"internal error while planning: {type(exc).__name__}: {exc}")
            with self._lock:
                self._running = None

    def _run(self, job: Job) -> None:
        if job.kind == "plan":
            self._on_status("planning", job.instruction[:200])
        elif job.kind == "verify":
            self._on_status("verifying", f"plan {job.plan_id} rev {job.plan.revision} complete: checking its goals "
                                         "in the image")
        else:
            self._on_status("correcting", f"{job.failure.kind} at subtask {job.failure.subtask_index}")
        try:
            result = self._execute(job)
        except Cancelled:
            result = None
        except BackendError as exc:
            logger.error("back-end failed: %s", exc)
            result = PlanResult(Outcome.FAILED, None, errors=[f"back-end failed: {exc}"])
        if job.cancelled_by:
            logger.info("%s job for plan %s stopped: cancelled by %s", job.kind, job.plan_id, job.cancelled_by)
            return
        if result is None or job.cancel.is_set():
            self._on_status("preempted", f"job for plan {job.plan_id} preempted by a newer request")
            return
        self._on_result(job, result)

    def _execute(self, job: Job) -> PlanResult:
        obs, planner = job.observation, self.planner
        if job.kind == "plan":
            return planner.plan(job.instruction, obs.rgb, obs.depth, obs.camera, obs.ee_position,
                                plan_id=job.plan_id, stamp_ns=obs.stamp_ns, cancel=job.cancel)
        if job.kind == "verify":
            return planner.verify(job.plan, obs.rgb, obs.depth, obs.camera, stamp_ns=obs.stamp_ns, earlier=job.earlier)
        return planner.correct(job.plan, job.failure, obs.rgb, obs.depth, obs.camera, obs.ee_position,
                               stamp_ns=obs.stamp_ns, cancel=job.cancel)
