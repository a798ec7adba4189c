"""``brain_node``: the ROS 2 adapter of the brain (thin, over :mod:`robo_brain.worker` and :mod:`robo_brain.params`).

Subscribes ``/robo/instruction`` (std_msgs/String), colour / depth / camera info (sensor QoS),
the camera extrinsics ``/camera/color/pose`` (PoseStamped in the base frame, latched; the
``camera_pose`` parameter is the fallback), ``/robo/ee_pose`` and ``/robo/failure``. Publishes
``/robo/plan`` (robo_stack/Plan, latched), ``/robo/markers`` (keypoint spheres and the plan as
text) and ``/robo/brain_status`` (std_msgs/String, JSON, latched)::

    {"state": "loading|ready|waiting|planning|correcting|planned|corrected|verifying|succeeded|failed|preempted|"
              "cancelled|error",
     "detail": "...", "plan_id": "...", "revision": 0, "backend": "...", "latency_s": 0.0,
     "errors": [...], "recent_errors": [...], "stamp_ns": 0}   # recent_errors: the last 5 rejections

An instruction is planned on colour and depth frames that arrived after it (``plan_frame_wait_s``): a
frame from before a reset or a move of the scene would give a plan of objects that are no longer there.
Planning runs in a worker thread; a new instruction preempts the running job. A plan request
that fails (unusable model output, bad keypoints, back-end down) publishes an empty plan (no
subtasks, ``reasoning`` says why) under a new ``plan_id`` when ``publish_empty_plan_on_failure``
is set, so the cerebellum stops following the previous instruction's plan; a request refused because
its plan names something the brain does not see (``ground_names``) keeps the running plan. Bad inputs (wrong
image encoding, oversized or malformed instruction, NaN poses) are logged and reported on the
status topic; the node keeps running, also when the model fails to load.

When the cerebellum reports the current plan SUCCEEDED on ``/robo/execution_status`` and ``verify_goals``
is set, the brain looks at the goals of its place and push steps in a frame taken ``correction_settle_s``
later (:mod:`robo_brain.verify`): ``succeeded`` when none is seen unmet, else a revision that redoes the
unmet steps (``corrected``), or ``failed`` past ``max_corrections``. The task is done only then.

``/robo/cancel`` (std_msgs/String naming who; empty: "operator") stops the planning job and drops the
plan: no corrections for it afterwards, and its empty next revision goes out (a cerebellum that starts
later holds instead of running it); the status says ``cancelled`` and ``by`` whom. The
``ExecuteInstruction`` action is served beside the topic (:mod:`robo_brain.action_server`).
"""

from __future__ import annotations

import json
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from robo_stack.msg import ExecutionStatus, FailureReport, Plan
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from robo_brain.action_server import ExecuteInstructionServer
from robo_brain.backends import make_backend
from robo_brain.params import PARAMETERS, camera_pose_from_parameter, checked_instruction, configs_from_parameters
from robo_brain.planner import FailureInfo, Outcome, PlanResult
from robo_brain.task_tracker import SUCCEEDED
from robo_brain.worker import BrainWorker, Job, Observation
from robo_common import constants as C
from robo_common.camera import CameraModel
from robo_common.geometry import pose_to_matrix
from robo_common.plan_types import PlanData
from robo_common.ros.conversions import image_to_numpy, plan_to_msg, pose_array, stamp_to_ns
from robo_common.ros.markers import plan_markers
from robo_common.ros.qos import qos_for_topic
from robo_common.ros.run import events_executor, run_node

TOPIC_BRAIN_STATUS = C.TOPIC_BRAIN_STATUS



def _position(pose) -> np.ndarray:  # noqa: ANN001 - geometry_msgs/Pose
    return np.array([pose.position.x, pose.position.y, pose.position.z], float)


class BrainNode(Node):
    """ROS 2 adapter: parameters, topics and message conversion around a :class:`BrainWorker`."""

    def __init__(self) -> None:
        """Declare parameters, create topics and start loading the model in the worker thread."""
        super().__init__("brain_node")
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        self.par = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._latest: dict[str, object] = {}
        self._camera_T: np.ndarray | None = None
        self._ee: np.ndarray | None = None
        # an instruction (text, plan id, monotonic arrival) waiting for camera frames that arrived after it
        self._waiting: tuple[str, str | None, float] | None = None
        self._recent_errors: deque[str] = deque(maxlen=5)  # in every status: a burst's rejections are not lost
        # a correction (with its failure) or a goal check (failure None) waiting for a frame from after its due time
        self._correction: tuple[PlanData, FailureInfo | None, tuple[int, float]] | None = None
        self._verified: set[tuple[str, int]] = set()  # (plan_id, revision) whose completion was checked
        self._revisions: list[PlanData] = []  # every revision published of the current plan id, oldest first
        self._arrival: dict[str, float] = {}  # monotonic arrival time of the latest frame of each kind
        self.current: PlanData | None = None
        self.backend_name = f"{self.par['backend']}:{self.par['model_path']}"
        self.actions: ExecuteInstructionServer | None = None
        self._make_interfaces()
        self._set_fallback_camera_pose()
        try:
            planner_cfg, backend_cfg = configs_from_parameters(self.par)
        except ValueError as exc:
            self.worker = None
            self._status("error", f"bad parameters: {exc}")
            self.get_logger().error(f"bad parameters: {exc}; the node stays up but will not plan")
            return
        self.worker = BrainWorker(lambda: make_backend(backend_cfg), planner_cfg, self._on_result, self._status)
        self.worker.start()
        self.get_logger().info(f"brain_node up: backend {self.backend_name}")

    # ------------------------------------------------------------------ set-up
    def _make_interfaces(self) -> None:
        self.pub_plan = self.create_publisher(Plan, C.relative(C.TOPIC_PLAN), qos_for_topic(C.TOPIC_PLAN))
        self.pub_markers = self.create_publisher(MarkerArray, C.relative(C.TOPIC_MARKERS),
                                                 qos_for_topic(C.TOPIC_MARKERS))
        self.pub_status = self.create_publisher(String, C.relative(TOPIC_BRAIN_STATUS),
                                                qos_for_topic(TOPIC_BRAIN_STATUS))
        self.create_subscription(String, C.relative(C.TOPIC_INSTRUCTION), self._on_instruction,
                                 qos_for_topic(C.TOPIC_INSTRUCTION))
        for key, msg_type, topic in (("rgb", Image, C.TOPIC_COLOR_IMAGE), ("depth", Image, C.TOPIC_DEPTH_IMAGE),
                                     ("info", CameraInfo, C.TOPIC_CAMERA_INFO)):
            self.create_subscription(msg_type, C.relative(topic), lambda m, k=key: self._on_sensor(k, m),
                                     qos_for_topic(topic))
        self.create_subscription(PoseStamped, C.relative(C.TOPIC_CAMERA_POSE), self._on_camera_pose,
                                 qos_for_topic(C.TOPIC_CAMERA_POSE))
        self.create_subscription(PoseStamped, C.relative(C.TOPIC_EE_POSE), self._on_ee_pose,
                                 qos_for_topic(C.TOPIC_EE_POSE))
        self.create_subscription(FailureReport, C.relative(C.TOPIC_FAILURE), self._on_failure,
                                 qos_for_topic(C.TOPIC_FAILURE))
        self.create_subscription(String, C.relative(C.TOPIC_CANCEL), self._on_cancel, qos_for_topic(C.TOPIC_CANCEL))
        self.create_subscription(ExecutionStatus, C.relative(C.TOPIC_EXECUTION_STATUS), self._on_execution,
                                 qos_for_topic(C.TOPIC_EXECUTION_STATUS))
        self.actions = ExecuteInstructionServer(self, self.submit_instruction, bool(self.par["verify_goals"]))
        # on the steady clock: a waiting instruction is planned on time also while simulated time stands still
        self.create_timer(0.1, self._submit_waiting, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _set_fallback_camera_pose(self) -> None:
        try:
            self._camera_T = camera_pose_from_parameter(self.par["camera_pose"])
        except ValueError as exc:
            self.get_logger().error(str(exc))

    # ------------------------------------------------------------------ status
    def _status(self, state: str, detail: str = "", plan: PlanData | None = None, **extra: object) -> None:
        data = {"state": state, "detail": detail[:2000], "plan_id": plan.plan_id if plan else "",
                "revision": plan.revision if plan else 0, "backend": self.backend_name,
                "stamp_ns": time.time_ns(), "recent_errors": list(self._recent_errors), **extra}
        self.pub_status.publish(String(data=json.dumps(data)))
        if self.actions is not None:
            self.actions.on_brain_status(data)

    def _reject(self, what: str, detail: str) -> str:
        self.get_logger().error(f"{what}: {detail}")
        self._recent_errors.append(f"{what}: {detail}"[:300])
        self._status("error", f"{what}: {detail}")
        return f"{what}: {detail}"

    # ------------------------------------------------------------------ inputs
    def _on_sensor(self, key: str, msg: object) -> None:
        expected = {"rgb": ("rgb8", "bgr8"), "depth": ("32FC1", "16UC1")}.get(key)
        if expected and msg.encoding not in expected:
            # Checked on arrival: a bad frame is reported at once and the last good one is kept.
            self._reject(f"{key} image ignored", f"unsupported image encoding {msg.encoding!r}; expected one of "
                                                 f"{', '.join(expected)}")
            return
        self._latest[key], self._arrival[key] = msg, time.monotonic()
        self._submit_correction()
        self._submit_waiting()

    def _submit_waiting(self) -> None:
        """Plan the waiting instruction once every input is in and a colour and a depth frame arrived after it,
        or, past ``plan_frame_wait_s``, on the latest frames (a camera that stopped: said in the log)."""
        if self._waiting is None or self._missing():
            return
        instruction, plan_id, since = self._waiting
        fresh = all(self._arrival.get(k, 0.0) >= since for k in ("rgb", "depth"))
        waited = time.monotonic() - since
        if not fresh and waited < float(self.par["plan_frame_wait_s"]):
            return
        self._waiting = None
        if not fresh:
            age = waited + since - min(self._arrival.get(k, 0.0) for k in ("rgb", "depth"))
            self.get_logger().warning(f"no camera frame arrived within {waited:.2f} s after the instruction: "
                                      f"planning on frames that arrived {age:.2f} s ago")
        self._submit_plan(instruction, plan_id)

    def _on_camera_pose(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        if msg.header.frame_id not in ("", C.BASE_FRAME) or not np.all(np.isfinite(pose)):
            self._reject("camera pose rejected", f"frame {msg.header.frame_id!r}, values {pose.tolist()}")
            return
        self._camera_T = pose_to_matrix(pose[:3], pose[3:])

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        pose = pose_array(msg)
        if np.all(np.isfinite(pose)):
            self._ee = pose[:3]
        else:
            self.get_logger().error("ee pose with NaN/inf ignored", throttle_duration_sec=5.0)

    def _missing(self) -> list[str]:
        missing = [k for k in ("rgb", "depth", "info") if k not in self._latest]
        return missing + (["camera pose"] if self._camera_T is None else [])

    def _on_instruction(self, msg: String) -> None:
        self.submit_instruction(msg.data)

    def submit_instruction(self, text: str, plan_id: str | None = None) -> str:
        """Plan ``text`` (under ``plan_id``, else a new one); returns "" when taken, else why not."""
        try:
            text = checked_instruction(text, int(self.par["max_instruction_chars"]))
        except ValueError as exc:
            return self._reject("instruction rejected", str(exc))
        self.get_logger().info(f"instruction: {text[:200]!r}")
        if self.worker is None or self.worker.load_error:
            return self._reject("instruction ignored",
                                f"no model: {self.worker.load_error if self.worker else 'bad params'}")
        self._waiting = (text, plan_id, time.monotonic())
        missing = self._missing()
        if missing:
            self._status("waiting", f"instruction held until these arrive: {', '.join(missing)}")
            return ""
        if float(self.par["plan_frame_wait_s"]) <= 0.0:
            self._waiting = None
            return self._submit_plan(text, plan_id)
        return ""  # planned by _submit_waiting on the next colour and depth frames

    def _on_cancel(self, msg: String) -> None:
        """Stop planning, drop the plan (its empty next revision goes out) and say who cancelled."""
        by = msg.data.strip()[:100] or C.CANCEL_DEFAULT_BY
        self._waiting = self._correction = None
        stopped = self.worker.cancel(by) if self.worker is not None else []
        plan, what = self.current, [f"{job.kind} job stopped" for job in stopped]
        if plan is not None:
            self._publish_plan(PlanData(plan.plan_id, plan.revision + 1, plan.instruction, f"cancelled by {by}", [],
                                        stamp_ns=time.time_ns()))
            self.current, what = None, [*what, f"plan {plan.plan_id} dropped"]
        detail = f"cancelled by {by}: {', '.join(what) or 'nothing was running'}"
        self.get_logger().warning(detail)
        self._status("cancelled", detail, plan, by=by)

    def _observation(self) -> Observation:
        info: CameraInfo = self._latest["info"]
        rgb, depth = image_to_numpy(self._latest["rgb"]), image_to_numpy(self._latest["depth"])
        if rgb.ndim != 3 or depth.ndim != 2:
            raise ValueError(f"colour topic must carry rgb8/bgr8 and depth 32FC1/16UC1, got "
                             f"{self._latest['rgb'].encoding} and {self._latest['depth'].encoding}")
        camera = CameraModel.from_camera_info(info, self._camera_T)
        stamp = stamp_to_ns(self._latest["rgb"].header.stamp)
        return Observation(rgb, depth, camera, self._ee, stamp)

    def _submit_plan(self, instruction: str, plan_id: str | None = None) -> str:
        try:
            obs = self._observation()
        except ValueError as exc:
            return self._reject("cannot plan", str(exc))
        job = Job("plan", obs, instruction=instruction)
        job.plan_id = plan_id or job.plan_id
        self.worker.submit(job)
        return ""

    def _on_failure(self, msg: FailureReport) -> None:
        cur = self.current
        if cur is None or msg.plan_id != cur.plan_id or int(msg.revision) != cur.revision:
            self.get_logger().warning(f"failure for plan {msg.plan_id!r} rev {msg.revision} ignored: the current "
                                      f"plan is {cur.plan_id if cur else None!r} rev {cur.revision if cur else None}")
            return
        measured, commanded = _position(msg.measured_pose), _position(msg.commanded_pose)
        failure = FailureInfo(msg.kind or "unknown", msg.detail[:1000], int(msg.subtask_index),
                              measured if np.all(np.isfinite(measured)) else None,
                              commanded if np.all(np.isfinite(commanded)) else None)
        self.get_logger().warning(f"failure {failure.kind} at subtask {failure.subtask_index}: {failure.detail!r}")
        if self.worker is None or not self.worker.ready.is_set():
            self._reject("failure not handled", "no model loaded")
            return
        settle = float(self.par["correction_settle_s"])
        due = (stamp_to_ns(msg.header.stamp) + int(settle * 1e9), time.monotonic() + settle)
        self._correction = (cur, failure, due)
        self._status("correcting", f"{failure.kind} at subtask {failure.subtask_index}: waiting for a frame "
                                   f"{self.par['correction_settle_s']} s after the failure", cur)
        self._submit_correction()

    def _on_execution(self, msg: ExecutionStatus) -> None:
        """The cerebellum finished the current plan: check its goals in a frame from ``correction_settle_s`` later."""
        cur = self.current
        if (msg.state != SUCCEEDED or not self.par["verify_goals"] or cur is None or msg.plan_id != cur.plan_id
                or int(msg.revision) != cur.revision or (cur.plan_id, cur.revision) in self._verified
                or self.worker is None or not self.worker.ready.is_set()):
            return
        self._verified.add((cur.plan_id, cur.revision))
        settle = float(self.par["correction_settle_s"])
        self._correction = (cur, None, (stamp_to_ns(msg.header.stamp) + int(settle * 1e9), time.monotonic() + settle))
        self._status("verifying", f"plan {cur.plan_id} rev {cur.revision} complete: waiting for a frame "
                                  f"{settle} s later to check its goals", cur)
        self._submit_correction()

    def _submit_correction(self) -> None:
        """Submit the pending correction once a colour and a depth frame from after its due time are in: stamped
        ``correction_settle_s`` after the failure's stamp, or (for a camera that does not stamp its frames)
        arrived that long after the failure report."""
        if self._correction is None:
            return
        plan, failure, (due_ns, due_wall) = self._correction
        for key in ("rgb", "depth"):
            frame = self._latest.get(key)
            if frame is None or (stamp_to_ns(frame.header.stamp) < due_ns and self._arrival.get(key, 0.0) < due_wall):
                return
        self._correction = None
        if self.current is None or self.current.plan_id != plan.plan_id:
            return  # replaced or cancelled meanwhile
        try:
            obs = self._observation()
        except (ValueError, KeyError, TypeError) as exc:
            self._reject("cannot correct", str(exc))
            return
        kind = "correct" if failure is not None else "verify"
        earlier = [p for p in self._revisions if p.plan_id == plan.plan_id and p.revision < plan.revision]
        self.worker.submit(Job(kind, obs, plan=plan, failure=failure, plan_id=plan.plan_id, earlier=earlier))

    # ------------------------------------------------------------------ outputs (worker thread)
    def _on_result(self, job: Job, result: PlanResult) -> None:
        if job.cancel.is_set():  # cancelled or preempted after the worker's own check
            return
        latency = float(result.timing.get("total", 0.0))
        if result.outcome == Outcome.VERIFIED:
            self.get_logger().info(f"plan {job.plan_id} rev {job.plan.revision} succeeded: "
                                   f"{'; '.join(result.findings)}")
            self._status("succeeded", "; ".join(result.findings) or "plan complete (no goal to check in the image)",
                         job.plan, latency_s=latency, findings=result.findings)
            return
        if result.ok:
            self._publish_plan(result.plan)
            self.get_logger().info(f"{result.outcome} plan {result.plan.plan_id} rev {result.plan.revision}: "
                                   f"{result.plan.code_lines()} in {latency:.2f} s")
            self._status(str(result.outcome), "; ".join(result.plan.code_lines()), result.plan,
                         latency_s=latency, errors=result.errors, findings=result.findings)
            return
        self.get_logger().error(f"{job.kind} failed: {result.reason}")
        plan = job.plan if job.kind in ("correct", "verify") else None
        if job.kind == "plan" and self.par["publish_empty_plan_on_failure"] and not result.ungrounded:
            plan = PlanData(job.plan_id, 0, job.instruction[:500], f"planning failed: {result.reason}"[:4000], [],
                            stamp_ns=job.observation.stamp_ns)
            self._publish_plan(plan)
        self._status("failed", result.reason, plan, latency_s=latency, errors=result.errors[-5:],
                     findings=result.findings, raw_output=(result.raw_outputs or [""])[-1][:2000])

    def _publish_plan(self, plan: PlanData) -> None:
        if self.current is None or self.current.plan_id != plan.plan_id:
            self._revisions = []
            self._verified = {key for key in self._verified if key[0] == plan.plan_id}  # bounded over a long run
        self._revisions.append(plan)
        self.current = plan
        self.pub_plan.publish(plan_to_msg(plan))
        self.pub_markers.publish(plan_markers(plan, self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        """Stop the worker and the action server, then the node."""
        if self.actions is not None:
            self.actions.destroy()
        if self.worker is not None:
            self.worker.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run ``brain_node`` until shut down."""
    run_node(BrainNode, args, executor=events_executor)  # state at 200 Hz, three camera topics


if __name__ == "__main__":
    main()
