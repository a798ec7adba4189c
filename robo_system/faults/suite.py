"""The scenario table, the runner (a fresh stack per scenario) and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from robo_system.faults import scenarios as S
from robo_system.faults.combined import bogus_state_combined
from robo_system.faults.dds import RELAY_PREFIX, instruction_burst_first, plan_publisher_restart, sensor_drop
from robo_system.faults.harness import Harness
from robo_system.faults.judging import Row
from robo_system.faults.relay import relay_remaps
from robo_system.stack import StackConfig

SCENARIOS: dict[str, tuple[str, Callable]] = {
    "state_freeze": ("oracle", S.state_freeze), "bogus_state": ("oracle", S.bogus_state),
    "rogue_plans": ("oracle", S.rogue_plans), "cancel": ("oracle", S.cancel), "bad_camera": ("oracle", S.bad_camera),
    "cerebellum_killed": ("oracle", S.cerebellum_killed), "sim_killed": ("oracle", S.sim_killed),
    "brain_killed": ("embedded", S.brain_killed), "bad_instructions": ("embedded", S.bad_instructions),
    "plan_publisher_restart": ("oracle", plan_publisher_restart), "sensor_drop": ("oracle", sensor_drop),
    "instruction_burst_first": ("embedded", instruction_burst_first),
    "bogus_state_combined": ("oracle", bogus_state_combined),
}
"""Scenario name -> (the brain it needs, the function)."""
STACK_OPTIONS: dict[str, dict] = {"sensor_drop": {"remaps": {"sim_node": relay_remaps(RELAY_PREFIX)}}}
"""Scenario name -> more :class:`StackConfig` fields (sensor_drop: sim_node's sensor topics go to the relay)."""


def run_faults(names: list[str] | None = None, trials: int = 5, sim_time: str = "both",
               log_dir: Path = Path("runs/faults"), progress: bool = True, brain: str = "embedded") -> list[Row]:
    """Run the scenarios (a fresh stack each) and return their rows; ``brain`` is the brain_node model of the
    scenarios that start one (``embedded``: its default)."""
    import rclpy
    from tqdm import tqdm

    names = names or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    runs = []
    for name in names:
        modes = ([True, False] if sim_time == "both" else [sim_time == "true"]) if name == "state_freeze" else [True]
        runs += [(name, m) for m in modes]
    rows = []
    with rclpy.init():
        for name, use_sim in tqdm(runs, desc="fault scenarios", unit="scenario", disable=not progress):
            needs, fn = SCENARIOS[name]
            cfg = StackConfig(brain=brain if needs == "embedded" else needs, use_sim_time=use_sim,
                              log_dir=log_dir / f"{name}-{use_sim}",
                              lockstep_period_s=0.0, **STACK_OPTIONS.get(name, {}))
            h = Harness(cfg)
            try:
                rows.append(fn(h, trials, use_sim) if name == "state_freeze" else fn(h))
            except Exception as exc:  # noqa: BLE001 - a scenario that cannot run is a failed row, not a crash
                rows.append(Row(name, "", f"could not run: {type(exc).__name__}: {exc}"[:500], False))
            finally:
                h.close()
    return rows


def table(rows: list[Row]) -> str:
    """The markdown table of the rows."""
    lines = ["| scenario | expected | measured | result |", "|---|---|---|---|"]
    lines += [f"| {r.scenario} | {r.expected} | {r.measured} | {'pass' if r.passed else 'FAIL'} |" for r in rows]
    return "\n".join(lines) + "\n"


def rows_json(rows: list[Row]) -> list[dict]:
    """The rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]


