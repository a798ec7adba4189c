"""``robo-stack check faults``: the stack attacked over DDS, one fault per scenario, every command judged.

Each scenario starts the nodes as :mod:`robo_system.stack` does (the oracle brain — the simulator's
expert plan — where the brain is not under test, brain_node where it is), loads the demo's task,
starts the plan, injects one fault and records every ``/robo/ee_target`` and
``/robo/gripper_command`` with its arrival time. A scenario passes when its expected behaviour is
measured, no node crashed, every command stayed inside the safety envelope
(:func:`envelope_violations`) and the cause was named on the status topic (and the log).

Scenarios (:data:`SCENARIOS`): ``state_freeze`` (sim_node paused with SIGSTOP; ``--trials`` times; the
time from the last state to the HOLDING report, with and without ``use_sim_time``), ``sim_killed``
(SIGKILL, then a new sim_node), ``bogus_state`` (1e9, NaN, wrong frame and out-of-order poses and bad
joint states, with stop plans on top), ``rogue_plans``, ``cancel``, ``bad_camera`` (wrong encoding,
wrong size, 0x0 frames), ``cerebellum_killed``, ``brain_killed`` (SIGKILL mid-plan, a new brain_node
takes the next instruction) and ``bad_instructions`` (a 100 Hz flood for 10 s, 1 MB, invalid UTF-8).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from robo_common import constants as C
from robo_system.stack import StackConfig, StackProcesses, make_client

LOG = logging.getLogger(__name__)

WORKSPACE = (np.array([0.2, -0.45, 0.005]), np.array([0.8, 0.45, 0.6]))
"""The cerebellum's default workspace box (config/cerebellum.yaml)."""
HOLD_GOAL_S = 0.1
"""The goal for the time from the last robot state to the HOLDING report (p99 over the trials)."""
MAX_STEP_M = 0.6 * 0.05
"""Largest change of the target between two messages: max_speed (0.6 m/s) x one policy period (50 ms)."""


@dataclass
class Row:
    """One scenario's verdict."""

    scenario: str
    expected: str
    measured: str = ""
    passed: bool = False
    details: dict = field(default_factory=dict)


# ---------------------------------------------------------------- judging (ROS-free)
def envelope_violations(positions: np.ndarray, poses: np.ndarray | None = None, box: tuple = WORKSPACE,
                        max_step: float = MAX_STEP_M, at_pose_m: float | None = None) -> list[str]:
    """What in a stream of commanded positions ``(N, 3)`` breaks the envelope: non-finite values, positions
    outside the box, steps larger than ``max_step``. A command within ``at_pose_m`` (default ``max_step``) of
    the measured pose (``poses``, one per command) is not a jump however far the previous command was: the
    envelope anchors a new plan or a hold at the measured pose (after a reset, the arm is elsewhere)."""
    at_pose_m = max_step if at_pose_m is None else at_pose_m
    out: list[str] = []
    pos = np.asarray(positions, float).reshape(-1, 3)
    if len(pos) == 0:
        return out
    bad = ~np.all(np.isfinite(pos), axis=1)
    if bad.any():
        out.append(f"{int(bad.sum())} non-finite targets")
    lo, hi = box
    outside = np.any((pos < lo - 1e-6) | (pos > hi + 1e-6), axis=1) & ~bad
    if outside.any():
        worst = float(np.max(np.maximum(lo - pos[outside], pos[outside] - hi)))
        out.append(f"{int(outside.sum())} targets outside the workspace box (by up to {worst:.3f} m)")
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    big = steps > max_step + 1e-6
    if poses is not None and big.any():
        onto = np.linalg.norm(pos[1:] - np.asarray(poses, float).reshape(-1, 3)[1:], axis=1) <= at_pose_m
        big &= ~onto
    if big.any():
        out.append(f"{int(big.sum())} steps above {max_step * 1e3:.0f} mm (largest {steps[big].max() * 1e3:.1f} mm)")
    return out


def first_after(times: list[float], t0: float) -> float | None:
    """The first time in ``times`` after ``t0`` (None if none)."""
    later = [t for t in times if t > t0]
    return min(later) if later else None


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` percentile of ``values`` (None when empty)."""
    return float(np.percentile(values, q)) if values else None


def invalid_utf8_string_cdr(payload: bytes) -> bytes:
    """The serialized CDR of a ``std_msgs/String`` whose bytes are ``payload`` (need not be UTF-8)."""
    data = payload + b"\x00"
    cdr = b"\x00\x01\x00\x00" + struct.pack("<I", len(data)) + data
    return cdr + b"\x00" * ((4 - len(cdr) % 4) % 4)


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

    def start_task(self, plan_timeout: float = 60.0) -> str:
        """Load the demo's task and start executing the expert's plan; returns its plan id."""
        self.client.wait_cerebellum_ready(plan_timeout, self.procs)
        task = self.client.reset(C.DEMO_SEED, C.DEMO_SPLIT, C.DEMO_FAMILY, self.procs)
        self.spin(0.5, lambda: self.client.expert is not None)
        plan = self.client.expert
        if plan is None:
            raise RuntimeError(f"no expert plan for task {task.get('instruction')!r}")
        self.client.pub_plan.publish(self.client._plan_to_msg(plan))
        if not self.spin(10.0, lambda: any(s.plan_id == plan.plan_id and s.state == 1 for _, s in self.rec["status"])):
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

    def _nearest_poses(self, times: list[float], targets: np.ndarray, window_s: float = 0.5) -> np.ndarray:
        """For each target, the measured pose received within ``window_s`` of it that is nearest to it (the
        order of a state and the hold it caused may swap on the way to this recorder)."""
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
        """Start a new ``exe`` in place of the old one (log: ``<exe>-restart.log``)."""
        log = open(self.cfg.log_dir / f"{exe}-restart.log", "w")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs.procs[exe] = subprocess.Popen(self.cfg.command(exe), stdout=log, stderr=subprocess.STDOUT,
                                                 env=os.environ.copy())

    def close(self) -> None:
        """Stop the client and every node (resuming a paused one first)."""
        for proc in self.procs.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        self.client.destroy_node()
        self.procs.stop()
        for log in self._logs:
            log.close()


def _judge(row: Row, ok: bool, measured: str, h: Harness, mark: dict[str, int], extra: dict | None = None,
           allow_exit: tuple[str, ...] = ()) -> Row:
    envelope = h.violations(mark)
    crashes = [c for c in h.crashed() if not c.startswith(allow_exit)] if allow_exit else h.crashed()
    row.passed = bool(ok and not envelope and not crashes)
    row.measured = measured + (f"; envelope: {'; '.join(envelope)}" if envelope else "") + (
        f"; crashed: {', '.join(crashes)}" if crashes else "")
    row.details.update(extra or {}, commands=len(h.since(mark, "target")))
    return row


# ---------------------------------------------------------------- scenarios
def state_freeze(h: Harness, trials: int, sim_time: bool) -> Row:
    """SIGSTOP sim_node for 1.5 s, ``trials`` times: HOLDING from the last state, arm and gripper frozen, no failure."""
    row = Row(f"state_freeze (use_sim_time {str(sim_time).lower()})",
              "HOLDING within state_timeout_s (80 ms) of the last state (goal <= 100 ms); arm and "
              "gripper frozen; no failure from frozen state; RUNNING again after")
    mark = h.mark()
    latencies, frozen_ok, resumed, failures0 = [], 0, 0, len(h.rec["failure"])
    sim = h.procs.procs["sim_node"]
    for _ in range(trials):
        h.start_task()  # a fresh task per trial: each freeze hits a running plan
        h.spin(0.4)
        os.kill(sim.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        h.spin(1.5)
        os.kill(sim.pid, signal.SIGCONT)
        last_state = max((t for t, _ in h.rec["pose"] if t <= t_stop), default=t_stop)
        holds = [t for t, s in h.rec["status"] if t > last_state and s.state == 4 and "robot state is" in s.detail]
        first_hold = min(holds) if holds else None
        if first_hold is not None:
            latencies.append(first_hold - last_state)
            targets = [p for t, (p, _) in h.rec["target"] if first_hold < t < t_stop + 1.4]
            grips = [g for t, g in h.rec["gripper"] if first_hold < t < t_stop + 1.4]
            frozen_ok += int(len(targets) > 10 and np.ptp(np.array(targets), axis=0).max() < 1e-9
                             and len(set(grips)) <= 1)
        t_back = time.monotonic()
        resumed += int(h.spin(5.0, lambda t=t_back: any(t2 > t and s.state in (1, 2) for t2, s in h.rec["status"])))
    new_failures = len(h.rec["failure"]) - failures0
    p99 = percentile(latencies, 99)
    ok = (len(latencies) == trials and frozen_ok == trials and resumed == trials and new_failures == 0
          and p99 is not None and p99 <= HOLD_GOAL_S)
    measured = (f"hold after p50 {percentile(latencies, 50) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms over "
                f"{len(latencies)}/{trials} trials; frozen {frozen_ok}/{trials}; resumed {resumed}/{trials}; "
                f"failures {new_failures}") if latencies else f"no HOLDING in {trials} trials"
    return _judge(row, ok, measured, h, mark, {"latency_ms": [round(x * 1e3, 1) for x in latencies]})


def bogus_state(h: Harness) -> Row:
    """1e9, NaN, wrong-frame and out-of-order poses (plus stop plans) from a second publisher for 2 s."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from robo_common.plan_types import PlanData
    from robo_common.ros.qos import qos_for_topic

    row = Row("bogus_state", "every bogus pose and joint state refused with its reason on the status topic; stop "
                             "plans hold inside the box; nothing moves toward a bogus pose")
    h.start_task()
    jpub = h.client.create_publisher(JointState, C.TOPIC_JOINT_STATES, qos_for_topic(C.TOPIC_JOINT_STATES))
    mark = h.mark()
    bogus = [((1e9, 1e9, 1e9), C.BASE_FRAME, 100), ((float("nan"), 0.0, 0.3), C.BASE_FRAME, 100),
             ((0.5, 0.0, 0.3), "world", 100), ((0.5, 0.0, 0.3), C.BASE_FRAME, 0)]  # the last: stamped in the past
    t_end, n = time.monotonic() + 2.0, 0
    while time.monotonic() < t_end:
        for pos, frame, sec in bogus:
            msg = PoseStamped()
            msg.header.frame_id, msg.header.stamp.sec = frame, sec
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = pos
            msg.pose.orientation.w = 1.0
            h.pub["pose"].publish(msg)
        for value, frame in ((1e9, C.BASE_FRAME), (float("nan"), C.BASE_FRAME), (0.02, "world")):
            joints = JointState(name=["panda_finger_joint1", "panda_finger_joint2"], position=[value, value])
            joints.header.frame_id = frame
            jpub.publish(joints)
        n += 1
        if n % 50 == 0:
            h.client.pub_plan.publish(h.client._plan_to_msg(PlanData(f"stop-bogus-{n}", 0, "", "stop", [])))
        h.client.spin_until(lambda: False, 0.005)
    h.spin(1.0)
    text = h.details(mark)
    named = [k for k in ("outside the workspace box", "non-finite", "frame 'world'", "older than the last one",
                         "gripper opening", "joint state in frame") if k in text]
    return _judge(row, len(named) >= 5, f"reasons named on the status topic: {named}", h, mark)


def rogue_plans(h: Harness) -> Row:
    """Plans that must be refused whole, with the running plan kept."""
    from robo_stack.msg import Keypoint, Plan, Subtask

    row = Row("rogue_plans", "unknown skill, 10 000 subtasks, NaN keypoint, keypoint 5 m away, empty name, skill "
                             "field disagreeing, past revision: each refused with a reason; the running plan kept")
    running = h.start_task()
    mark = h.mark()

    def plan(pid: str, subs: list, revision: int = 0) -> Plan:
        msg = Plan(plan_id=pid, revision=revision, instruction="x")
        msg.header.frame_id = C.BASE_FRAME
        msg.subtasks = subs
        return msg

    def kp(x: float) -> Keypoint:
        k = Keypoint(name="grasp", u=-1.0, v=-1.0, confidence=1.0)
        k.point.x, k.point.y, k.point.z = x, 0.0, 0.02
        return k

    cases = {
        "unknown": plan("rogue-unknown", [Subtask(index=0, code='teleport(target="moon")', skill="teleport")]),
        "many": plan("rogue-many", [Subtask(index=i, code="done()", skill="done") for i in range(10_000)]),
        "nan": plan("rogue-nan", [Subtask(index=0, code='pick(object="red block")', skill="pick",
                                          keypoints=[kp(float("nan"))])]),
        "far": plan("rogue-far", [Subtask(index=0, code='pick(object="red block")', skill="pick",
                                          keypoints=[kp(5.0)])]),
        "empty": plan("rogue-empty", [Subtask(index=0, code='pick(object="")', skill="pick")]),
        "mismatch": plan("rogue-mismatch", [Subtask(index=0, code='pick(object="red block")', skill="push")]),
        "past": plan(running, [Subtask(index=0, code="done()", skill="done")], revision=0),
    }
    refused = {}
    for name, msg in cases.items():
        if name == "past":  # a revision from the past: the running plan is first revised to 1
            h.client.pub_plan.publish(plan(running, [Subtask(index=0, code='pick(object="blue block")', skill="pick",
                                                             keypoints=[kp(0.5)])], revision=2))
            h.spin(0.3)
        n0 = len(h.rec["status"])
        h.client.pub_plan.publish(msg)
        refused[name] = h.spin(5.0, lambda p=msg.plan_id, n=n0: any(
            f"plan {p} refused" in s.detail for _, s in h.rec["status"][n:]))
    h.spin(0.5)
    last = [s for _, s in h.rec["status"] if "refused" not in s.detail and "ignored" not in s.detail][-1]
    ok = all(refused.values()) and last.plan_id == running
    missed = [k for k, v in refused.items() if not v]
    return _judge(row, ok, f"refused {sum(refused.values())}/{len(refused)} (not: {missed}); running plan kept: "
                           f"{last.plan_id == running}", h, mark)


def cancel(h: Harness) -> Row:
    """``/robo/cancel`` during a plan: CANCELLED by whom, arm and gripper frozen."""
    from std_msgs.msg import String

    row = Row("cancel", "CANCELLED 'cancelled by fault-suite' and every later target and gripper command frozen")
    h.start_task()
    h.spin(0.5)
    mark = h.mark()
    t0 = time.monotonic()
    h.pub["cancel"].publish(String(data="fault-suite"))
    seen = h.spin(2.0, lambda: any(s.state == 5 and "fault-suite" in s.detail for _, s in h.since(mark, "status")))
    h.spin(1.0)
    later = [p for t, (p, _) in h.rec["target"] if t > t0 + 0.05]
    grips = [g for t, g in h.rec["gripper"] if t > t0 + 0.05]
    frozen = len(later) > 50 and np.ptp(np.array(later), axis=0).max() < 1e-9 and len(set(grips)) <= 1
    return _judge(row, seen and frozen, f"CANCELLED reported: {seen}; {len(later)} later targets frozen: {frozen}",
                  h, mark)


def bad_camera(h: Harness) -> Row:
    """Wrong encoding, wrong size and 0x0 frames beside the simulator's camera."""
    from sensor_msgs.msg import Image

    from robo_common.ros.qos import qos_for_topic

    row = Row("bad_camera", "each bad frame ignored with an error naming it; no crash; the task keeps running")
    h.start_task()
    mark = h.mark()
    pub = h.client.create_publisher(Image, C.TOPIC_COLOR_IMAGE, qos_for_topic(C.TOPIC_COLOR_IMAGE))
    dpub = h.client.create_publisher(Image, C.TOPIC_DEPTH_IMAGE, qos_for_topic(C.TOPIC_DEPTH_IMAGE))
    frames = [Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32)),
              Image(height=8, width=8, encoding="rgb8", step=24, data=bytes(10)),
              Image(height=0, width=0, encoding="rgb8", step=0, data=b"")]
    for _ in range(10):
        for f in frames:
            pub.publish(f)
            dpub.publish(Image(height=0, width=0, encoding="32FC1", step=0, data=b""))
        h.spin(0.1)
    h.spin(1.0)
    logs = "".join(h.procs.log_tail(exe, 200) for exe in h.procs.procs)
    named = "image ignored" in logs or "camera frame not usable" in logs
    running = any(s.state in (1, 4) for _, s in h.since(mark, "status"))
    return _judge(row, named and running, f"error named in the logs: {named}; plan still running or holding: "
                                          f"{running}", h, mark)


def cerebellum_killed(h: Harness) -> Row:
    """SIGKILL cerebellum_node: the command stream stops; the last command is inside the envelope; the arm stops."""
    row = Row("cerebellum_killed", "no more commands; the last one inside the envelope; the simulated arm comes to "
                                   "rest at it (a robot driver must stop on stale commands: docs/robot.md)")
    h.start_task()
    h.spin(0.5)
    mark = h.mark()
    h.kill("cerebellum_node")
    t0 = time.monotonic()
    h.spin(2.0)
    after = [t for t, _ in h.rec["target"] if t > t0 + 0.2]
    poses = [p for t, p in h.rec["pose"] if t > t0 + 1.5]
    still = len(poses) > 5 and float(np.ptp(np.array(poses), axis=0).max()) < 0.005
    last = h.rec["target"][-1][1][0] if h.rec["target"] else None
    inside = last is not None and not envelope_violations(last[None, :])
    return _judge(row, not after and still and inside, f"commands after the kill: {len(after)}; last command inside "
                                                       f"the envelope: {inside}; arm at rest after 1.5 s: {still}",
                  h, mark, allow_exit=("cerebellum_node",))


def sim_killed(h: Harness) -> Row:
    """SIGKILL sim_node, then a new one (a restarted driver: new clock, arm at rest pose)."""
    row = Row("sim_killed", "HOLDING while no state; a new sim_node's states accepted (new clock); the hold "
                            "re-anchored where the arm now is; every command inside the envelope")
    h.start_task()
    h.spin(0.5)
    mark = h.mark()
    h.kill("sim_node")
    holding = h.spin(3.0, lambda: any(s.state == 4 and "robot state is" in s.detail
                                      for _, s in h.since(mark, "status")))
    h.restart("sim_node")
    t_new = time.monotonic()
    back = h.spin(30.0, lambda: any(t > t_new for t, _ in h.rec["pose"]))
    jumped = h.spin(5.0, lambda: "jumped" in h.details(mark))
    h.spin(1.0)
    return _judge(row, holding and back, f"HOLDING: {holding}; new states: {back}; jump noticed: {jumped}", h, mark)


def brain_killed(h: Harness) -> Row:
    """SIGKILL brain_node mid-plan; the cerebellum keeps the arm safe; a new brain_node plans the next instruction."""
    from std_msgs.msg import String

    row = Row("brain_killed", "the running plan goes on safely without the brain; a new brain_node plans the next "
                              "instruction under a new plan id")
    h.client.wait_cerebellum_ready(60.0, h.procs)
    h.client.wait_brain_ready(120.0, h.procs)
    task = h.client.reset(C.DEMO_SEED, C.DEMO_SPLIT, C.DEMO_FAMILY, h.procs)
    mark = h.mark()
    h.pub["instruction"].publish(String(data=task["instruction"]))
    started = h.spin(30.0, lambda: any(s.state == 1 for _, s in h.since(mark, "status")))
    first = next((s.plan_id for _, s in h.since(mark, "status") if s.state == 1), "")
    h.kill("brain_node")
    h.spin(2.0)
    h.restart("brain_node")
    h.client.wait_brain_ready(120.0)
    m2 = h.mark()
    h.pub["instruction"].publish(String(data=task["instruction"]))
    replanned = h.spin(60.0, lambda: any(s.state == 1 and s.plan_id != first for _, s in h.since(m2, "status")))
    return _judge(row, started and replanned, f"first plan running: {started}; new brain planned under a new id: "
                                              f"{replanned}", h, mark)


def bad_instructions(h: Harness) -> Row:
    """A 100 Hz flood for 10 s, a 1 MB instruction and invalid UTF-8 at brain_node."""
    from std_msgs.msg import String

    row = Row("bad_instructions", "brain_node stays up; the 1 MB and the invalid UTF-8 instructions are rejected "
                                  "with their reason; the brain still plans afterwards")
    h.client.wait_brain_ready(120.0, h.procs)
    task = h.client.reset(C.DEMO_SEED, C.DEMO_SPLIT, C.DEMO_FAMILY, h.procs)
    mark = h.mark()
    t_end = time.monotonic() + 10.0
    while time.monotonic() < t_end:
        h.pub["instruction"].publish(String(data=task["instruction"]))
        h.client.spin_until(lambda: False, 0.01)
    h.pub["instruction"].publish(String(data="x" * 1_000_000))
    h.pub["instruction"].publish(invalid_utf8_string_cdr(b"put the \xff\xfe block away"))
    def reasons() -> set[str]:  # rejections named on the status topic (a status carries the recent ones too)
        seen = set()
        for _, s in h.since(mark, "brain"):
            for line in [str(s.get("detail", "")), *map(str, s.get("recent_errors", []))]:
                if "1000000 characters" in line:
                    seen.add("1 MB")
                if "not valid UTF-8" in line:
                    seen.add("invalid UTF-8")
        return seen

    rejected = h.spin(10.0, lambda: len(reasons()) == 2)
    m2 = h.mark()
    h.spin(1.0)
    h.pub["instruction"].publish(String(data=task["instruction"]))
    planned = h.spin(60.0, lambda: any(s.get("state") == "planned" for _, s in h.since(m2, "brain")))
    return _judge(row, rejected and planned, f"rejections named on the status topic: {sorted(reasons())}; plans "
                                             f"after the flood: {planned}", h, mark)


SCENARIOS: dict[str, tuple[str, Callable]] = {
    "state_freeze": ("oracle", state_freeze), "bogus_state": ("oracle", bogus_state),
    "rogue_plans": ("oracle", rogue_plans), "cancel": ("oracle", cancel), "bad_camera": ("oracle", bad_camera),
    "cerebellum_killed": ("oracle", cerebellum_killed), "sim_killed": ("oracle", sim_killed),
    "brain_killed": ("embedded", brain_killed), "bad_instructions": ("embedded", bad_instructions),
}
"""Scenario name -> (the brain it needs, the function)."""


def run_faults(names: list[str] | None = None, trials: int = 5, sim_time: str = "both",
               log_dir: Path = Path("runs/faults"), progress: bool = True) -> list[Row]:
    """Run the scenarios (a fresh stack each) and return their rows."""
    import rclpy
    from tqdm import tqdm

    names = names or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    runs = []
    for name in names:
        modes = ([True, False] if sim_time == "both" else [sim_time == "true"]) if name == "state_freeze" else [True]
        runs += [(name, m) for m in modes]
    rows = []
    with rclpy.init():
        for name, use_sim in tqdm(runs, desc="fault scenarios", unit="scenario", disable=not progress):
            brain, fn = SCENARIOS[name]
            cfg = StackConfig(brain=brain, use_sim_time=use_sim, log_dir=log_dir / f"{name}-{use_sim}",
                              lockstep_period_s=0.0)
            h = Harness(cfg)
            try:
                rows.append(fn(h, trials, use_sim) if name == "state_freeze" else fn(h))
            except Exception as exc:  # noqa: BLE001 - a scenario that cannot run is a failed row, not a crash
                rows.append(Row(name, "", f"could not run: {type(exc).__name__}: {exc}"[:500], False))
            finally:
                h.close()
    return rows


def table(rows: list[Row]) -> str:
    """The markdown table of the rows."""
    lines = ["| scenario | expected | measured | result |", "|---|---|---|---|"]
    lines += [f"| {r.scenario} | {r.expected} | {r.measured} | {'pass' if r.passed else 'FAIL'} |" for r in rows]
    return "\n".join(lines) + "\n"


def rows_json(rows: list[Row]) -> list[dict]:
    """The rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]


__all__ = ["SCENARIOS", "Row", "envelope_violations", "invalid_utf8_string_cdr", "run_faults", "table"]
