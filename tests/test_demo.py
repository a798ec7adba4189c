"""The closed-loop demo over DDS: three node processes, a recorded bag, a GIF, a summary; and the --ros evaluation."""

from __future__ import annotations

import json

from rosbags.highlevel import AnyReader

from robo_common import constants as C
from robo_system.demo import DemoConfig, run_demo
from robo_system.stack import StackConfig


def test_stack_commands_are_what_the_launch_file_starts() -> None:
    cfg = StackConfig(brain="oracle", namespace="arm1", cerebellum_checkpoint="/ckpt")
    assert cfg.executables() == ["sim_node", "cerebellum_node"]
    sim = cfg.command("sim_node")
    assert sim[1].endswith("nodes/sim_node") and "-r" in sim and "__ns:=/arm1" in sim
    assert any(a.endswith("config/sim.yaml") for a in sim) and "use_sim_time:=false" in sim
    cer = cfg.command("cerebellum_node")
    assert "use_sim_time:=true" in cer and "checkpoint:=/ckpt" in cer and cer[-2:] == ["--log-level", "info"]
    assert StackConfig(brain="/models/x").node_params("brain_node")["model_path"] == "/models/x"
    assert "model_path" not in StackConfig().node_params("brain_node")  # brain_node's default: the embedded model


def test_demo_with_the_oracle_brain_records_a_bag_and_a_gif(tmp_path) -> None:
    lines: list[str] = []
    code = run_demo(DemoConfig(seed=100_000, family="pick_place", brain="oracle", out=tmp_path, timeout_s=45.0),
                    say=lines.append)
    run = next(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert code == (0 if summary["success"] else 1)
    assert summary["plans"] and summary["plans"][0][0].startswith("pick(")
    assert summary["instruction_to_first_command_s"] is not None
    assert set(summary["exit_codes"].values()) == {0}, summary["exit_codes"]
    assert any("plan after" in line for line in lines) and any("state RUNNING" in line for line in lines)
    assert summary["gif_frames"] > 0 and (run / "episode.gif").stat().st_size > 1000
    with AnyReader([run / "bag"]) as reader:
        topics = {c.topic for c in reader.connections if c.msgcount > 0}
    assert {C.TOPIC_EE_TARGET, C.TOPIC_EE_POSE, C.TOPIC_COLOR_IMAGE, C.TOPIC_PLAN, C.TOPIC_EXECUTION_STATUS} <= topics
