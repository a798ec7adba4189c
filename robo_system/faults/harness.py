"""The stack under attack: its processes, a recording client and the verdict of a scenario (:func:`judge`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import numpy as np

from robo_common import constants as C
from robo_system.faults.judging import Row, envelope_violations
from robo_system.stack import StackConfig, StackProcesses, make_client


# ---------------------------------------------------------------- the harness
class Harness:
    """A stack of processes plus a client that records commands, states and statuses (monotonic arrival)."""

    def __init__(self, cfg: StackConfig) -> None:
        """Start the nodes and the client (rclpy must be initialised)."""
        from geometry_msgs.msg import PoseStamped
        from robo_stack.msg import ExecutionStatus, FailureReport
        from std_msgs.msg import Float64, String

        from robo_common.ros.qos import qos_for_topic

        self.cfg = cfg
        self.procs = StackProcesses(cfg)
        self.procs.start()
        self.client = make_client(cfg)
        self.rec: dict[str, list] = {k: [] for k in ("target", "gripper", "pose", "status", "failure", "brain")}
        self.last_pose = np.full(3, np.nan)
        self._logs: list = []  # logs of restarted nodes

        def keep(key: str, fn: Callable | None = None) -> Callable:
            def cb(msg) -> None:  # noqa: ANN001
                self.rec[key].append((time.monotonic(), fn(msg) if fn else msg))
            return cb

        def on_pose(msg) -> None:  # noqa: ANN001
            p = msg.pose.position
            if msg.header.frame_id in ("", C.BASE_FRAME) and abs(p.x) < 10:  # the sim's own states
                self.last_pose = np.array([p.x, p.y, p.z])
                self.rec["pose"].append((time.monotonic(), self.last_pose))

        sub = self.client.create_subscription
        sub(PoseStamped, C.TOPIC_EE_TARGET,
            keep("target", lambda m: (np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]),
                                      self.last_pose.copy())), qos_for_topic(C.TOPIC_EE_TARGET))
        sub(Float64, C.TOPIC_GRIPPER_COMMAND, keep("gripper", lambda m: m.data), qos_for_topic(C.TOPIC_GRIPPER_COMMAND))
        sub(PoseStamped, C.TOPIC_EE_POSE, on_pose, qos_for_topic(C.TOPIC_EE_POSE))
        sub(ExecutionStatus, C.TOPIC_EXECUTION_STATUS, keep("status"), qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        sub(FailureReport, C.TOPIC_FAILURE, keep("failure"), qos_for_topic(C.TOPIC_FAILURE))
        sub(String, C.TOPIC_BRAIN_STATUS, keep("brain", lambda m: json.loads(m.data)),
            qos_for_topic(C.TOPIC_BRAIN_STATUS))
        self.pub = {name: self.client.create_publisher(kind, topic, qos_for_topic(topic)) for name, kind, topic in (
            ("pose", PoseStamped, C.TOPIC_EE_POSE), ("cancel", String, C.TOPIC_CANCEL),
            ("instruction", String, C.TOPIC_INSTRUCTION))}

    def spin(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Spin the client for ``seconds`` (or until ``until()``); returns ``until()`` (True without one)."""
        if until is None:
            self.client.spin_until(lambda: False, seconds)
            return True
        return self.client.spin_until(until, seconds)

    def start_task(self, plan_timeout: float = 60.0, perturb: str = "", started: tuple[int, ...] = (1,)) -> str:
        """Load the demo's task (with perturbation mode ``perturb``) and start executing the expert's plan; returns
        its plan id once a status of it has a state in ``started`` (RUNNING; FAILED too for a plan that fails at
        once)."""
        self.client.wait_cerebellum_ready(plan_timeout, self.procs)
        task = self.client.reset(C.DEMO_SEED, C.DEMO_SPLIT, C.DEMO_FAMILY, self.procs, perturb=perturb)
        self.spin(0.5, lambda: self.client.expert is not None)
        plan = self.client.expert
        if plan is None:
            raise RuntimeError(f"no expert plan for task {task.get('instruction')!r}")
        self.client.send_plan(plan)
        if not self.spin(10.0, lambda: any(s.plan_id == plan.plan_id and s.state in started
                                           for _, s in self.rec["status"])):
            raise RuntimeError(f"the plan did not start:\n{self.procs.log_tail('cerebellum_node')}")
        return plan.plan_id

    def mark(self) -> dict[str, int]:
        """Where every record stands now (to look at what came after)."""
        return {k: len(v) for k, v in self.rec.items()}

    def since(self, mark: dict[str, int], key: str) -> list:
        """Records of ``key`` after ``mark``."""
        return self.rec[key][mark[key]:]

    def details(self, mark: dict[str, int]) -> str:
        """Every status detail after ``mark``, joined."""
        return " | ".join(s.detail for _, s in self.since(mark, "status"))

    def violations(self, mark: dict[str, int]) -> list[str]:
        """Envelope violations of the targets after ``mark``."""
        rows = self.since(mark, "target")
        if not rows:
            return []
        targets = np.array([p for _, (p, _) in rows])
        return envelope_violations(targets, self._nearest_poses([t for t, _ in rows], targets))

    def _nearest_poses(self, times: list[float], targets: np.ndarray, window_s: float = 0.5,
                       first_after_s: float = 3.0) -> np.ndarray:
        """For each target, the measured pose received within ``window_s`` of it that is nearest to it (the
        order of a state and the hold it caused may swap on the way to this recorder). When this recorder got
        no state in that window (a restarted sim_node's publisher can reach the cerebellum before it reaches
        this client), the first state it got after the target, within ``first_after_s``: where the arm
        was first seen again."""
        if not self.rec["pose"]:
            return np.full_like(targets, np.nan)
        pt = np.array([t for t, _ in self.rec["pose"]])
        pp = np.array([p for _, p in self.rec["pose"]])
        out = np.full_like(targets, np.nan)
        for i, (t, target) in enumerate(zip(times, targets, strict=True)):
            lo, hi = np.searchsorted(pt, t - window_s), np.searchsorted(pt, t + window_s)
            if hi > lo:
                near = pp[lo:hi]
                out[i] = near[np.argmin(np.linalg.norm(near - target, axis=1))]
            elif hi < len(pt) and pt[hi] <= t + first_after_s:
                out[i] = pp[hi]
        return out

    def crashed(self) -> list[str]:
        """Nodes that exited."""
        return [f"{exe} exited with {p.returncode}" for exe, p in self.procs.procs.items() if p.poll() is not None]

    def kill(self, exe: str) -> None:
        """SIGKILL node ``exe`` and reap it."""
        proc = self.procs.procs[exe]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def restart(self, exe: str) -> None:
        """Start a new ``exe`` in place of the old one (log: ``<exe>-restart.log``, then ``-restart2.log``...)."""
        n = len(list(self.cfg.log_dir.glob(f"{exe}-restart*.log")))
        self.spawn(exe, self.cfg.command(exe), f"{exe}-restart{n + 1 if n else ''}.log")

    def spawn(self, name: str, command: list[str], log_name: str = "") -> subprocess.Popen:
        """Start ``command`` as process ``name`` beside the nodes (judged by :meth:`crashed`, stopped by
        :meth:`close`; log: ``log_name`` or ``<name>.log``)."""
        log = open(self.cfg.log_dir / (log_name or f"{name}.log"), "w")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs.procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                  env=os.environ.copy())
        return self.procs.procs[name]

    def log_text(self, pattern: str = "*.log") -> str:
        """Every log of this stack (first and restarted nodes, spawned processes) matching ``pattern``, joined."""
        return "".join(f.read_text(errors="replace") for f in sorted(self.cfg.log_dir.glob(pattern)))

    def close(self) -> None:
        """Stop the client and every node (resuming a paused one first)."""
        for proc in self.procs.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        self.client.destroy_node()
        self.procs.stop()
        for log in self._logs:
            log.close()


def judge(row: Row, ok: bool, measured: str, h: Harness, mark: dict[str, int], extra: dict | None = None,
          allow_exit: tuple[str, ...] = ()) -> Row:
    """Fill ``row``: it passes when ``ok``, every command after ``mark`` lies inside the envelope and no node
    exited (but those named in ``allow_exit``)."""
    envelope = h.violations(mark)
    crashes = [c for c in h.crashed() if not c.startswith(allow_exit)] if allow_exit else h.crashed()
    row.passed = bool(ok and not envelope and not crashes)
    row.measured = measured + (f"; envelope: {'; '.join(envelope)}" if envelope else "") + (
        f"; crashed: {', '.join(crashes)}" if crashes else "")
    row.details.update(extra or {}, commands=len(h.since(mark, "target")))
    return row


