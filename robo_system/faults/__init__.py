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
takes the next instruction), ``bad_instructions`` (a 100 Hz flood for 10 s, 1 MB, invalid UTF-8),
``plan_publisher_restart`` (the plan's publisher replaced by new processes, a revision then a new plan id
after the first publisher died; cerebellum_node restarted after each, a late joiner that must get the
latched plan of the live publisher, and with two live publishers the newer plan),
``sensor_drop`` (sim_node's ``/robo/ee_pose``, ``/joint_states`` and camera topics through a relay,
:mod:`robo_system.faults.relay`, that drops a seeded 30 %; one episode to its end),
``instruction_burst_first`` (5 oversize instructions the moment brain_node's subscription matches, as
``ros2 topic pub`` waits for a match; and 5 published before, which DDS does not deliver) and
``bogus_state_combined`` (the bogus states of ``bogus_state`` during a failure hold, a cancel and a
``/sim/reset``).

Modules: :mod:`~robo_system.faults.judging` (the envelope, ROS-free), :mod:`~robo_system.faults.harness`
(processes, recording client, verdict), :mod:`~robo_system.faults.scenarios`,
:mod:`~robo_system.faults.dds` and :mod:`~robo_system.faults.combined` (the scenarios),
:mod:`~robo_system.faults.suite` (the table and the runner).
"""


from robo_system.faults.judging import Row, envelope_violations, invalid_utf8_string_cdr
from robo_system.faults.suite import SCENARIOS, rows_json, run_faults, table

__all__ = ["SCENARIOS", "Row", "envelope_violations", "invalid_utf8_string_cdr", "rows_json", "run_faults", "table"]
