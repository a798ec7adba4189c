"""The whole stack as separate processes over DDS: ``sim_node``, ``brain_node``, ``cerebellum_node``.

:class:`StackProcesses` starts the same executables, parameter files and arguments that
``launch/sim.launch.py`` starts (``ros2 launch`` is not installable here; on a ROS 2 install use
the launch file): each node is ``nodes/<executable> --ros-args -r __node:=<name>
--params-file config/<node>.yaml -p use_sim_time:=true --log-level <level>`` (plus ``-r __ns:=``
for a namespace). :class:`StackClient` is an ordinary rclpy node that drives episodes the way a
user does: it loads a task through ``/sim/reset``, publishes the instruction on
``/robo/instruction``, follows ``/robo/plan``, ``/robo/execution_status``, ``/robo/failure`` and
``/robo/brain_status``, and reads the simulator's success check from ``/sim/episode``.

``robo-stack eval closed-loop --ros`` (:func:`evaluate_ros`) runs the evaluation's episodes this
way; the demo (:mod:`robo_system.demo`) runs one, records it and draws it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from robo_common import constants as C
from robo_common.plan_types import PlanData
from robo_common.resources import SOURCE_ROOT, resource_path

LOG = logging.getLogger(__name__)

NODE_PARAMS_FILES = {"sim_node": "sim.yaml", "brain_node": "brain.yaml", "cerebellum_node": "cerebellum.yaml"}
"""Executable -> its parameter file in ``config/`` (the same pairs as the launch files)."""

ACTIVE_STATES = (1, 4)  # RUNNING, HOLDING
SUCCEEDED, FAILED = 2, 3
STATE_NAMES = ("IDLE", "RUNNING", "SUCCEEDED", "FAILED", "HOLDING", "CANCELLED")  # ExecutionStatus states


def executable(name: str) -> Path:
    """Path of a node executable: ``nodes/<name>`` in a checkout, else ``lib/robo_stack/<name>`` of a ROS prefix."""
    candidates = [SOURCE_ROOT / "nodes" / name]
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            candidates.append(Path(prefix, "lib", C.PACKAGE_NAME, name))
    for cand in candidates:
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"node executable {name!r} not found (looked in {[str(c) for c in candidates]})")


@dataclass
class StackConfig:
    """What to start: which brain, which cerebellum checkpoint, the simulated task at start-up.

    ``brain``: ``embedded`` (brain_node's default model), a transformers checkpoint folder, or
    ``oracle`` (no brain_node: the client forwards the simulator's expert plan; no corrections).
    ``params``: extra ``-p name:=value`` per executable; ``remaps``: extra ``-r from:=to`` per executable (e.g.
    a simulator's sensor topics sent to a relay). ``lockstep_period_s``: sim_node waits at
    every multiple of this much simulated time for the cerebellum's step (its policy period): on a
    busy machine the command latency of a free-running sim exceeds what the policy tolerates.
    """

    brain: str = "embedded"
    cerebellum_checkpoint: str = ""
    namespace: str = ""
    use_sim_time: bool = True
    log_level: str = "info"
    seed: int = C.DEMO_SEED
    split: str = "seen"
    family: str = C.DEMO_FAMILY
    log_dir: Path = Path("runs/stack-logs")
    params: dict[str, dict[str, object]] = field(default_factory=dict)
    remaps: dict[str, dict[str, str]] = field(default_factory=dict)
    lockstep_period_s: float = 0.05

    def executables(self) -> list[str]:
        """The nodes to start."""
        return ["sim_node", "cerebellum_node"] + ([] if self.brain == "oracle" else ["brain_node"])

    def node_params(self, exe: str) -> dict[str, object]:
        """``-p`` overrides of ``exe`` (on top of its ``config/*.yaml``)."""
        params: dict[str, object] = {"use_sim_time": self.use_sim_time}
        if exe == "sim_node":  # the clock source itself runs on wall time
            params.update(use_sim_time=False, seed=self.seed, split=self.split, family=self.family,
                          lockstep_period_s=self.lockstep_period_s)
        elif exe == "brain_node" and self.brain != "embedded":
            params["model_path"] = self.brain
        elif exe == "cerebellum_node" and self.cerebellum_checkpoint:
            params["checkpoint"] = self.cerebellum_checkpoint
        params.update(self.params.get(exe, {}))
        return params

    def command(self, exe: str) -> list[str]:
        """The command line of ``exe`` (what the launch file's Node action runs)."""
        args = [sys.executable, str(executable(exe)), "--ros-args", "-r", f"__node:={exe}",
                "--params-file", str(resource_path("config", NODE_PARAMS_FILES[exe]))]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for old, new in self.remaps.get(exe, {}).items():
            args += ["-r", f"{old}:={new}"]
        for key, value in self.node_params(exe).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text if text else chr(34) * 2}"]
        return [*args, "--log-level", self.log_level]


def stop_processes(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGINT each process, then wait for it (kill it after ``timeout`` seconds)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def localhost_discovery_by_default(env: MutableMapping[str, str] = os.environ) -> str:
    """Make DDS discovery localhost-only in ``env`` unless it already says how far to discover; returns the range.

    An explicit ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (e.g. ``SUBNET`` to watch the demo from another machine),
    ``ROS_STATIC_PEERS`` or the older ``ROS_LOCALHOST_ONLY`` is left as it is.
    """
    if not any(env.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY")):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")


def udp_transport_by_default(env: MutableMapping[str, str] = os.environ) -> str:
    """Make Fast DDS use its UDPv4 transport only in ``env`` unless ``FASTDDS_BUILTIN_TRANSPORTS`` is set; returns it.

    With the default transports (shared memory + UDPv4), the cerebellum's control loop stalled 1000-1002 ms in
    3 of 100 freezes (SIGSTOP) of sim_node; with the nodes on UDPv4, in 0 of 260 in the same script and 1 of 20
    in a fault-suite run: rarer, not gone (bench/README.md). The launch files' ``dds_transports`` does the same.
    """
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    return env["FASTDDS_BUILTIN_TRANSPORTS"]


class StackProcesses:
    """Starts the nodes of a :class:`StackConfig` as child processes; logs go to ``log_dir/<node>.log``.

    :meth:`start` makes discovery localhost-only in this process's environment unless it is set
    (:func:`localhost_discovery_by_default`), and Fast DDS's transport UDPv4 (:func:`udp_transport_by_default`):
    the nodes inherit both, and so does a client that initialises rclpy after the start (the demo,
    ``eval --ros``, ``check faults``, the benchmarks).
    """

    def __init__(self, cfg: StackConfig) -> None:
        """Prepare (nothing runs until :meth:`start`)."""
        self.cfg = cfg
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}
        self.exit_codes: dict[str, int] = {}

    def start(self) -> None:
        """Start every node (localhost-only discovery and UDPv4 unless the environment says otherwise)."""
        localhost_discovery_by_default()
        udp_transport_by_default()
        self.cfg.log_dir.mkdir(parents=True, exist_ok=True)
        for exe in self.cfg.executables():
            log = open(self.cfg.log_dir / f"{exe}.log", "w")  # noqa: SIM115 - closed in stop()
            self._logs[exe] = log
            self.procs[exe] = subprocess.Popen(self.cfg.command(exe), stdout=log, stderr=subprocess.STDOUT,
                                               env=os.environ.copy())
            LOG.info("started %s (pid %d), log %s", exe, self.procs[exe].pid, log.name)

    def log_tail(self, exe: str, lines: int = 15) -> str:
        """The last lines ``exe`` printed."""
        path = self.cfg.log_dir / f"{exe}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""

    def check(self) -> None:
        """Raise ``RuntimeError`` (with the end of its log) if a node has exited."""
        for exe, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{exe} exited with code {proc.returncode}:\n{self.log_tail(exe)}")

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGINT every node, wait (kill after ``timeout``); returns the exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes = {}
        deadline = time.monotonic() + timeout
        for exe, proc in self.procs.items():
            try:
                codes[exe] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[exe] = proc.wait(5)
                LOG.warning("%s did not stop on SIGINT within %.0f s; killed", exe, timeout)
        for log in self._logs.values():
            log.close()
        self.exit_codes = codes
        return codes

    def __enter__(self) -> StackProcesses:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class EpisodeTrace:
    """What the client saw of one episode."""

    instruction: str
    sent_at: float
    plans: list[PlanData] = field(default_factory=list)
    statuses: list[tuple[float, int, str, int, int, float, str]] = field(default_factory=list)
    failures: list[tuple[float, str, int, str]] = field(default_factory=list)
    brain_states: list[tuple[float, str, str]] = field(default_factory=list)
    first_command_s: float | None = None
    plan_s: float | None = None
    end_reason: str = ""
    success: bool | None = None
    stack_success: bool | None = None
    """The stack's own verdict: the cerebellum's SUCCEEDED, and (when brain_node checks goals) the brain's
    ``succeeded`` after it."""
    episode: dict = field(default_factory=dict)

    @property
    def plan(self) -> PlanData | None:
        """The latest plan (revision) received."""
        return self.plans[-1] if self.plans else None


def make_client(cfg: StackConfig, on_event: Callable[[str], None] | None = None):  # noqa: ANN201 - StackClient
    """Create the client node (rclpy must be initialised)."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from robo_stack.msg import ExecutionStatus, FailureReport, Plan
    from robo_stack.srv import ResetSim
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from robo_common.ros.conversions import image_to_numpy, plan_from_msg, plan_to_msg
    from robo_common.ros.qos import qos_for_topic

    class StackClient(Node):
        """Drives episodes over the stack's topics (see the module docstring)."""

        def __init__(self) -> None:
            super().__init__(f"robo_stack_client_{os.getpid()}", namespace=cfg.namespace or "",
                             parameter_overrides=[Parameter("use_sim_time", value=cfg.use_sim_time)])
            self.say = on_event or (lambda text: None)
            self.trace: EpisodeTrace | None = None
            self.episode: dict = {}
            self.task: dict = {}
            self.expert: PlanData | None = None
            self.frames: list[np.ndarray] = []
            self.frame_every, self._frame_count = 3, 0
            self.keep_frames = False
            self.old_plan_ids: set[str] = set()
            self.cerebellum_seen = 0.0
            r = C.relative
            self.pub_instruction = self.create_publisher(String, r(C.TOPIC_INSTRUCTION),
                                                         qos_for_topic(C.TOPIC_INSTRUCTION))
            self.pub_plan = self.create_publisher(Plan, r(C.TOPIC_PLAN), qos_for_topic(C.TOPIC_PLAN))
            self.reset_client = self.create_client(ResetSim, r(C.SERVICE_SIM_RESET))
            sub = self.create_subscription
            sub(Plan, r(C.TOPIC_PLAN), self._on_plan, qos_for_topic(C.TOPIC_PLAN))
            sub(ExecutionStatus, r(C.TOPIC_EXECUTION_STATUS), self._on_status, qos_for_topic(C.TOPIC_EXECUTION_STATUS))
            sub(FailureReport, r(C.TOPIC_FAILURE), self._on_failure, qos_for_topic(C.TOPIC_FAILURE))
            sub(String, r(C.TOPIC_BRAIN_STATUS), self._on_brain, qos_for_topic(C.TOPIC_BRAIN_STATUS))
            sub(String, r(C.TOPIC_SIM_EPISODE), self._on_episode, qos_for_topic(C.TOPIC_SIM_EPISODE))
            sub(String, r(C.TOPIC_SIM_TASK), self._on_task, qos_for_topic(C.TOPIC_SIM_TASK))
            sub(Plan, r(C.TOPIC_SIM_EXPERT_PLAN), self._on_expert, qos_for_topic(C.TOPIC_SIM_EXPERT_PLAN))
            sub(Image, r(C.TOPIC_COLOR_IMAGE), self._on_image, qos_for_topic(C.TOPIC_COLOR_IMAGE))
            self._image_to_numpy, self._plan_to_msg, self._plan_from_msg = image_to_numpy, plan_to_msg, plan_from_msg
            self._reset_type, self._string = ResetSim, String

        # ---------------------------------------------------------- callbacks
        def _on_plan(self, msg) -> None:  # noqa: ANN001
            try:
                plan = self._plan_from_msg(msg)
            except ValueError:  # a plan the cerebellum refuses too (NaN keypoints); not part of any episode
                return
            tr = self.trace
            current = tr is not None and tr.plan is not None and plan.plan_id == tr.plan.plan_id
            if current and plan.revision <= tr.plan.revision:
                return
            if not current and (tr is None or tr.plan is not None or plan.plan_id in self.old_plan_ids
                                or plan.plan_id.startswith("stop-")):
                self.old_plan_ids.add(plan.plan_id)  # an earlier episode's (latched) plan
                return
            self.old_plan_ids.add(plan.plan_id)
            tr.plans.append(plan)
            if tr.plan_s is None:
                tr.plan_s = time.monotonic() - tr.sent_at
            head = "plan" if plan.revision == 0 else f"corrected plan (revision {plan.revision})"
            lines = "\n".join(f"    {s.index}. {s.code}" for s in plan.subtasks)
            reasoning = plan.reasoning.strip().splitlines()[-1] if plan.reasoning.strip() else ""
            self.say(f"{head} after {time.monotonic() - tr.sent_at:.2f} s: {reasoning}\n{lines}")

        def _on_status(self, msg) -> None:  # noqa: ANN001
            self.cerebellum_seen = time.monotonic()
            tr = self.trace
            if tr is None or tr.plan is None or msg.plan_id != tr.plan.plan_id:
                return
            now = time.monotonic()
            if tr.first_command_s is None and msg.state == 1:
                tr.first_command_s = now - tr.sent_at
                self.say(f"first end-effector command {tr.first_command_s:.2f} s after the instruction")
            prev = tr.statuses[-1] if tr.statuses else None
            row = (now, int(msg.revision), msg.plan_id, int(msg.subtask_index), int(msg.state), float(msg.progress),
                   msg.detail)
            tr.statuses.append(row)
            if prev is None or prev[3:5] != row[3:5] or prev[1] != row[1]:
                self.say(f"[{now - tr.sent_at:6.1f} s] rev {msg.revision} subtask {msg.subtask_index} "
                         f"state {STATE_NAMES[min(msg.state, len(STATE_NAMES) - 1)]}: "
                         f"{msg.detail}")
            elif int(row[5] * 4) != int(prev[5] * 4):
                self.say(f"[{now - tr.sent_at:6.1f} s]   progress {row[5]:.2f}")

        def _on_failure(self, msg) -> None:  # noqa: ANN001
            if self.trace is not None:
                self.trace.failures.append((time.monotonic(), msg.kind, int(msg.subtask_index), msg.detail))
                self.say(f"FAILURE {msg.kind} at subtask {msg.subtask_index}: {msg.detail}")

        def _on_brain(self, msg) -> None:  # noqa: ANN001
            try:
                data = json.loads(msg.data)
            except ValueError:
                return
            if self.trace is not None:
                self.trace.brain_states.append((time.monotonic(), str(data.get("state")), str(data.get("detail"))))
                if data.get("state") in ("failed", "error", "correcting"):
                    self.say(f"brain {data.get('state')}: {data.get('detail')}")

        def _on_episode(self, msg) -> None:  # noqa: ANN001
            try:
                self.episode = json.loads(msg.data)
            except ValueError:
                pass

        def _on_task(self, msg) -> None:  # noqa: ANN001
            try:
                self.task = json.loads(msg.data)
            except ValueError:
                pass

        def _on_expert(self, msg) -> None:  # noqa: ANN001
            self.expert = self._plan_from_msg(msg)

        def _on_image(self, msg) -> None:  # noqa: ANN001
            if not self.keep_frames or self.trace is None:
                return
            self._frame_count += 1
            if self._frame_count % self.frame_every == 0:
                try:
                    rgb = self._image_to_numpy(msg)
                except ValueError:
                    return
                tr = self.trace
                status = tr.statuses[-1] if tr.statuses else None
                self.frames.append((time.monotonic() - tr.sent_at, rgb, tr.plan, status))

        # ---------------------------------------------------------- actions
        def spin_until(self, condition: Callable[[], bool], timeout: float, procs: StackProcesses | None = None
                       ) -> bool:
            import rclpy

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition():
                    return True
                rclpy.spin_once(self, timeout_sec=0.05)
                if procs is not None:
                    procs.check()
            return condition()

        def stop_robot(self) -> None:
            """Publish an empty plan: the cerebellum drops its plan and holds."""
            self.send_plan(PlanData(f"stop-{uuid.uuid4().hex[:8]}", 0, "", "stop", []))

        def send_plan(self, plan: PlanData) -> None:
            """Publish ``plan`` on the plan topic stamped now on this node's clock.

            Every plan this client publishes carries one clock (a late-joining cerebellum takes the newest
            latched plan by stamp): the expert's plan from sim_node is stamped in simulated time, which is
            not this node's clock without ``use_sim_time``.
            """
            now = self.get_clock().now().nanoseconds
            self.pub_plan.publish(self._plan_to_msg(replace(plan, stamp_ns=now)))

        def reset(self, seed: int, split: str, family: str, procs: StackProcesses | None = None,
                  timeout: float = 60.0, perturb: str = "") -> dict:
            """Load a task into sim_node; returns the task (JSON) with its instruction."""
            if not self.spin_until(self.reset_client.service_is_ready, timeout, procs):
                raise RuntimeError(f"service {C.SERVICE_SIM_RESET} not available after {timeout:.0f} s")
            self.wait_cerebellum_ready(timeout, procs)
            self.stop_robot()
            self.expert = None
            req = self._reset_type.Request(seed=seed, split=split, family=family or "", perturb=perturb or "")
            future = self.reset_client.call_async(req)
            if not self.spin_until(future.done, timeout, procs):
                raise RuntimeError(f"{C.SERVICE_SIM_RESET} did not answer within {timeout:.0f} s")
            res = future.result()
            if not res.success:
                raise RuntimeError(f"sim reset failed: {res.message}")
            task = json.loads(res.task_json)
            task["instruction"] = res.instruction
            return task

        def wait_cerebellum_ready(self, timeout: float, procs: StackProcesses | None = None) -> None:
            """Wait until cerebellum_node runs its loop on robot state (its execution status flows)."""
            if not self.spin_until(lambda: time.monotonic() - self.cerebellum_seen < 0.5, timeout, procs):
                raise RuntimeError(f"no {C.TOPIC_EXECUTION_STATUS} from cerebellum_node within {timeout:.0f} s "
                                   f"(is sim_node publishing {C.TOPIC_EE_POSE}?)")

        def wait_brain_ready(self, timeout: float, procs: StackProcesses | None = None) -> str:
            """Wait until brain_node reports its model loaded (``ready``); returns the state seen."""
            seen: list[str] = []
            sub_states = ("ready", "waiting", "planned", "failed", "error")

            def ready() -> bool:
                return bool(seen) and seen[-1] in sub_states

            def on(msg) -> None:  # noqa: ANN001
                try:
                    seen.append(str(json.loads(msg.data).get("state")))
                except ValueError:
                    pass

            sub = self.create_subscription(self._string, C.relative(C.TOPIC_BRAIN_STATUS), on,
                                           qos_for_topic(C.TOPIC_BRAIN_STATUS))
            try:
                self.spin_until(ready, timeout, procs)
            finally:
                self.destroy_subscription(sub)
            return seen[-1] if seen else "no status"

        def run(self, instruction: str, timeout: float, procs: StackProcesses | None = None,
                correction_wait: float = 15.0) -> EpisodeTrace:
            """Send ``instruction`` and follow the episode to its end (see :func:`episode_over`)."""
            self.spin_until(lambda: False, 0.2, procs)  # take in latched plans of earlier episodes first
            self.trace = tr = EpisodeTrace(instruction, time.monotonic())
            self.frames, self._frame_count = [], 0
            if cfg.brain == "oracle":
                if not self.spin_until(lambda: self.expert is not None, 10.0, procs):
                    raise RuntimeError("no expert plan from sim_node")
                self.send_plan(self.expert)
            else:
                self.pub_instruction.publish(self._string(data=instruction))
            self.say(f"instruction sent: {instruction!r}")
            verify = cfg.brain != "oracle" and bool(cfg.params.get("brain_node", {}).get("verify_goals", True))
            self.spin_until(lambda: episode_over(tr, correction_wait, cfg.brain != "oracle", verify), timeout, procs)
            if not tr.end_reason:
                tr.end_reason = f"timeout after {timeout:.0f} s"
            sim_t0 = self.episode.get("sim_time", 0.0)
            self.spin_until(lambda: self.episode.get("sim_time", 0.0) > sim_t0 + 0.4, 5.0, procs)
            tr.episode, tr.success = dict(self.episode), bool(self.episode.get("success"))
            self.stop_robot()
            self.trace = None
            return tr

    return StackClient()


def episode_over(tr: EpisodeTrace, correction_wait: float, corrections: bool, verify: bool = False) -> bool:
    """True when the episode has ended: plan complete (with ``verify``: and the brain's goal check said
    ``succeeded``, or nothing within ``correction_wait``), brain gave up, or a failure not corrected in time;
    sets ``tr.end_reason`` and ``tr.stack_success``."""
    now = time.monotonic()
    last = tr.statuses[-1] if tr.statuses else None
    brain_failed = [b for b in tr.brain_states if b[1] in ("failed", "error")]
    if last is not None and last[4] == SUCCEEDED and not brain_failed:
        done_at = next((s[0] for s in reversed(tr.statuses) if s[4] != SUCCEEDED or s[1] != last[1]), None)
        done_at = tr.statuses[0][0] if done_at is None else done_at
        checked = [b for b in tr.brain_states if b[0] >= done_at and b[1] == "succeeded"]
        if not verify or checked or now - done_at > correction_wait:
            tr.end_reason = "plan complete" + ("" if not verify else "; goals hold in the image" if checked
                                               else " (no goal check from the brain)")
            tr.stack_success = True
            return True
        return False
    if brain_failed:
        tr.end_reason = f"brain {brain_failed[-1][1]}: {brain_failed[-1][2]}"
        tr.stack_success = False
        return True
    if last is not None and last[4] == FAILED:
        failed_at = next((s[0] for s in reversed(tr.statuses) if s[4] != FAILED), last[0])
        if not corrections or now - failed_at > correction_wait:
            tr.end_reason = f"failed: {last[6]}" + ("" if not corrections else " (no correction arrived)")
            return True
    return False


def first_failure_verdict(tr: EpisodeTrace) -> str:
    """The simulator's verdict on the episode's first failure report (``/sim/episode`` ``failures``): why the
    world agrees it failed, or "" (a false alarm, or no report)."""
    if not tr.failures:
        return ""
    _, kind, index, _ = tr.failures[0]
    ids = {p.plan_id for p in tr.plans}
    for row in tr.episode.get("failures", []):
        if row.get("kind") == kind and row.get("subtask") == index and row.get("plan_id") in ids:
            return str(row.get("confirmed", ""))
    return ""


def trace_row(tr: EpisodeTrace, task: dict, wall_s: float) -> dict:
    """One episode row in the fields of :func:`robo_system.closed_loop.report`."""
    detections = [(kind, 0) for _, kind, _, _ in tr.failures]
    sim_s = float(tr.episode.get("sim_time", 0.0))
    last = tr.statuses[-1] if tr.statuses else None
    event = tr.episode.get("perturbation")
    return {"seed": task.get("seed"), "family": task.get("family"), "perturb": task.get("perturb") or None,
            "instruction": tr.instruction,
            "success": bool(tr.success), "steps": 0, "corrections": max((p.revision for p in tr.plans), default=0),
            "brain_s": tr.plan_s or 0.0, "first_command_s": tr.first_command_s,
            "detected": detections[0] if detections else None, "detections": detections,
            "brain_error": "" if tr.plans else tr.end_reason, "plans": [p.code_lines() for p in tr.plans],
            "sim_s": sim_s, "state": tr.end_reason, "perturbation": tuple(event[:2]) if event else None,
            "stack_success": bool(tr.stack_success) if tr.stack_success is not None else (
                last is not None and last[4] == SUCCEEDED),
            "confirmed": first_failure_verdict(tr),
            "time_to_success_s": (tr.statuses[-1][0] - tr.sent_at) if tr.success and tr.statuses else None,
            "wall_s": wall_s}


def _ros_episodes(job: tuple) -> list[dict]:
    """Run episodes on one stack of processes in ROS domain ``domain`` (a worker of :func:`evaluate_ros`)."""
    stack_cfg, brain_kind, specs, timeout_s, domain = job
    if domain is not None:  # set before rclpy is imported in this (spawned) process; the nodes inherit it
        os.environ["ROS_DOMAIN_ID"] = str(domain)
    import rclpy

    rows = []
    with StackProcesses(stack_cfg) as procs, rclpy.init():
        client = make_client(stack_cfg)
        try:
            if brain_kind != "oracle":
                state = client.wait_brain_ready(120.0, procs)
                if state in ("error", "no status"):
                    raise RuntimeError(f"brain_node not ready ({state}):\n{procs.log_tail('brain_node')}")
            for seed, sp, fam, mode in specs:
                e0 = time.perf_counter()
                task = client.reset(seed, sp, fam, procs, perturb=mode or "")
                tr = client.run(task["instruction"], timeout_s, procs)
                rows.append(trace_row(tr, {**task, "seed": seed, "family": fam, "perturb": mode},
                                      time.perf_counter() - e0))
        finally:
            client.destroy_node()
    return rows


def ros_rows(checkpoint: Path, brain, specs: list[tuple], cfg, timeout_s: float | None = None,  # noqa: ANN001
             log_dir: Path = Path("runs/ros-eval"), progress: bool = True, stacks: int = 1) -> list[dict]:
    """Rows of the episodes ``specs`` ((seed, split, family, perturbation mode)) run as nodes over DDS, in the
    order of ``specs`` (see :func:`evaluate_ros`). Perturbations are injected by sim_node
    (:meth:`robo_sim.sim_session.SimSession.reset`)."""
    from robo_common.parallel import run_jobs

    stacks = max(1, min(stacks, len(specs)))
    base = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    jobs = []
    for k in range(stacks):
        stack_cfg = StackConfig(brain="oracle" if brain.kind == "oracle" else brain.model_path,
                                cerebellum_checkpoint=str(checkpoint), seed=specs[0][0], split=specs[0][1],
                                log_dir=log_dir if stacks == 1 else log_dir / f"stack-{k}",
                                lockstep_period_s=cfg.lockstep_period_s,
                                params={"cerebellum_node": {"failure_threshold": cfg.failure_threshold},
                                        "brain_node": {"max_corrections": cfg.max_corrections if cfg.correction
                                                       else 0, "verify_goals": cfg.verify,
                                                       "correction": getattr(brain, "correction", "auto")}})
        domain = None if stacks == 1 else 1 + (base + 17 * (k + 1)) % 101  # distinct domains in 1..101
        jobs.append((stack_cfg, brain.kind, specs[k::stacks], timeout_s or cfg.timeout_s + 30.0, domain))
    rows = [row for part in run_jobs(_ros_episodes, jobs, stacks, len(specs), "closed loop (ROS)",
                                     size=len, progress=progress) for row in part]
    order = {(seed, fam, mode): i for i, (seed, _, fam, mode) in enumerate(specs)}
    return sorted(rows, key=lambda r: order.get((r["seed"], r["family"], r["perturb"]), 0))


def evaluate_ros(checkpoint: Path, brain, episodes: int, split: str, seed0: int, cfg,  # noqa: ANN001
                 timeout_s: float | None = None, log_dir: Path = Path("runs/ros-eval"), progress: bool = True,
                 stacks: int = 1, perturb: list[str] | None = None, families: list[str] | None = None) -> dict:
    """The closed-loop evaluation's episodes (same seeds and families, clean plus ``episodes`` per
    perturbation mode) run as nodes over DDS.

    ``stacks`` > 1 runs that many stacks side by side, each in a ROS domain of its own (localhost
    discovery as set in the environment), a share of the episodes each: only where the cores allow,
    since a starved stack is not how users run it (2 cores: 1).
    """
    from robo_system.closed_loop import episode_specs, report

    specs = episode_specs(episodes, split, [None, *(perturb or [])], seed0, families)
    t0 = time.perf_counter()
    rows = ros_rows(checkpoint, brain, specs, cfg, timeout_s, log_dir, progress, stacks)
    out = report(rows, split, time.perf_counter() - t0)
    out.update(brain=brain.name, correction=cfg.correction, mode="ros", logs=str(log_dir),
               stacks=max(1, min(stacks, len(specs))), lockstep_period_s=cfg.lockstep_period_s)
    return out
