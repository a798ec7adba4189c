"""The fault-injection suite: its judging functions (ROS-free) and one short scenario over DDS."""

from __future__ import annotations

import numpy as np
import pytest

from robo_common import constants as C
from robo_common.resources import resource_path
from robo_system.faults import SCENARIOS, envelope_violations, invalid_utf8_string_cdr, run_faults, table
from robo_system.faults.relay import RELAYED, DropCounter, relay_remaps
from robo_system.faults.scenarios import bogus_named
from robo_system.stack import StackConfig


def test_envelope_violations_name_each_kind() -> None:
    ok = np.array([[0.5, 0.0, 0.3], [0.51, 0.0, 0.3], [0.52, 0.0, 0.3]])
    assert envelope_violations(ok) == []
    bad = np.array([[0.5, 0.0, 0.3], [1e9, 0.0, 0.3], [np.nan, 0.0, 0.3], [0.5, 0.0, 0.3]])
    found = " ".join(envelope_violations(bad))
    assert "1 non-finite" in found and "outside the workspace box" in found and "steps above 30 mm" in found
    # a jump onto where the arm now is (a hold after a reset) is not a motion
    jump = np.array([[0.5, 0.0, 0.3], [0.35, 0.0, 0.45]])
    assert envelope_violations(jump) and not envelope_violations(jump, poses=np.array([[0.5, 0, 0.3], [0.36, 0, 0.45]]))


def test_invalid_utf8_cdr_is_a_padded_string_message() -> None:
    cdr = invalid_utf8_string_cdr(b"a\xff")
    assert cdr[:4] == b"\x00\x01\x00\x00" and int.from_bytes(cdr[4:8], "little") == 3 and len(cdr) % 4 == 0


def test_the_relay_drops_the_seeded_share_of_each_topic_reproducibly() -> None:
    a, b = DropCounter(0.3, seed=7), DropCounter(0.3, seed=7)
    kept = [[a.keep(t) for _ in range(2000)] for t in RELAYED]
    assert kept == [[b.keep(t) for _ in range(2000)] for t in RELAYED]
    for topic in RELAYED:
        c = a.counts[topic]
        assert c["forwarded"] + c["dropped"] == 2000 and abs(c["dropped"] / 2000 - 0.3) < 0.04
    with pytest.raises(ValueError):
        DropCounter(1.0, seed=0)


def test_sensor_drop_remaps_only_the_simulators_sensor_topics() -> None:
    remaps = relay_remaps("/faults/raw/")
    assert remaps[C.TOPIC_EE_POSE] == "/faults/raw/robo/ee_pose" and C.TOPIC_CLOCK not in remaps
    cfg = StackConfig(brain="oracle", remaps={"sim_node": remaps})
    sim = cfg.command("sim_node")
    assert f"{C.TOPIC_JOINT_STATES}:=/faults/raw{C.TOPIC_JOINT_STATES}" in sim
    assert not any(":=/faults/raw" in a for a in cfg.command("cerebellum_node"))


def test_every_issue_21_scenario_is_in_the_suite() -> None:
    for name in ("plan_publisher_restart", "sensor_drop", "instruction_burst_first", "bogus_state_combined"):
        assert name in SCENARIOS
    assert bogus_named("x is older than the last one; gripper opening nan") == ["older than the last one",
                                                                                 "gripper opening"]


@pytest.mark.ros
def test_cancel_scenario_over_dds(tmp_path) -> None:
    rows = run_faults(["cancel", "rogue_plans"], log_dir=tmp_path, progress=False)
    assert [r.scenario for r in rows] == ["cancel", "rogue_plans"]
    assert all(r.passed for r in rows), table(rows)


@pytest.mark.ros
def test_state_freeze_on_the_wall_clock_over_dds(tmp_path) -> None:
    # the expert's plan (stamped in simulated time by sim_node) used to lose to the client's stop plan (stamped
    # on the wall clock) in the cerebellum's latched-plan filter: "the plan did not start"
    # the latencies are judged by bench/run_faults.sh (20 trials, alone): here a report that DDS delivers ~1 s
    # late now and then must not fail make test, so only what the fix is about is asserted
    rows = run_faults(["state_freeze"], trials=2, sim_time="false", log_dir=tmp_path, progress=False)
    measured = rows[0].measured
    assert "could not run" not in measured and "resumed 2/2" in measured and "failures 0" in measured, table(rows)


@pytest.mark.slow
@pytest.mark.ros
def test_every_fault_scenario_passes(tmp_path) -> None:
    rows = run_faults(None, trials=3, log_dir=tmp_path, progress=False)
    assert all(r.passed for r in rows), table(rows)


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.parametrize("name", ["plan_publisher_restart", "sensor_drop", "bogus_state_combined"])
def test_issue_21_dds_scenarios_pass(tmp_path, name: str) -> None:
    rows = run_faults([name], log_dir=tmp_path, progress=False)
    assert rows[0].passed, table(rows)


@pytest.mark.ros
def test_every_instruction_of_a_burst_at_discovery_is_rejected_by_name(tmp_path) -> None:
    # ~10 s alone: brain_node's subscription matches before its model loads
    # the small first embedded brain: the scenario tests brain_node's input handling, not a model
    v1 = str(resource_path("models", "brain_embedded"))
    rows = run_faults(["instruction_burst_first"], log_dir=tmp_path, progress=False, brain=v1)
    assert rows[0].passed, table(rows)
