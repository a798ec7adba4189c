"""Behaviour-cloning data from rosbag2 episodes (simulator bags now, robot bags later).

A bag is turned into aligned per-step arrays at its command rate: for every commanded
end-effector target (``/robo/ee_target``), the latest measured state, gripper width, image,
active subtask and progress at or before the command's stamp. Decoded episodes are cached as
``.npz`` files next to the bags (``.cache/``), keyed by the bag's size and mtime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.features import image_tensor
from robo_common import bags
from robo_common import constants as C
from robo_common.plan_types import PlanData
from robo_common.rates import seconds_to_steps

LOG = logging.getLogger(__name__)

# Keys of a decoded episode (one place, like lerobot's dataset keys).
K_EE_POS, K_EE_QUAT, K_GRIPPER_WIDTH = "ee_pos", "ee_quat", "gripper_width"
K_TARGET_POS, K_TARGET_QUAT, K_GRIPPER_CMD = "target_pos", "target_quat", "gripper_cmd"
K_SUBTASK, K_PROGRESS, K_FRAME, K_FAILURE = "subtask_index", "progress", "frame_index", "failure"
K_IMAGES = "images"

FAILURE_LEAD_S = 0.75
"""How long before a labelled failure the failure head is taught to flag it (15 steps at 20 Hz)."""

REQUIRED_TOPICS = (C.TOPIC_EE_TARGET, C.TOPIC_EE_POSE, C.TOPIC_JOINT_STATES, C.TOPIC_GRIPPER_COMMAND,
                   C.TOPIC_EXECUTION_STATUS, C.TOPIC_PLAN, C.TOPIC_COLOR_IMAGE, C.TOPIC_DEPTH_IMAGE)


class BagError(ValueError):
    """A bag that cannot be used for training (missing topic, corrupt, empty)."""


@dataclass
class Episode:
    """One decoded episode: per-step arrays (length T), images (F, 4, S, S), plan and metadata."""

    name: str
    arrays: dict[str, np.ndarray]
    plan: PlanData
    meta: dict

    @property
    def length(self) -> int:
        """Number of control steps."""
        return len(self.arrays[K_TARGET_POS])

    @property
    def rate_hz(self) -> float:
        """Control rate of the recording (Hz)."""
        return float(self.meta.get("control_hz") or 20.0)


def _latest_before(stamps: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of the latest stamp <= each query stamp (0 when none)."""
    return np.clip(np.searchsorted(stamps, query, side="right") - 1, 0, None)


def _read_topics(path: Path) -> dict[str, list[tuple[int, object]]]:
    store = bags.typestore()
    out: dict[str, list[tuple[int, object]]] = {t: [] for t in REQUIRED_TOPICS}
    try:
        with Reader(path) as reader:
            have = {c.topic for c in reader.connections}
            missing = [t for t in REQUIRED_TOPICS if t not in have]
            if missing:
                raise BagError(f"{path}: missing topic(s) {missing}")
            conns = [c for c in reader.connections if c.topic in out]
            for conn, stamp, raw in reader.messages(connections=conns):
                out[conn.topic].append((stamp, store.deserialize_cdr(raw, conn.msgtype)))
    except BagError:
        raise
    except Exception as exc:  # rosbags raises several types for truncated/corrupt files
        raise BagError(f"{path}: cannot read bag: {type(exc).__name__}: {exc}") from exc
    if not out[C.TOPIC_EE_TARGET]:
        raise BagError(f"{path}: no {C.TOPIC_EE_TARGET} messages")
    return out


def decode_bag(path: Path, cfg: CerebellumConfig) -> Episode:
    """Decode one episode bag into aligned arrays.

    Raises:
        BagError: missing topics, corrupt or empty bag.
    """
    path = Path(path)
    topics = _read_topics(path)
    t_cmd, target_pos, target_quat = bags.pose_arrays(topics[C.TOPIC_EE_TARGET])
    t_pose, ee_pos, ee_quat = bags.pose_arrays(topics[C.TOPIC_EE_POSE])
    t_joint, widths = bags.gripper_widths(topics[C.TOPIC_JOINT_STATES])
    grip = np.array([m.data for _, m in topics[C.TOPIC_GRIPPER_COMMAND]])
    t_grip = np.array([s for s, _ in topics[C.TOPIC_GRIPPER_COMMAND]], np.int64)
    status = [(s, m) for s, m in topics[C.TOPIC_EXECUTION_STATUS] if m.state == 1]  # RUNNING
    t_status = np.array([s for s, _ in status], np.int64)
    rgb_msgs, depth_msgs = topics[C.TOPIC_COLOR_IMAGE], topics[C.TOPIC_DEPTH_IMAGE]
    n = min(len(rgb_msgs), len(depth_msgs))
    if n == 0 or not status:
        raise BagError(f"{path}: no images or no execution status")
    images = np.stack([image_tensor(bags.image_to_array(rgb_msgs[i][1]), bags.image_to_array(depth_msgs[i][1]), cfg)
                       for i in range(n)]).astype(np.float16)
    t_img = np.array([s for s, _ in rgb_msgs[:n]], np.int64)
    si = _latest_before(t_status, t_cmd)
    arrays = {
        K_EE_POS: ee_pos[_latest_before(t_pose, t_cmd)], K_EE_QUAT: ee_quat[_latest_before(t_pose, t_cmd)],
        K_GRIPPER_WIDTH: widths[_latest_before(t_joint, t_cmd)],
        K_TARGET_POS: target_pos, K_TARGET_QUAT: target_quat, K_GRIPPER_CMD: grip[_latest_before(t_grip, t_cmd)],
        K_SUBTASK: np.array([status[i][1].subtask_index for i in si], np.int64),
        K_PROGRESS: np.array([status[i][1].progress for i in si], np.float32),
        K_FRAME: _latest_before(t_img, t_cmd), K_IMAGES: images,
    }
    plan = bags.plan_from_bag_msg(topics[C.TOPIC_PLAN][0][1])
    try:
        meta = bags.read_episode_metadata(path)
    except (FileNotFoundError, ValueError):
        meta = {}  # a robot bag: no simulator labels
    meta = {**meta, "control_hz": command_rate(t_cmd, meta)}
    arrays[K_FAILURE] = failure_labels(len(t_cmd), meta, meta["control_hz"])
    return Episode(path.name, arrays, plan, meta)


def command_rate(t_cmd: np.ndarray, meta: dict) -> float:
    """The episode's control rate (Hz): the simulator's ``control_hz`` label, else the median command period."""
    if meta.get("control_hz"):
        return float(meta["control_hz"])
    if len(t_cmd) < 2:
        raise BagError("one command only: cannot tell the control rate")
    return float(1e9 / np.median(np.diff(t_cmd)))


def failure_labels(length: int, meta: dict, rate_hz: float = 20.0) -> np.ndarray:
    """Per-step failure targets: 1 from shortly before the first labelled failure (or the perturbation)."""
    labels = np.zeros(length, np.float32)
    failures = meta.get("failures") or []
    if failures:
        fail_step = int(failures[0]["step"])
        start = fail_step - seconds_to_steps(FAILURE_LEAD_S, rate_hz, minimum=0)
        pert = meta.get("perturbation")
        if pert is not None:
            start = max(start, int(pert["step"]))
        labels[max(0, min(start, length - 1)):] = 1.0
    return labels


def load_episodes(data_dir: Path, cfg: CerebellumConfig, progress: bool = True) -> tuple[list[Episode], list[str]]:
    """Decode every bag under ``data_dir`` (cached); returns the episodes and the errors of bad bags."""
    from tqdm import tqdm

    data_dir = Path(data_dir)
    bag_dirs = sorted(p.parent for p in data_dir.rglob("metadata.yaml") if ".partial" not in p.parts)
    if not bag_dirs:
        raise FileNotFoundError(f"no rosbag2 directories (metadata.yaml) under {data_dir}")
    episodes, errors = [], []
    for bag in tqdm(bag_dirs, desc="decode bags", unit="bag", disable=not progress):
        cache = bag.parent / ".cache"  # beside the bags, so a parent folder of several collections reuses it
        cache.mkdir(exist_ok=True)
        try:
            episodes.append(_cached(bag, cfg, cache))
        except BagError as exc:
            LOG.error("skipping bag: %s", exc)
            errors.append(str(exc))
    return episodes, errors


def _cached(bag: Path, cfg: CerebellumConfig, cache: Path) -> Episode:
    import json

    stat = sum(int(p.stat().st_mtime_ns) + p.stat().st_size for p in bag.iterdir() if p.is_file())
    key = cache / f"{bag.name}_{stat}_{cfg.image_size}.npz"
    if key.exists():
        with np.load(key, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k not in ("plan_json", "meta_json")}
            return Episode(bag.name, arrays, PlanData.from_dict(json.loads(str(data["plan_json"]))),
                           json.loads(str(data["meta_json"])))
    ep = decode_bag(bag, cfg)
    for old in cache.glob(f"{bag.name}_*.npz"):
        old.unlink()
    np.savez(key, **ep.arrays, plan_json=json.dumps(ep.plan.to_dict()), meta_json=json.dumps(ep.meta))
    return ep
