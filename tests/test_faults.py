"""The fault-injection suite: its judging functions (ROS-free) and one short scenario over DDS."""

from __future__ import annotations

import numpy as np
import pytest

from robo_system.faults import envelope_violations, invalid_utf8_string_cdr, run_faults, table


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


@pytest.mark.ros
def test_cancel_scenario_over_dds(tmp_path) -> None:
    rows = run_faults(["cancel", "rogue_plans"], log_dir=tmp_path, progress=False)
    assert [r.scenario for r in rows] == ["cancel", "rogue_plans"]
    assert all(r.passed for r in rows), table(rows)


@pytest.mark.slow
@pytest.mark.ros
def test_every_fault_scenario_passes(tmp_path) -> None:
    rows = run_faults(None, trials=3, log_dir=tmp_path, progress=False)
    assert all(r.passed for r in rows), table(rows)
