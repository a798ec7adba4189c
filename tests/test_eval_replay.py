"""Online replay over DDS: `robo-stack replay` publishes a bag at recorded timing with /clock, `robo-stack record`
captures what is on the wire into a new bag, and the offline scorer reads that bag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robo_common import constants as C
from robo_eval.bagread import read_recording
from robo_eval.models import RecordedModel
from robo_eval.offline import evaluate_bags
from tests import eval_bags as fixtures
from tests.ros_helpers import REPO_ROOT

pytestmark = pytest.mark.ros

eval_bags = fixtures.eval_bags
tiny_checkpoint = fixtures.tiny_checkpoint
CLI = [sys.executable, "-m", "robo_cli"]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                            env=os.environ.copy())


def _replay(bag: Path, *extra: str) -> dict:
    out = subprocess.run([*CLI, "replay", str(bag), "--json", *extra], capture_output=True, text=True, cwd=REPO_ROOT,
                         env=os.environ.copy(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(2)
        proc.wait(10)
        pytest.fail(f"recorder did not stop by itself:\n{log.read_text()[-2000:]}")
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_replay_publishes_at_recorded_timing_and_the_recording_scores_zero(eval_bags: list[Path],
                                                                             tmp_path: Path) -> None:
    bag, out, log = eval_bags[0], tmp_path / "captured", tmp_path / "record.log"
    topics = [C.TOPIC_EE_TARGET, C.TOPIC_GRIPPER_COMMAND, C.TOPIC_CLOCK, C.TOPIC_PLAN, C.TOPIC_COLOR_IMAGE]
    recorder = _start(["record", str(out), "--topics", *topics, "--use-sim-time", "--idle-timeout", "2"], log)
    played = _replay(bag, "--rate", "4", "--wait-for", C.TOPIC_EE_TARGET, C.TOPIC_COLOR_IMAGE)
    _wait(recorder, log)
    original = read_recording(bag)
    assert played["wall_s"] == pytest.approx(original.duration_s / 4, rel=0.25)
    captured = read_recording(out)
    for topic in (C.TOPIC_EE_TARGET, C.TOPIC_GRIPPER_COMMAND, C.TOPIC_PLAN):  # reliable topics: every message
        assert len(captured.get(topic)) == len(original.get(topic)), topic
    assert len(captured.get(C.TOPIC_COLOR_IMAGE)) >= 0.8 * len(original.get(C.TOPIC_COLOR_IMAGE))  # best effort
    clock = np.array([m.clock.sec * 10**9 + m.clock.nanosec for _, m in captured.get(C.TOPIC_CLOCK)])
    assert len(clock) > 50 and np.all(np.diff(clock) >= 0)
    assert (clock[-1] - clock[0]) / 1e9 == pytest.approx(original.duration_s, abs=0.2)
    # the recorder stamps with /clock time: the captured bag spans the original's (simulated) duration
    assert captured.duration_s == pytest.approx(original.duration_s, abs=0.3)
    s = evaluate_bags([bag], RecordedModel(candidate=out), progress=False).summary()
    assert s["bags_scored"] == 1 and s["steps_unmatched"] == 0
    assert s["translation_error_cm_median"] == 0.0 and s["rotation_error_deg_p90"] < 1e-3
    # std_msgs/Float64 has no header: the recorder stamps it on receipt with the latest /clock it has seen,
    # which can be one control step early at a gripper switch
    assert s["gripper_agreement"] >= 0.97


def test_inputs_only_leaves_the_outputs_to_the_live_nodes(eval_bags: list[Path], tmp_path: Path) -> None:
    out, log = tmp_path / "inputs", tmp_path / "record.log"
    recorder = _start(["record", str(out), "--all", "--idle-timeout", "2", "--storage", "sqlite3"], log)
    time.sleep(1.0)
    played = _replay(eval_bags[1], "--rate", "5", "--inputs-only", "--start-delay", "2")
    _wait(recorder, log)
    assert C.TOPIC_EE_TARGET not in played["topics"] and C.TOPIC_EE_POSE in played["topics"]
    captured = read_recording(out)
    assert next(out.glob("*.db3"))
    assert C.TOPIC_EE_TARGET not in captured.messages and C.TOPIC_PLAN in captured.messages
    assert C.TOPIC_CLOCK in captured.messages


def test_replay_of_a_broken_bag_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "nobag").mkdir()
    out = subprocess.run([*CLI, "replay", str(tmp_path / "nobag")], capture_output=True, text=True, cwd=REPO_ROOT,
                         env=os.environ.copy(), timeout=60)
    assert out.returncode == 1 and "no metadata.yaml" in out.stderr


@pytest.mark.slow
def test_live_cerebellum_node_evaluated_online(eval_bags: list[Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The real cerebellum_node on the replayed inputs (sim time); its recorded outputs are scored offline."""
    from tests.ros_helpers import NodeProcess

    node = NodeProcess("robo_cerebellum.node", {"use_sim_time": True, "checkpoint": str(tiny_checkpoint),
                                                "image_timeout_s": 0.0}, log_dir=tmp_path)
    out, log = tmp_path / "live", tmp_path / "record.log"
    recorder = _start(["record", str(out), "--topics", C.TOPIC_EE_TARGET, C.TOPIC_GRIPPER_COMMAND,
                       "--use-sim-time", "--duration", "25"], log)
    try:
        _replay(eval_bags[0], "--rate", "1", "--inputs-only", "--wait-for", C.TOPIC_EE_POSE, C.TOPIC_PLAN)
        time.sleep(1.0)
    finally:
        recorder.send_signal(2)
        recorder.wait(20)
        node.stop()
    s = evaluate_bags([eval_bags[0]], RecordedModel(candidate=out), progress=False).summary()
    assert s["bags_scored"] == 1 and s["steps_scored"] > 10, (s, node.log()[-2000:])
    assert s["translation_error_cm_median"] is not None and s["translation_error_cm_median"] > 0.0


def test_player_applies_the_topic_map(eval_bags: list[Path], tmp_path: Path) -> None:
    from robo_common import bags
    from robo_eval.bagread import TopicMap
    from robo_eval.ros.player import PlayConfig, load_messages
    from tests.eval_bags import rewrite_bag

    theirs = rewrite_bag(eval_bags[0], tmp_path / "fr3", rename={C.TOPIC_EE_POSE: "/fr3/ee_pose"},
                         frames={C.BASE_FRAME: "fr3_link0"})
    tmap = TopicMap({"/fr3/ee_pose": C.TOPIC_EE_POSE}, {"fr3_link0": C.BASE_FRAME})
    messages, types = load_messages(theirs, PlayConfig(topics=(C.TOPIC_EE_POSE,)), tmap)
    assert types == {C.TOPIC_EE_POSE: "geometry_msgs/msg/PoseStamped"} and len(messages) > 50
    assert all(t == C.TOPIC_EE_POSE for _, t, _ in messages)
    first = bags.typestore().deserialize_cdr(messages[0][2], types[C.TOPIC_EE_POSE])
    assert first.header.frame_id == C.BASE_FRAME
    assert [s for s, _, _ in messages] == sorted(s for s, _, _ in messages)
