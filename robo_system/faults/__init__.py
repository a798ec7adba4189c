"""``robo-stack check faults``: the stack attacked over DDS, one fault per scenario, every command judged.

Each scenario starts the nodes as :mod:`robo_system.stack` does (the oracle brain — the simulator's
expert plan — where the brain is not under test, brain_node where it is), loads the demo's task,
starts the plan, injects one fault and records every ``/robo/ee_target`` and
``/robo/gripper_command`` with its arrival time. A scenario passes when its expected behaviour is
measured, no node crashed, every command stayed inside the safety envelope
(:func:`envelope_violations`) and the cause was named on the status topic (and the log).

Scenarios (:data:`SCENARIOS`): ``state_freeze`` (sim_node paused with SIGSTOP; ``--trials`` times; the
time from the last state to the HOLDING report, with and without ``use_sim_time``), ``sim_killed``
(SIGKILL, then a new sim_node), ``bogus_state`` (1e9, NaN, wrong frame and out-of-order poses and bad
joint states, with stop plans on top), ``rogue_plans``, ``cancel``, ``bad_camera`` (wrong encoding,
wrong size, 0x0 frames), ``cerebellum_killed``, ``brain_killed`` (SIGKILL mid-plan, a new brain_node
takes the next instruction) and ``bad_instructions`` (a 100 Hz flood for 10 s, 1 MB, invalid UTF-8).
"""


from robo_system.faults.judging import Row, envelope_violations, invalid_utf8_string_cdr
from robo_system.faults.suite import SCENARIOS, rows_json, run_faults, table

__all__ = ["SCENARIOS", "Row", "envelope_violations", "invalid_utf8_string_cdr", "rows_json", "run_faults", "table"]
