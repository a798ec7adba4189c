"""Offline rosbag replay evaluation: metric floor and truth, cerebellum modes, bad bags, topic maps, report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robo_cli.main import main
from robo_common import constants as C
from robo_eval.bagread import BagError, TopicMap, read_recording
from robo_eval.episode import CEREBELLUM_TOPICS, build_episode
from robo_eval.models import CerebellumModel, OffsetModel, RecordedModel
from robo_eval.offline import evaluate_bags
from robo_eval.report import write_report
from tests import eval_bags as fixtures
from tests.eval_bags import rewrite_bag

eval_bags = fixtures.eval_bags
tiny_checkpoint = fixtures.tiny_checkpoint


def test_recorded_commands_score_the_floor(eval_bags: list[Path]) -> None:
    s = evaluate_bags(eval_bags, RecordedModel(), progress=False).summary()
    assert s["bags_scored"] == 3 and s["bags_failed"] == 0 and s["steps_unmatched"] == 0
    assert s["translation_error_cm_median"] == 0.0 and s["translation_error_cm_p90"] == 0.0
    assert s["rotation_error_deg_p90"] < 1e-3 and s["gripper_agreement"] == 1.0
    fd = s["failure_detection"]
    assert fd["labelled"] == 1 and fd["precision"] == 1.0 and fd["recall"] == 1.0  # the slip episode
    assert set(s["per_skill"]) == {"pick", "place"}
    assert s["realtime_factor"] > 1.0


def test_offset_model_scores_the_offset(eval_bags: list[Path]) -> None:
    model = OffsetModel(RecordedModel(), np.array([0.012, -0.016, 0.0]), yaw_deg=7.5)  # |offset| = 2 cm
    s = evaluate_bags(eval_bags, model, progress=False).summary()
    assert s["translation_error_cm_median"] == pytest.approx(2.0, abs=1e-3)
    assert s["translation_error_cm_p90"] == pytest.approx(2.0, abs=1e-3)
    assert s["rotation_error_deg_median"] == pytest.approx(7.5, abs=1e-2)
    for per_bag in s["per_bag"]:
        for sub in per_bag["per_subtask"].values():
            assert sub["translation_error_cm_median"] == pytest.approx(2.0, abs=1e-3)


def test_cerebellum_parallel_replay_matches_recurrent_stepping(eval_bags: list[Path], tiny_checkpoint: Path) -> None:
    import torch

    torch.set_num_threads(1)
    rec = read_recording(eval_bags[0], CEREBELLUM_TOPICS, required=CEREBELLUM_TOPICS)
    ep = build_episode(rec)
    par = CerebellumModel.load(tiny_checkpoint, mode="parallel").run(ep)
    seq = CerebellumModel.load(tiny_checkpoint, mode="recurrent").run(ep)
    assert par.valid.sum() == seq.valid.sum() > 50
    v = par.valid
    assert np.abs(par.target_pos[v] - seq.target_pos[v]).max() < 1e-4
    assert np.abs(np.abs(np.sum(par.target_quat[v] * seq.target_quat[v], axis=1)) - 1).max() < 1e-5
    assert np.abs(par.failure_probability[v] - seq.failure_probability[v]).max() < 1e-4
    assert np.all(seq.latency_s[v] > 0)
    # an offset around the real policy shows up on top of its own error
    shifted = OffsetModel(CerebellumModel.load(tiny_checkpoint), np.array([0.0, 0.0, 0.02])).run(ep)
    assert np.allclose(shifted.target_pos[v] - par.target_pos[v], [0.0, 0.0, 0.02], atol=1e-6)


def _broken_bags(good: Path, root: Path) -> dict[str, Path]:
    root.mkdir()
    truncated = root / "truncated"
    shutil.copytree(good, truncated)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])
    corrupt = root / "corrupt"
    shutil.copytree(good, corrupt)
    mcap = next(corrupt.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    data[100:4000] = np.random.default_rng(0).integers(0, 256, 3900, dtype=np.uint8).tobytes()
    mcap.write_bytes(bytes(data))
    empty = root / "empty"
    empty.mkdir()
    no_messages = rewrite_bag(good, root / "no_messages", drop=tuple(read_recording(good).messages))
    return {"truncated": truncated, "corrupt": corrupt, "empty": empty, "no_messages": no_messages,
            "missing": root / "does_not_exist"}


def test_bad_bags_are_reported_skipped_and_fail_the_exit_code(eval_bags: list[Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = _broken_bags(eval_bags[0], tmp_path / "bad")
    for name, path in bad.items():
        with pytest.raises(BagError, match=str(path.name)):
            build_episode(read_recording(path, required=CEREBELLUM_TOPICS))
        assert name
    code = main(["eval", "bag", str(eval_bags[0]), *map(str, bad.values()), str(eval_bags[1]), "--model", "recorded",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["bags_scored"] == 2 and out["bags_failed"] == len(bad)
    errors = {Path(f["bag"]).name: f["error"] for f in out["failed"]}
    assert "no metadata.yaml" in errors["empty"] and "no such bag" in errors["does_not_exist"]
    assert "truncated or corrupt" in errors["truncated"] or "missing topic" in errors["truncated"]
    assert "empty" in errors["no_messages"] or "missing topic" in errors["no_messages"]
    assert out["translation_error_cm_median"] == 0.0


def test_topic_map_renames_topics_and_frames(eval_bags: list[Path], tmp_path: Path) -> None:
    theirs = rewrite_bag(eval_bags[0], tmp_path / "fr3", rename={C.TOPIC_EE_POSE: "/fr3/ee_pose",
                                                                  C.TOPIC_EE_TARGET: "/fr3/cmd_pose"},
                         frames={C.BASE_FRAME: "fr3_link0"}, storage="sqlite3")
    assert next(theirs.glob("*.db3"))
    with pytest.raises(BagError, match=r"missing topic.*'/robo/ee_pose'"):
        read_recording(theirs, required=CEREBELLUM_TOPICS)
    yaml_path = tmp_path / "map.yaml"
    yaml_path.write_text("topics:\n  /fr3/ee_pose: /robo/ee_pose\n  /fr3/cmd_pose: /robo/ee_target\n")
    with pytest.raises(BagError, match="frame 'fr3_link0'"):
        read_recording(theirs, required=CEREBELLUM_TOPICS, topic_map=TopicMap.load(yaml_path))
    yaml_path.write_text(yaml_path.read_text() + "frames:\n  fr3_link0: panda_link0\n")
    s = evaluate_bags([theirs], RecordedModel(), TopicMap.load(yaml_path), progress=False).summary()
    assert s["bags_scored"] == 1 and s["translation_error_cm_median"] == 0.0
    bad_map = tmp_path / "bad.yaml"
    bad_map.write_text("topic:\n  /a: /b\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['topic'\]"):
        TopicMap.load(bad_map)


def test_wrong_or_unknown_message_type_is_named(eval_bags: list[Path], tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer

    from robo_common import bags

    path = tmp_path / "weird"
    writer = Writer(path, version=9)
    writer.open()
    conn = writer.add_connection(C.TOPIC_EE_POSE, "std_msgs/msg/String", typestore=bags.typestore())
    writer.write(conn, 1, bags.typestore().serialize_cdr(bags.string("x"), "std_msgs/msg/String"))
    other = writer.add_connection("/vendor/thing", "vendor_msgs/msg/Thing", msgdef="", rihs01="RIHS01_" + "0" * 64)
    writer.write(other, 2, b"\x00\x01\x00\x00")
    writer.close()
    with pytest.raises(BagError, match="/robo/ee_pose has type std_msgs/msg/String, expected geometry_msgs"):
        read_recording(path, [C.TOPIC_EE_POSE])
    with pytest.raises(BagError, match="unknown message type 'vendor_msgs/msg/Thing' on topic /vendor/thing"):
        read_recording(path, ["/vendor/thing"])


def test_cli_report_with_cerebellum(eval_bags: list[Path], tiny_checkpoint: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report"
    code = main(["eval", "bag", *map(str, eval_bags), "--model", "cerebellum", "--checkpoint", str(tiny_checkpoint),
                 "--json", "--report", str(report)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["bags_scored"] == 3 and out["bags_failed"] == 0
    for key in ("realtime_factor", "translation_error_cm_median", "rotation_error_deg_median", "latency_ms_p50"):
        assert isinstance(out[key], float) and out[key] > 0
    saved = json.loads((report / "report.json").read_text())
    assert len(saved["per_bag"]) == 3 and saved["per_bag"][0]["per_subtask"]
    rows = (report / "steps.csv").read_text().splitlines()
    assert rows[0].startswith("bag,step,time_s") and len(rows) == 1 + sum(p["steps"] for p in saved["per_bag"])
    md = (report / "summary.md").read_text()
    assert "translation_error_cm_median" in md and "![trajectory.png](trajectory.png)" in md
    for png in ("error_over_time.png", "trajectory.png", "error_histograms.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (report / png).stat().st_size > 5000


def test_write_report_without_plots_for_no_scores(tmp_path: Path) -> None:
    from robo_eval.offline import EvalResult

    result = EvalResult("x", failed=[{"bag": "b", "error": "b: bag is empty (no messages)"}])
    paths = write_report(result, tmp_path)
    assert "bag is empty" in paths["markdown"].read_text() and set(paths) == {"json", "markdown"}


def test_brain_replay_plans_from_the_first_frame(eval_bags: list[Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A scripted brain that answers the expert's plan: plan match 1, keypoints within the lifting error."""
    from robo_common.plan_language import format_plan_text

    rec = read_recording(eval_bags[0])
    ep = build_episode(rec)
    answers = tmp_path / "answers.txt"
    answers.write_text(format_plan_text(ep.reference_plan, reasoning="the expert's plan"))
    code = main(["eval", "bag", str(eval_bags[0]), "--model", "brain", "--brain-backend", "scripted",
                 "--checkpoint", str(answers), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["bags_scored"] == 1
    assert out["plan_exact_match"] == 1.0 and out["subtask_f1"] == 1.0 and out["parse_failure_rate"] == 0.0
    assert 0.0 <= out["keypoint_error_cm_median"] < 5.0  # pixel lifted onto the visible surface vs the 3D point
    assert out["latency_ms_p50"] > 0 and out["translation_error_cm_median"] is None


def test_shipped_topic_map_example_loads() -> None:
    example = TopicMap.load(Path(__file__).resolve().parent.parent / "config" / "topic_map_example.yaml")
    assert example.ours("/fr3/measured_ee_pose") == C.TOPIC_EE_POSE and example.frame("fr3_link0") == C.BASE_FRAME
    assert example.theirs(C.TOPIC_EE_TARGET) == "/fr3/commanded_ee_pose"
