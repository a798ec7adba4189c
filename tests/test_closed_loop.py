"""Closed loop in one process: a brain (oracle or embedded) + the shipped cerebellum + the simulator, corrections."""

from __future__ import annotations

import pytest

from robo_cerebellum.closed_loop import (
    BrainSpec,
    ClosedLoopConfig,
    correction_table,
    correction_value,
    evaluate,
)
from robo_common.resources import resource_path

CEREBELLUM = resource_path("models", "cerebellum")


def test_correction_value_on_a_slip_with_the_oracle_brain() -> None:
    # seed 100001, pick_place: the block slips out during the carry; the monitor reports object_dropped
    result = correction_value(CEREBELLUM, BrainSpec.parse("oracle"), 1, "seen", ["slip"], seed0=100_001, workers=1,
                              cfg=ClosedLoopConfig(timeout_s=30.0), progress=False)
    row = result["modes"]["slip"]
    assert row["episodes"] == 1 and row["detected"] == 1
    assert row["corrections"] >= 1 and row["success_without_correction"] == 0.0
    assert row["success_with_correction"] == 1.0 and row["recovered_by_revision"] == 1
    assert result["gain_points"] == pytest.approx(100.0)
    table = correction_table(result)
    assert "| slip | 0% | 100% |" in table and "| **all** |" in table


def test_embedded_brain_closed_loop_report_fields() -> None:
    report = evaluate(CEREBELLUM, 1, "seen", workers=1, cfg=ClosedLoopConfig(timeout_s=5.0, max_corrections=1),
                      progress=False, brain=BrainSpec.parse("embedded"))
    assert report["brain"] == "brain_embedded" and report["episodes"] == 1
    for key in ("overall_success", "success_rate", "corrections", "first_command_s_p50", "time_to_success_s_median"):
        assert key in report
    assert report["corrections"] <= 1
    # either it planned (a first command was sent) or its planning failure is counted
    assert report["first_command_s_p50"] is not None or report["brain_failures"] == 1


def test_brain_spec_rejects_a_folder_without_a_checkpoint(tmp_path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        BrainSpec.parse(str(tmp_path))
    assert BrainSpec.parse("oracle").name == "oracle"
