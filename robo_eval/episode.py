"""One recorded run as aligned per-step arrays on the command clock: what a model sees and what was commanded.

The replay clock is the stamps of the recorded end-effector commands (``/robo/ee_target``). For
each command stamp ``t`` the observation is the latest measured state (``/robo/ee_pose``,
``/joint_states``), camera frame and execution status stamped at or before ``t``; the recorded
command stamped ``t`` is what the model's output at that step is compared with (the simulator
records exactly these behaviour-cloning pairs, see :mod:`robo_sim.recording`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from robo_common import bags
from robo_common import constants as C
from robo_common.bags import EPISODE_METADATA_KEY, gripper_widths, pose_arrays
from robo_common.plan_types import PlanData
from robo_eval.bagread import BagError, Recording

LOG = logging.getLogger(__name__)


CEREBELLUM_TOPICS = (C.TOPIC_EE_TARGET, C.TOPIC_EE_POSE, C.TOPIC_JOINT_STATES, C.TOPIC_GRIPPER_COMMAND,
                     C.TOPIC_EXECUTION_STATUS, C.TOPIC_PLAN, C.TOPIC_COLOR_IMAGE, C.TOPIC_DEPTH_IMAGE)
"""Topics the cerebellum replay needs (a bag without one of them is an error naming it)."""
OPTIONAL_TOPICS = (C.TOPIC_FAILURE, C.TOPIC_SIM_EPISODE, C.TOPIC_SIM_EXPERT_PLAN, C.TOPIC_CAMERA_INFO,
                   C.TOPIC_CAMERA_POSE, C.TOPIC_INSTRUCTION)


def latest_before(stamps: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of the latest stamp <= each query stamp (-1 when there is none)."""
    return np.searchsorted(stamps, query, side="right") - 1


@dataclass
class ReplayEpisode:
    """A recorded run aligned on its command clock (length ``T`` arrays, base frame, metres).

    Attributes:
        name: Bag directory name.
        t_ns: Command stamps (the replay clock).
        ee_pos, ee_quat, gripper_width: Observation at each step.
        target_pos, target_quat, gripper_cmd: The recorded command at each step.
        subtask_index: Active subtask per step (from ``/robo/execution_status``; -1 unknown).
        frame_index: Latest camera frame per step (-1 before the first frame).
        rgb, depth: Decoded camera frames.
        plan: The executed plan (``/robo/plan``), if recorded.
        reference_plan: The ground-truth plan (``/sim/expert_plan``, else ``/robo/plan``).
        failure_step: First labelled failure step (episode metadata or ``/robo/failure``), or None.
        failure_kind: Kind of that failure.
        instruction: The instruction of the run ("" when unknown).
        camera_k, camera_pose: Intrinsics (3x3) and optical-frame pose in the base frame (4x4), if recorded.
        meta: robo_stack episode metadata (simulator bags), else {}.
        duration_s: Recorded duration of the bag.
    """

    name: str
    t_ns: np.ndarray
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    gripper_width: np.ndarray
    target_pos: np.ndarray
    target_quat: np.ndarray
    gripper_cmd: np.ndarray
    subtask_index: np.ndarray
    frame_index: np.ndarray
    rgb: list[np.ndarray]
    depth: list[np.ndarray]
    plan: PlanData | None
    reference_plan: PlanData | None
    failure_step: int | None
    failure_kind: str
    instruction: str
    camera_k: np.ndarray | None
    camera_pose: np.ndarray | None
    duration_s: float
    meta: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of steps."""
        return len(self.t_ns)

    def time_s(self) -> np.ndarray:
        """Step times in seconds from the first command."""
        return (self.t_ns - self.t_ns[0]) / 1e9 if self.length else np.zeros(0)

    def skill_of(self, subtask: int) -> str:
        """Skill name of a subtask index of the executed plan ("" when unknown)."""
        for st in self.plan.subtasks if self.plan is not None else []:
            if st.index == subtask:
                return st.skill
        return ""


def episode_meta(rec: Recording) -> dict:
    """The robo_stack episode metadata of a bag (custom data, else ``/sim/episode``), or {}."""
    text = rec.metadata.get(EPISODE_METADATA_KEY)
    if text is None and rec.get(C.TOPIC_SIM_EPISODE):
        text = rec.get(C.TOPIC_SIM_EPISODE)[-1][1].data
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        LOG.warning("%s: episode metadata is not JSON; ignored", rec.path)
        return {}


def _failure_label(rec: Recording, meta: dict, t_ns: np.ndarray) -> tuple[int | None, str]:
    failures = meta.get("failures") or []
    if failures:
        return min(int(failures[0]["step"]), len(t_ns) - 1), str(failures[0].get("kind", ""))
    reports = rec.get(C.TOPIC_FAILURE)
    if reports:
        stamp, msg = reports[0]
        return int(max(0, latest_before(t_ns, np.array([stamp]))[0])), str(msg.kind)
    return None, ""


def _camera(rec: Recording, meta: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    from robo_common.geometry import pose_to_matrix

    k = pose = None
    if rec.get(C.TOPIC_CAMERA_INFO):
        k = np.asarray(rec.get(C.TOPIC_CAMERA_INFO)[0][1].k, float).reshape(3, 3)
    elif meta.get("camera"):
        k = np.asarray(meta["camera"]["K"], float)
    if rec.get(C.TOPIC_CAMERA_POSE):
        _, p, q = pose_arrays(rec.get(C.TOPIC_CAMERA_POSE)[:1])
        pose = pose_to_matrix(p[0], q[0])
    elif meta.get("camera"):
        pose = np.asarray(meta["camera"]["T_base_camera"], float)
    return k, pose


def build_episode(rec: Recording, need_status: bool = True) -> ReplayEpisode:
    """Align a recording on its command clock.

    Raises:
        BagError: no commands, no images, or (``need_status``) no RUNNING execution status.
    """
    t_cmd, target_pos, target_quat = pose_arrays(rec.get(C.TOPIC_EE_TARGET))
    if len(t_cmd) == 0:
        raise BagError(f"{rec.path}: no {C.TOPIC_EE_TARGET} messages")
    t_pose, ee_pos, ee_quat = pose_arrays(rec.get(C.TOPIC_EE_POSE))
    t_joint, widths = gripper_widths(rec.get(C.TOPIC_JOINT_STATES))
    if len(t_pose) == 0:
        raise BagError(f"{rec.path}: no {C.TOPIC_EE_POSE} messages")
    grip_msgs = rec.get(C.TOPIC_GRIPPER_COMMAND)
    t_grip = np.array([s for s, _ in grip_msgs], np.int64)
    grip = np.array([m.data for _, m in grip_msgs], float)
    status = [(s, m) for s, m in rec.get(C.TOPIC_EXECUTION_STATUS) if m.state == 1]  # RUNNING
    if need_status and not status:
        raise BagError(f"{rec.path}: no RUNNING {C.TOPIC_EXECUTION_STATUS} messages (the active subtask is unknown)")
    rgb_msgs, depth_msgs = rec.get(C.TOPIC_COLOR_IMAGE), rec.get(C.TOPIC_DEPTH_IMAGE)
    n_frames = min(len(rgb_msgs), len(depth_msgs))
    try:
        rgb = [bags.image_to_array(rgb_msgs[i][1]) for i in range(n_frames)]
        depth = [bags.image_to_array(depth_msgs[i][1]).astype(np.float32) for i in range(n_frames)]
    except ValueError as exc:
        raise BagError(f"{rec.path}: {exc}") from exc
    if depth and depth_msgs[0][1].encoding == "16UC1":
        depth = [d / 1000.0 for d in depth]  # REP 118: 16UC1 depth is millimetres
    t_img = np.array([s for s, _ in rgb_msgs[:n_frames]], np.int64)
    ip, ij = latest_before(t_pose, t_cmd), latest_before(t_joint, t_cmd)
    ig, i_status = latest_before(t_grip, t_cmd), latest_before(np.array([s for s, _ in status], np.int64), t_cmd)
    meta = episode_meta(rec)
    plans = rec.get(C.TOPIC_PLAN)
    plan = bags.plan_from_bag_msg(plans[0][1]) if plans else None
    expert = rec.get(C.TOPIC_SIM_EXPERT_PLAN)
    reference = bags.plan_from_bag_msg(expert[0][1]) if expert else plan
    failure_step, failure_kind = _failure_label(rec, meta, t_cmd)
    camera_k, camera_pose = _camera(rec, meta)
    instructions = rec.get(C.TOPIC_INSTRUCTION)
    instruction = (instructions[0][1].data if instructions else meta.get("instruction")
                   or (plan.instruction if plan else ""))
    return ReplayEpisode(
        name=rec.path.name, t_ns=t_cmd,
        ee_pos=ee_pos[np.clip(ip, 0, None)], ee_quat=ee_quat[np.clip(ip, 0, None)],
        gripper_width=widths[np.clip(ij, 0, None)] if len(widths) else np.ones(len(t_cmd)),
        target_pos=target_pos, target_quat=target_quat,
        gripper_cmd=grip[np.clip(ig, 0, None)] if len(grip) else np.full(len(t_cmd), np.nan),
        subtask_index=np.array([status[i][1].subtask_index if i >= 0 else -1 for i in i_status], np.int64),
        frame_index=latest_before(t_img, t_cmd), rgb=rgb, depth=depth, plan=plan, reference_plan=reference,
        failure_step=failure_step, failure_kind=failure_kind, instruction=str(instruction or ""),
        camera_k=camera_k, camera_pose=camera_pose, duration_s=rec.duration_s, meta=meta,
    )
