"""LeRobot export: the v3.0 layout field by field, streams aligned on one clock, bad bags skipped."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from robo_cli.main import main
from robo_common import constants as C
from robo_common.bags import pose_arrays
from robo_eval.bagread import read_recording
from robo_eval.episode import latest_before
from robo_eval.lerobot_export import K_ACTION, K_IMAGE, K_STATE, export_lerobot
from tests import eval_bags as fixtures

eval_bags = fixtures.eval_bags

INFO_KEYS = {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
             "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features"}
EPISODE_COLUMNS = {"episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                   "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"}
STATS = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}


@pytest.fixture(scope="module")
def exported(eval_bags: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "ds"
    summary = export_lerobot(eval_bags, out, progress=False)
    assert summary.episodes == 3 and not summary.failed
    return out


def test_info_json_matches_the_v3_layout(exported: Path) -> None:
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert set(info) == INFO_KEYS and info["codebase_version"] == "v3.0"
    assert info["fps"] == 20 and info["total_episodes"] == 3 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None
    feats = info["features"]
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert feats[key]["shape"] == [1] and feats[key]["names"] is None
    assert feats[K_STATE] == {"dtype": "float32", "shape": [8], "names": ["x", "y", "z", "qx", "qy", "qz", "qw",
                                                                          "gripper"]}
    assert feats[K_IMAGE] == {"dtype": "image", "shape": [64, 64, 3], "names": ["height", "width", "channels"]}
    assert len(feats["observation.joint_positions"]["names"]) == feats["observation.joint_positions"]["shape"][0]


def test_data_episodes_tasks_and_stats(exported: Path) -> None:
    info = json.loads((exported / "meta" / "info.json").read_text())
    data = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet")
    assert set(data.column_names) == set(info["features"]) and data.num_rows == info["total_frames"]
    state_type = data.schema.field(K_STATE).type
    assert pa.types.is_fixed_size_list(state_type) and state_type.list_size == 8
    assert state_type.value_type == pa.float32()
    rows = data.to_pydict()
    assert rows["index"] == list(range(data.num_rows))
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1, 2]
    for e in episodes:
        assert EPISODE_COLUMNS <= set(e) and e["dataset_to_index"] - e["dataset_from_index"] == e["length"]
        frames = rows["frame_index"][e["dataset_from_index"]:e["dataset_to_index"]]
        assert frames == list(range(e["length"]))
        assert {f"stats/{K_ACTION}/{s}" for s in STATS} <= set(e)
    tasks = pq.read_table(exported / "meta" / "tasks.parquet")
    assert b"pandas" in tasks.schema.metadata  # pandas restores the task text as the index
    assert tasks.column("task_index").to_pylist() == list(range(info["total_tasks"]))
    assert sorted(set(rows["task_index"])) == list(range(info["total_tasks"]))
    stats = json.loads((exported / "meta" / "stats.json").read_text())
    assert set(stats) == set(info["features"]) and all(set(s) == STATS for s in stats.values())
    assert np.asarray(stats[K_IMAGE]["mean"]).shape == (3, 1, 1) and stats[K_STATE]["count"] == [data.num_rows]
    assert np.allclose(stats[K_STATE]["mean"], np.mean(rows[K_STATE], axis=0), atol=1e-5)


def test_streams_are_aligned_on_one_clock(exported: Path, eval_bags: list[Path]) -> None:
    rows = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    rec = read_recording(eval_bags[0])
    t_cmd, tpos, _ = pose_arrays(rec.get(C.TOPIC_EE_TARGET))
    t_pose, pos, _ = pose_arrays(rec.get(C.TOPIC_EE_POSE))
    images = rec.get(C.TOPIC_COLOR_IMAGE)
    n = sum(1 for e in rows["episode_index"] if e == 0)
    for k in (0, 7, 33, n - 1):  # camera at 5 Hz, state and commands at 20 Hz
        t = t_cmd[0] + round(k * 1e9 / 20)
        assert np.allclose(rows[K_STATE][k][:3], pos[latest_before(t_pose, np.array([t]))[0]], atol=1e-6)
        assert np.allclose(rows[K_ACTION][k][:3], tpos[latest_before(t_cmd, np.array([t]))[0]], atol=1e-6)
        want = images[latest_before(np.array([s for s, _ in images]), np.array([t]))[0]][1]
        got = np.asarray(Image.open(io.BytesIO(rows[K_IMAGE][k]["bytes"])))
        assert np.array_equal(got, np.frombuffer(bytes(want.data), np.uint8).reshape(want.height, want.width, 3))
        assert rows["timestamp"][k] == pytest.approx(k / 20, abs=1e-6)


def test_cli_skips_a_bad_bag_and_refuses_to_overwrite(eval_bags: list[Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    out = tmp_path / "ds"
    assert main(["export", "lerobot", str(eval_bags[0]), str(bad), str(out), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 1 and summary["bags_failed"] == 1 and "bad" in summary["failed"][0]["error"]
    assert main(["export", "lerobot", str(eval_bags[0]), str(out)]) == 1  # exists, no --overwrite
    assert main(["export", "lerobot", str(eval_bags[0]), str(out), "--overwrite", "--fps", "10"]) == 0
    assert json.loads((out / "meta" / "info.json").read_text())["fps"] == 10
