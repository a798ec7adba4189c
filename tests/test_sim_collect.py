"""Episode bags: written by `sim collect`, opened with rosbags' own reader and with rclpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from robo_stack.msg import ExecutionStatus, FailureReport, Plan
from rosbags.rosbag2 import Reader

from robo_common import bags
from robo_common import constants as C
from robo_common.bags import read_episode_metadata
from robo_sim.collect import PARTIAL, CollectConfig, collect
from robo_sim.recording import BAG_TOPICS


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CollectConfig]:
    out = tmp_path_factory.mktemp("bags")
    cfg = CollectConfig(episodes=2, split="seen", seed0=3, perturb=("slip",), perturb_fraction=0.5,
                        family="pick_place")
    summary = collect(cfg, out, workers=1, progress=False)
    assert summary.written == 2 and not summary.failed
    return out, cfg


def _read(path: Path) -> tuple[dict[str, list], dict[str, str], dict]:
    msgs: dict[str, list] = {}
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((stamp, raw))
    return msgs, types, read_episode_metadata(path)


def test_bag_topics_types_counts(collection) -> None:
    out, cfg = collection
    clean = out / cfg.episode_name(0)
    assert (clean / "metadata.yaml").is_file() and list(clean.glob("*.mcap"))
    msgs, types, meta = _read(clean)
    assert types == BAG_TOPICS
    assert json.loads(bags.typestore().deserialize_cdr(msgs[C.TOPIC_SIM_EPISODE][0][1], "std_msgs/msg/String").data)[
        "seed"] == meta["seed"]
    steps = meta["n_steps"]
    assert meta["success"] is True and meta["family"] == "pick_place" and steps > 50
    assert len(msgs[C.TOPIC_EE_POSE]) == steps + 1  # the initial state plus one per control step
    assert len(msgs[C.TOPIC_EE_TARGET]) == steps == len(msgs[C.TOPIC_GRIPPER_COMMAND])
    every = cfg.render_every
    assert len(msgs[C.TOPIC_COLOR_IMAGE]) == 1 + (steps + every - 1) // every
    assert len(msgs[C.TOPIC_PLAN]) == len(msgs[C.TOPIC_SIM_EPISODE]) == 1
    assert C.TOPIC_FAILURE not in msgs
    stamps = [s for s, _ in msgs[C.TOPIC_EE_POSE]]
    assert stamps == sorted(stamps) and np.allclose(np.diff(stamps), 1e9 / cfg.control_hz, atol=1e3)


def test_images_decode_and_custom_messages_deserialize(collection) -> None:
    out, cfg = collection
    msgs, types, _ = _read(out / cfg.episode_name(0))
    store = bags.typestore()
    rgb = bags.image_to_array(store.deserialize_cdr(msgs[C.TOPIC_COLOR_IMAGE][3][1], types[C.TOPIC_COLOR_IMAGE]))
    depth = bags.image_to_array(store.deserialize_cdr(msgs[C.TOPIC_DEPTH_IMAGE][3][1], types[C.TOPIC_DEPTH_IMAGE]))
    assert rgb.shape == (cfg.image_size, cfg.image_size, 3) and rgb.dtype == np.uint8 and rgb.std() > 5
    assert depth.shape == (cfg.image_size, cfg.image_size) and 0.3 < float(np.median(depth)) < 3.0
    plan_raw = msgs[C.TOPIC_PLAN][0][1]
    plan = bags.plan_from_bag_msg(store.deserialize_cdr(plan_raw, "robo_stack/msg/Plan"))
    assert plan.subtasks[0].code.startswith("pick(") and plan.subtasks[-1].code == "done()"
    # The same bytes are a valid robo_stack/Plan for the real ROS 2 message classes.
    ros_plan = deserialize_message(plan_raw, Plan)
    assert ros_plan.subtasks[0].code == plan.subtasks[0].code
    assert ros_plan.subtasks[0].keypoints[0].name == "grasp"
    status = deserialize_message(msgs[C.TOPIC_EXECUTION_STATUS][-1][1], ExecutionStatus)
    assert status.state == ExecutionStatus.SUCCEEDED


def test_perturbed_episode_is_labelled(collection) -> None:
    out, cfg = collection
    assert cfg.episode_name(1).endswith("_slip")
    msgs, _, meta = _read(out / cfg.episode_name(1))
    assert meta["perturbation"] is not None and meta["success"] is False
    assert meta["failures"][0]["kind"] == "object_dropped"
    report = deserialize_message(msgs[C.TOPIC_FAILURE][0][1], FailureReport)
    assert report.kind == FailureReport.KIND_OBJECT_DROPPED and report.header.frame_id == C.BASE_FRAME
    assert report.measured_pose.orientation.w != 0 or report.measured_pose.orientation.x != 0


def test_resume_skips_finished_and_cleans_partials(collection) -> None:
    out, cfg = collection
    (out / PARTIAL / "ep_seen_999999").mkdir(parents=True)
    more = CollectConfig(**{**cfg.__dict__, "episodes": 3})
    summary = collect(more, out, workers=1, progress=False)
    assert (summary.skipped_existing, summary.written) == (2, 1)
    assert not (out / PARTIAL).exists()
    with pytest.raises(ValueError, match="other settings"):
        collect(CollectConfig(**{**cfg.__dict__, "split": "unseen"}), out, workers=1, progress=False)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="perturbation mode"):
        CollectConfig(episodes=1, perturb=("explode",))
    with pytest.raises(ValueError, match="camera_hz"):
        CollectConfig(episodes=1, control_hz=20, camera_hz=3)
