"""Export episode bags as a LeRobot dataset (format ``v3.0``, the layout of ``lerobot`` 0.4's ``LeRobotDataset``).

Layout written under ``OUT`` (field by field as ``lerobot.datasets.utils`` / ``lerobot_dataset`` 0.4.4 write it)::

    meta/info.json                          codebase_version "v3.0", robot_type, total_episodes, total_frames,
                                            total_tasks, chunks_size, data_files_size_in_mb, video_files_size_in_mb,
                                            fps, splits {"train": "0:N"}, data_path, video_path (null), features
    meta/stats.json                         per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
                                            (images: per channel, shape (3, 1, 1), scaled to [0, 1])
    meta/tasks.parquet                      pandas frame: index = task text, column task_index
    meta/episodes/chunk-000/file-000.parquet  episode_index, tasks, length, data/chunk_index, data/file_index,
                                            dataset_from_index, dataset_to_index, meta/episodes/chunk_index,
                                            meta/episodes/file_index, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet         one row per frame: observation.state, observation.joint_positions,
                                            action, observation.images.color (PNG bytes, dtype "image"),
                                            timestamp, frame_index, episode_index, index, task_index

Camera and state streams recorded at different rates are aligned on one clock: frame ``k`` of an
episode is at ``t0 + k / fps`` (``t0``: the first command; ``fps``: the command rate unless given),
and carries the latest state, command and colour image stamped at or before that time.
``observation.state`` is the measured end-effector pose and gripper opening
``[x, y, z, qx, qy, qz, qw, gripper]`` (base frame ``panda_link0``, metres, 0 closed .. 1 open);
``action`` is the commanded target in the same layout (the gripper command). Depth is not exported
(LeRobot image features are 8-bit colour). Images are embedded in the parquet file, as LeRobot does
for ``image`` features; no video encoder is needed.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robo_common import bags
from robo_common import constants as C
from robo_common.bags import gripper_widths, pose_arrays
from robo_eval.bagread import BagError, TopicMap, find_bags, read_recording
from robo_eval.episode import episode_meta, latest_before

LOG = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
MAX_STATS_FRAMES = 40

# Dataset keys (one place, like lerobot's constants).
K_STATE, K_JOINTS, K_ACTION, K_IMAGE = "observation.state", "observation.joint_positions", "action", \
    "observation.images.color"
POSE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
EXPORT_TOPICS = (C.TOPIC_EE_POSE, C.TOPIC_JOINT_STATES, C.TOPIC_EE_TARGET, C.TOPIC_GRIPPER_COMMAND,
                 C.TOPIC_COLOR_IMAGE)


@dataclass
class ExportSummary:
    """What an export wrote, and the bags it skipped with their errors."""

    out: Path
    episodes: int = 0
    frames: int = 0
    fps: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"out": str(self.out), "episodes": self.episodes, "frames": self.frames, "fps": self.fps,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "bags_failed": len(self.failed),
                "failed": self.failed}


@dataclass
class _Episode:
    task: str
    state: np.ndarray
    joints: np.ndarray
    joint_names: list[str]
    action: np.ndarray
    images: list[bytes]
    image_shape: tuple[int, int, int]
    image_stats: dict[str, np.ndarray]


def command_fps(t_cmd: np.ndarray) -> int:
    """The command rate of a bag, rounded to whole frames per second."""
    if len(t_cmd) < 2:
        raise ValueError("need two commands to infer the frame rate; pass fps")
    return max(1, int(round(1e9 / float(np.median(np.diff(t_cmd))))))


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _image_stats(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 RGB frames scaled to [0, 1], shaped (3, 1, 1) as LeRobot stores them.

    Like LeRobot, the pixel statistics come from a sample of the frames (at most ``MAX_STATS_FRAMES``).
    """
    sample = np.linspace(0, len(frames) - 1, min(len(frames), MAX_STATS_FRAMES)).round().astype(int)
    x = np.stack([frames[i] for i in sample]).astype(np.float32) / 255.0  # (N, H, W, 3)
    flat = x.reshape(-1, 3)
    out = {"min": flat.min(0), "max": flat.max(0), "mean": flat.mean(0), "std": flat.std(0)}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(flat, q, axis=0)
    out = {k: v.reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([len(frames)])
    return out


def read_episode(path: Path, fps: int | None, topic_map: TopicMap | None = None) -> tuple[_Episode, int]:
    """Read one bag and resample its streams on one clock.

    Raises:
        BagError: the bag cannot be read or lacks a needed topic.
    """
    rec = read_recording(path, [*EXPORT_TOPICS, C.TOPIC_PLAN, C.TOPIC_SIM_EPISODE, C.TOPIC_INSTRUCTION],
                         required=EXPORT_TOPICS, topic_map=topic_map)
    t_cmd, tpos, tquat = pose_arrays(rec.get(C.TOPIC_EE_TARGET))
    fps = fps or command_fps(t_cmd)
    n = int(np.floor((t_cmd[-1] - t_cmd[0]) * fps / 1e9 + 1e-6)) + 1
    clock = t_cmd[0] + np.round(np.arange(n) * 1e9 / fps).astype(np.int64)
    t_pose, pos, quat = pose_arrays(rec.get(C.TOPIC_EE_POSE))
    t_joint, widths = gripper_widths(rec.get(C.TOPIC_JOINT_STATES))
    joint_msgs = rec.get(C.TOPIC_JOINT_STATES)
    names = list(joint_msgs[0][1].name)
    joints = np.array([np.asarray(m.position, float) for _, m in joint_msgs])
    grips = rec.get(C.TOPIC_GRIPPER_COMMAND)
    t_grip, grip = np.array([s for s, _ in grips], np.int64), np.array([m.data for _, m in grips], float)
    images = rec.get(C.TOPIC_COLOR_IMAGE)
    t_img = np.array([s for s, _ in images], np.int64)

    def at(stamps: np.ndarray) -> np.ndarray:
        return np.clip(latest_before(stamps, clock), 0, None)

    ip, ij, ic, ig, ii = at(t_pose), at(t_joint), at(t_cmd), at(t_grip), at(t_img)
    state = np.column_stack([pos[ip], quat[ip], widths[ij]]).astype(np.float32)
    action = np.column_stack([tpos[ic], tquat[ic], grip[ig]]).astype(np.float32)
    try:
        decoded = {i: bags.image_to_array(images[i][1]) for i in np.unique(ii)}
    except ValueError as exc:
        raise BagError(f"{path}: {exc}") from exc
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise BagError(f"{path}: colour images must all be HxWx3 of one size, got {sorted(shapes)}")
    pngs = {i: _png(a) for i, a in decoded.items()}
    meta = episode_meta(rec)
    plans, instr = rec.get(C.TOPIC_PLAN), rec.get(C.TOPIC_INSTRUCTION)
    task = (instr[0][1].data if instr else "") or meta.get("instruction") or \
        (plans[0][1].instruction if plans else "") or "unspecified task"
    return _Episode(task, state, joints[ij].astype(np.float32), names, action, [pngs[i] for i in ii],
                    next(iter(shapes)), _image_stats([decoded[i] for i in ii])), fps


def _vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0)
    return out


def _merge_image_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Frame-weighted mean/std, global min/max, frame-weighted quantiles (approximate, as LeRobot aggregates)."""
    w = np.array([p["count"][0] for p in parts], float)
    mean = sum(p["mean"] * c for p, c in zip(parts, w, strict=True)) / w.sum()
    var = sum((p["std"] ** 2 + (p["mean"] - mean) ** 2) * c for p, c in zip(parts, w, strict=True)) / w.sum()
    out = {"min": np.min([p["min"] for p in parts], 0), "max": np.max([p["max"] for p in parts], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(w.sum())])}
    for key in parts[0]:
        if key.startswith("q"):
            out[key] = sum(p[key] * c for p, c in zip(parts, w, strict=True)) / w.sum()
    return out


def _features(ep: _Episode) -> dict[str, dict]:
    h, w, c = ep.image_shape
    return {
        K_STATE: {"dtype": "float32", "shape": [8], "names": POSE_NAMES},
        K_JOINTS: {"dtype": "float32", "shape": [len(ep.joint_names)], "names": ep.joint_names},
        K_ACTION: {"dtype": "float32", "shape": [8], "names": POSE_NAMES},
        K_IMAGE: {"dtype": "image", "shape": [h, w, c], "names": ["height", "width", "channels"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _tolist(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def _write_tasks(tasks: list[str], out: Path) -> None:
    """``meta/tasks.parquet`` as pandas writes a frame indexed by task text with a ``task_index`` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, out / "meta" / "tasks.parquet")


def export_lerobot(paths: list[str | Path], out: Path, fps: int | None = None, robot_type: str = "franka_panda",
                   topic_map: TopicMap | None = None, overwrite: bool = False, progress: bool = True) -> ExportSummary:
    """Export the bags under ``paths`` to a LeRobot v3.0 dataset at ``out`` (see the module docstring).

    Bags that cannot be read are skipped and listed in the summary. All episodes share one fps
    (the first bag's command rate unless given), image size and joint names.

    Raises:
        FileExistsError: ``out`` exists and is not empty (without ``overwrite``).
        ValueError: no bag could be exported.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    summary = ExportSummary(out)
    episodes: list[_Episode] = []
    for path in tqdm(find_bags(paths), desc="export lerobot", unit="bag", disable=not progress):
        try:
            ep, fps = read_episode(path, fps, topic_map)
            if episodes and (ep.image_shape != episodes[0].image_shape or ep.joint_names != episodes[0].joint_names):
                raise BagError(f"{path}: image size {ep.image_shape} / joints {ep.joint_names} differ from the first "
                               f"episode's {episodes[0].image_shape} / {episodes[0].joint_names}")
        except (BagError, ValueError) as exc:
            LOG.error("skipping bag: %s", exc)
            summary.failed.append({"bag": str(path), "error": str(exc)})
            continue
        episodes.append(ep)
    if not episodes:
        raise ValueError(f"no bag could be exported: {[f['error'] for f in summary.failed]}")
    tasks = list(dict.fromkeys(ep.task for ep in episodes))
    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (out / "data" / "chunk-000").mkdir(parents=True)
    features = _features(episodes[0])
    columns: dict[str, list] = {k: [] for k in features}
    ep_rows: list[dict] = []
    per_episode_stats, start = [], 0
    for e, ep in enumerate(episodes):
        n = len(ep.state)
        cols = {K_STATE: ep.state, K_JOINTS: ep.joints, K_ACTION: ep.action,
                "timestamp": (np.arange(n) / fps).astype(np.float32), "frame_index": np.arange(n),
                "episode_index": np.full(n, e), "index": np.arange(start, start + n),
                "task_index": np.full(n, tasks.index(ep.task))}
        for key, values in cols.items():
            columns[key].extend(values.tolist())
        columns[K_IMAGE].extend({"bytes": b, "path": None} for b in ep.images)
        stats = {k: _vector_stats(v) for k, v in cols.items()}
        stats[K_IMAGE] = ep.image_stats
        per_episode_stats.append(stats)
        row = {"episode_index": e, "tasks": [ep.task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
               "dataset_from_index": start, "dataset_to_index": start + n, "meta/episodes/chunk_index": 0,
               "meta/episodes/file_index": 0}
        row.update({f"stats/{k}/{s}": np.asarray(v).tolist() for k, d in stats.items() for s, v in d.items()})
        ep_rows.append(row)
        start += n

    def arrow(key: str) -> pa.Array:
        ft = features[key]
        if ft["dtype"] == "image":
            return pa.array(columns[key], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        value = pa.float32() if ft["dtype"] == "float32" else pa.int64()
        if ft["shape"] == [1]:
            return pa.array(columns[key], value)
        return pa.array(columns[key], pa.list_(value, ft["shape"][0]))

    pq.write_table(pa.table({k: arrow(k) for k in features}), out / DATA_PATH.format(chunk_index=0, file_index=0))
    pq.write_table(pa.Table.from_pylist(ep_rows), out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(tasks, out)
    total = {k: _vector_stats(np.asarray(columns[k])) for k in features if k != K_IMAGE}
    total[K_IMAGE] = _merge_image_stats([s[K_IMAGE] for s in per_episode_stats])
    (out / "meta" / "stats.json").write_text(json.dumps(_tolist(total), indent=2) + "\n")
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
        "total_frames": start, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB, "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": int(fps), "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": None,
        "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
    summary.episodes, summary.frames, summary.fps = len(episodes), start, int(fps)
    summary.bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary.seconds = time.perf_counter() - t0
    return summary
