"""Record simulated expert episodes as rosbag2 (mcap) files, one bag per episode.

A bag holds what a real robot cell would record, plus the simulator's ground truth:

=============================== ============================== ===================
topic                           type                           rate
=============================== ============================== ===================
/camera/color/image_raw         sensor_msgs/msg/Image (rgb8)   camera rate
/camera/depth/image_raw         sensor_msgs/msg/Image (32FC1)  camera rate
/camera/color/camera_info       sensor_msgs/msg/CameraInfo     camera rate
/camera/color/pose              geometry_msgs/msg/PoseStamped  once (camera optical frame in base)
/robo/ee_pose                   geometry_msgs/msg/PoseStamped  control rate (measured)
/joint_states                   sensor_msgs/msg/JointState     control rate
/robo/ee_target                 geometry_msgs/msg/PoseStamped  control rate (commanded)
/robo/gripper_command           std_msgs/msg/Float64           control rate
/robo/execution_status          robo_stack/msg/ExecutionStatus control rate (subtask, progress)
/robo/plan                      robo_stack/msg/Plan            once (the plan executed)
/sim/expert_plan                robo_stack/msg/Plan            once (unperturbed ground truth)
/robo/failure                   robo_stack/msg/FailureReport   at each labelled failure
/sim/episode                    std_msgs/msg/String (JSON)     once, at the end
=============================== ============================== ===================

The episode metadata (task, success, failure and perturbation labels, camera) is the
JSON on ``/sim/episode`` and also the bag's ``custom_data["robo_stack.episode"]``.
Stamps are simulated time since the episode start: a command is stamped when it was issued
(the start of its control period), the state it led to one control period later, so the
observation stamped ``t`` and the command stamped ``t`` form a behaviour-cloning pair.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from robo_common import bags
from robo_common.bags import EPISODE_METADATA_KEY
from robo_common.constants import (
    BASE_FRAME,
    CAMERA_FRAME,
    COLOR_ENCODING,
    DEPTH_ENCODING,
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR_IMAGE,
    TOPIC_DEPTH_IMAGE,
    TOPIC_EE_POSE,
    TOPIC_EE_TARGET,
    TOPIC_EXECUTION_STATUS,
    TOPIC_FAILURE,
    TOPIC_GRIPPER_COMMAND,
    TOPIC_JOINT_STATES,
    TOPIC_PLAN,
    TOPIC_SIM_EPISODE,
    TOPIC_SIM_EXPERT_PLAN,
)
from robo_common.geometry import matrix_to_quat
from robo_common.jsonable import to_jsonable
from robo_common.plan_types import PlanData
from robo_sim.episode import EpisodeResult, StepRecord
from robo_sim.world import CameraInfo, SimWorld

LOG = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = 1, 2, 3  # ExecutionStatus states

BAG_TOPICS: dict[str, str] = {
    TOPIC_COLOR_IMAGE: "sensor_msgs/msg/Image",
    TOPIC_DEPTH_IMAGE: "sensor_msgs/msg/Image",
    TOPIC_CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    TOPIC_CAMERA_POSE: "geometry_msgs/msg/PoseStamped",
    TOPIC_EE_POSE: "geometry_msgs/msg/PoseStamped",
    TOPIC_JOINT_STATES: "sensor_msgs/msg/JointState",
    TOPIC_EE_TARGET: "geometry_msgs/msg/PoseStamped",
    TOPIC_GRIPPER_COMMAND: "std_msgs/msg/Float64",
    TOPIC_EXECUTION_STATUS: "robo_stack/msg/ExecutionStatus",
    TOPIC_PLAN: "robo_stack/msg/Plan",
    TOPIC_SIM_EXPERT_PLAN: "robo_stack/msg/Plan",
    TOPIC_FAILURE: "robo_stack/msg/FailureReport",
    TOPIC_SIM_EPISODE: "std_msgs/msg/String",
}
"""Every topic of an episode bag and its message type."""


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


class EpisodeRecorder:
    """Write one episode to a rosbag2 directory while it runs.

    Use :meth:`start` once the plan is known, pass :meth:`on_step` as the episode's step
    callback, then :meth:`finish` with the result. :meth:`abort` removes a partial bag.
    """

    def __init__(self, path: Path, camera: CameraInfo, control_hz: float, storage: str = "mcap",
                 compress: bool = True) -> None:
        """Prepare a bag at ``path`` (must not exist) for a camera with the given intrinsics/extrinsics."""
        self.period = 1.0 / control_hz
        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        self.path = Path(path)
        self.camera = camera
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        if compress and storage == "mcap":
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._store = bags.typestore()
        self._conns: dict[str, Any] = {}
        # step -> (commanded pos, commanded quat, measured pos, measured quat, subtask index, command stamp)
        self._steps: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]] = {}
        self._plan: PlanData | None = None
        self._last_ns = 0
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, plan: PlanData, expert_plan: PlanData | None = None, world: SimWorld | None = None) -> None:
        """Open the bag; write the camera pose, the plan(s) and, given ``world``, its state at t=0."""
        self._writer.open()
        for topic, msgtype in BAG_TOPICS.items():
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self._plan = plan
        T = np.asarray(self.camera.T_base_camera)
        self._write(TOPIC_CAMERA_POSE, 0, bags.pose_stamped(0, BASE_FRAME, T[:3, 3], matrix_to_quat(T[:3, :3])))
        self._write(TOPIC_PLAN, 0, bags.plan_to_bag_msg(plan))
        self._write(TOPIC_SIM_EXPERT_PLAN, 0, bags.plan_to_bag_msg(expert_plan or plan))
        if world is not None:
            pos, quat = world.ee_pose()
            names, q, dq, tau = world.joint_state()
            self._write_state(0, pos, quat, names, q, dq, tau)
            self._write_images(0, *world.render())

    def on_step(self, rec: StepRecord) -> None:
        """Write one control step (and its images when rendered)."""
        ns = _ns(rec.time)
        cmd_ns = max(0, _ns(rec.time - self.period))
        self._steps[rec.step] = (rec.target_pos, rec.target_quat, rec.ee_pos, rec.ee_quat, rec.subtask_index,
                                 cmd_ns)
        self._write(TOPIC_EE_TARGET, cmd_ns, bags.pose_stamped(cmd_ns, BASE_FRAME, rec.target_pos, rec.target_quat))
        self._write(TOPIC_GRIPPER_COMMAND, cmd_ns, bags.float64(rec.gripper_command))
        self._write(TOPIC_EXECUTION_STATUS, cmd_ns, self._status(cmd_ns, rec.subtask_index, RUNNING, rec.progress,
                                                                 f"{rec.skill}:{rec.phase}"))
        self._write_state(ns, rec.ee_pos, rec.ee_quat, rec.joint_names, rec.joint_positions, rec.joint_velocities,
                          rec.joint_efforts)
        if rec.rgb is not None and rec.depth is not None:
            self._write_images(ns, rec.rgb, rec.depth)

    def _write_state(self, ns: int, pos: np.ndarray, quat: np.ndarray, names: list[str], q: np.ndarray,
                     dq: np.ndarray, tau: np.ndarray) -> None:
        self._write(TOPIC_EE_POSE, ns, bags.pose_stamped(ns, BASE_FRAME, pos, quat))
        self._write(TOPIC_JOINT_STATES, ns, bags.joint_state(ns, names, q, dq, tau))

    def _write_images(self, ns: int, rgb: np.ndarray, depth: np.ndarray) -> None:
        cam = self.camera
        self._write(TOPIC_COLOR_IMAGE, ns, bags.image(ns, CAMERA_FRAME, rgb, COLOR_ENCODING))
        self._write(TOPIC_DEPTH_IMAGE, ns, bags.image(ns, CAMERA_FRAME, depth, DEPTH_ENCODING))
        self._write(TOPIC_CAMERA_INFO, ns, bags.camera_info(ns, CAMERA_FRAME, cam.width, cam.height, cam.K))

    def finish(self, result: EpisodeResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write failure reports, the final status and the episode metadata; close the bag.

        Returns:
            The episode metadata written to the bag.
        """
        for label in result.failures:
            report = self._failure(label)
            self._write(TOPIC_FAILURE, _ns_of(report.header.stamp), report)
        end_ns = max(self._last_ns, _ns(result.duration))
        state = SUCCEEDED if result.success else FAILED
        last_index = max((s.index for s in result.plan.subtasks), default=0)
        detail = "task succeeded" if result.success else "; ".join(f.kind for f in result.failures) or "task failed"
        self._write(TOPIC_EXECUTION_STATUS, end_ns, self._status(end_ns, last_index, state, 1.0, detail))
        meta = episode_metadata(result, self.camera, self.counts, extra)
        text = json.dumps(meta)
        self._write(TOPIC_SIM_EPISODE, end_ns, bags.string(text))
        meta["message_counts"] = dict(self.counts)
        self._writer.set_custom_data(EPISODE_METADATA_KEY, json.dumps(meta))
        self._writer.close()
        return meta

    def abort(self) -> None:
        """Close and delete a partially written bag."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the bag is being discarded anyway
            LOG.debug("closing aborted bag %s failed", self.path, exc_info=True)
        shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _write(self, topic: str, ns: int, msg: Any) -> None:
        raw = self._store.serialize_cdr(msg, BAG_TOPICS[topic])
        self._writer.write(self._conns[topic], ns, raw)
        self._last_ns = max(self._last_ns, ns)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def _status(self, ns: int, index: int, state: int, progress: float, detail: str) -> Any:
        plan = self._plan
        return bags.msg_class("robo_stack/msg/ExecutionStatus")(
            header=bags.header(ns, BASE_FRAME), plan_id=plan.plan_id if plan else "",
            revision=plan.revision if plan else 0, subtask_index=int(index), state=state,
            progress=float(np.clip(progress, 0.0, 1.0)), detail=detail,
        )

    def _failure(self, label: Any) -> Any:
        """A FailureReport for a label, stamped at its step's command time, with that step's poses."""
        earlier = [s for s in self._steps if s <= label.step]
        identity = np.array([0.0, 0.0, 0.0, 1.0])
        tpos, tquat, epos, equat, index, ns = (
            self._steps[max(earlier)] if earlier else (np.zeros(3), identity, np.zeros(3), identity, 0, 0)
        )
        plan = self._plan
        return bags.msg_class("robo_stack/msg/FailureReport")(
            header=bags.header(ns, BASE_FRAME), plan_id=plan.plan_id if plan else "",
            revision=plan.revision if plan else 0, subtask_index=int(index), kind=label.kind, detail=label.detail,
            commanded_pose=bags.pose(tpos, tquat), measured_pose=bags.pose(epos, equat), failure_probability=1.0,
        )


def _ns_of(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def episode_metadata(result: EpisodeResult, camera: CameraInfo, counts: dict[str, int],
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON-serialisable metadata of an episode."""
    task = result.task
    return {
        "seed": result.seed,
        "split": result.split,
        "family": result.family,
        "variant": getattr(task, "variant", ""),
        "instruction": result.instruction,
        "success": bool(result.success),
        "n_steps": result.n_steps,
        "duration_s": result.duration,
        "plan": result.plan.to_dict(),
        "failures": [dataclasses.asdict(f) for f in result.failures],
        "perturbation": dataclasses.asdict(result.perturbation) if result.perturbation else None,
        "scene": to_jsonable(dataclasses.asdict(task.scene)) if task is not None else None,
        "camera": {
            "frame_id": CAMERA_FRAME, "width": camera.width, "height": camera.height,
            "K": np.asarray(camera.K).tolist(), "T_base_camera": np.asarray(camera.T_base_camera).tolist(),
        },
        **(extra or {}),
    }
