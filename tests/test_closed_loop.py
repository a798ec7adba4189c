"""Closed loop in one process: a brain (oracle or embedded) + the shipped cerebellum + the simulator, corrections."""

from __future__ import annotations

import time

import pytest

from robo_common.resources import resource_path
from robo_system.closed_loop import (
    BrainSpec,
    ClosedLoopConfig,
    correction_table,
    correction_value,
    evaluate,
)

CEREBELLUM = resource_path("models", "cerebellum")
V1 = resource_path("models", "brain_embedded")
"""The first embedded brain (small, loads in a second); the default brain v2 is tested in test_brain_lm.py."""


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
                      progress=False, brain=BrainSpec.parse(str(V1)))
    assert report["brain"] == "brain_embedded" and report["episodes"] == 1
    for key in ("overall_success", "success_rate", "corrections", "first_command_s_p50", "time_to_success_s_median"):
        assert key in report
    assert report["corrections"] <= 1
    ver = report["verdict"]
    assert len(report["verdict_mismatches"]) == ver["succeeded_but_world_failure"] + ver["failed_but_world_success"]
    # either it planned (a first command was sent) or its planning failure is counted
    assert report["first_command_s_p50"] is not None or report["brain_failures"] == 1


def test_brain_spec_rejects_a_folder_without_a_checkpoint(tmp_path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        BrainSpec.parse(str(tmp_path))
    assert BrainSpec.parse("oracle").name == "oracle"


def test_world_failure_confirms_only_what_the_simulator_shows() -> None:
    """A detection in a clean episode counts as right only when the ground truth agrees at that moment."""
    import numpy as np

    from robo_sim.expert import expert_plan
    from robo_sim.judge import world_failure
    from robo_sim.scene import build_scene
    from robo_sim.tasks import make_task
    from robo_sim.world import SimWorld, WorldConfig

    world = SimWorld(WorldConfig())
    try:
        task = make_task(100_001, "seen", "pick_place")
        build_scene(world, task.scene)
        plan = expert_plan(task, world)
        assert plan.subtasks[0].skill == "pick" and plan.subtasks[1].skill == "place"
        # nothing wrong yet: the learned head firing now is a false alarm; a stall is a fact
        assert world_failure(world, plan, 0, "low_confidence") == ""
        assert world_failure(world, plan, 0, "no_progress") == "no_progress"
        # during the place the block is not in the hand: it was dropped (or never taken)
        assert "from the hand" in world_failure(world, plan, 1, "object_dropped")
        # the block was knocked away from its grasp keypoint
        name = plan.subtasks[0].code.split('"')[1]
        body = world.object_by_name(name).body_id
        pos, quat = world.object_pose(body)
        world.move_object(body, pos + np.array([0.08, 0.0, 0.0]), quat)
        assert "from its grasp keypoint" in world_failure(world, plan, 0, "low_confidence")
        # fingers closed on nothing with the block just below them (the hand stopped short of it): a missed
        # grasp, though the block is within the "in the hand" radius of the TCP
        world.move_object(body, pos, quat)
        _, down = world.ee_target
        for _ in range(400):  # the world limits each commanded step: walk the hand down to 5 cm above the block
            world.set_ee_target(pos + np.array([0.0, 0.0, 0.05]), down)
            world.step_control()
        world.set_gripper(0.0)
        world.settle(1.0)
        assert world.gripper_width01() < 0.2 and np.linalg.norm(world.ee_pose()[0] - pos) < 0.06
        assert "fingers closed on nothing" in world_failure(world, plan, 0, "grasp_missed")
    finally:
        world.close()


def test_verdict_matrix_counts_where_the_stack_and_the_world_agree() -> None:
    from robo_system.closed_loop import verdict_matrix

    m = verdict_matrix([(True, True), (False, True), (False, False), (True, True)])
    assert m["episodes"] == 4 and m["agreement"] == pytest.approx(0.75)
    assert m["failed_but_world_success"] == 1 and m["succeeded_but_world_failure"] == 0
    assert verdict_matrix([])["agreement"] is None


def test_sim_session_judges_failure_reports_on_the_plans_it_saw() -> None:
    from robo_sim.sim_session import SimSession, SimSessionConfig
    from robo_system.stack import EpisodeTrace, first_failure_verdict

    session = SimSession(SimSessionConfig(render=False))
    try:
        session.reset(100_001, "seen", "pick_place")
        unknown = session.judge_failure("nobody", 0, 0, "grasp_missed")
        assert not unknown["judged"] and unknown["confirmed"] == ""
        session.note_plan(session.expert_plan)
        # the block stands on its keypoint and the fingers are open: the world does not confirm a grasp_missed
        row = session.judge_failure(session.expert_plan.plan_id, 0, 0, "grasp_missed")
        assert row["judged"] and row["confirmed"] == ""
        assert session.judge_failure(session.expert_plan.plan_id, 0, 0, "tracking_error")["confirmed"]
        # fingers closed on nothing, then opened again before the report arrives (over DDS the hold reopens them):
        # judged by the narrowest opening of the last half second, the world confirms the missed grasp
        session.command_gripper(0.0)
        session.advance(0.4)
        session.command_gripper(1.0)
        session.advance(0.2)
        row = session.judge_failure(session.expert_plan.plan_id, 0, 0, "grasp_missed")
        assert "fingers closed" in row["confirmed"], row
        session.advance(1.0)  # long after: only the open fingers are left to judge by
        assert session.judge_failure(session.expert_plan.plan_id, 0, 0, "grasp_missed")["confirmed"] == ""
        episode = session.episode_dict()
        assert len(episode["failures"]) == 5
        tr = EpisodeTrace("x", 0.0, plans=[session.expert_plan], failures=[(0.0, "tracking_error", 0, "")],
                          episode=episode)
        assert first_failure_verdict(tr) == "tracking_error"
        session.reset(100_002, "seen", "stack")
        assert session.episode_dict()["failures"] == [] and session.plans == {}
    finally:
        session.close()


@pytest.mark.ros
def test_eval_over_dds_in_two_stacks_with_the_world_verdict() -> None:
    """Two stacks of processes, each in its own ROS domain, run the oracle's episodes; the stack's final
    status is compared with the simulator's check."""
    from robo_system.stack import evaluate_ros

    out = evaluate_ros(CEREBELLUM, BrainSpec.parse("oracle"), 2, "seen", 100_001, ClosedLoopConfig(timeout_s=40.0),
                       progress=False, stacks=2)
    assert out["episodes"] == 2 and out["stacks"] == 2 and out["mode"] == "ros" and out["lockstep_period_s"] == 0.05
    assert out["verdict"]["episodes"] == 2 and out["verdict"]["agreement"] is not None
    disagree = out["verdict"]["succeeded_but_world_failure"] + out["verdict"]["failed_but_world_success"]
    assert len(out["verdict_mismatches"]) == disagree  # each disagreement, named by family and seed
    assert out["overall_success"] >= 0.5, out["failed_seeds"]


def test_eval_closed_loop_takes_the_lockstep_period_for_dds_episodes() -> None:
    """`eval closed-loop --ros --lockstep-period 0` runs the simulator in real time; a negative period is refused."""
    from robo_cli.main import build_parser
    from robo_system.cli import _closed_loop_setup
    from robo_system.stack import StackConfig

    args = build_parser().parse_args(["eval", "closed-loop", "--ros", "--brain", "oracle", "--lockstep-period", "0"])
    _, cfg = _closed_loop_setup(args)
    assert cfg.lockstep_period_s == 0.0
    assert StackConfig(lockstep_period_s=cfg.lockstep_period_s).node_params("sim_node")["lockstep_period_s"] == 0.0
    default = build_parser().parse_args(["eval", "closed-loop", "--ros"])
    assert _closed_loop_setup(default)[1].lockstep_period_s == 0.05
    with pytest.raises(ValueError, match="lockstep_period_s >= 0"):
        ClosedLoopConfig(lockstep_period_s=-0.05)


def test_sim_session_injects_perturbations_for_an_episode_over_dds() -> None:
    """sim_node perturbs a DDS episode as the in-process loop does: a slip opens the fingers during the carry
    whatever the command says; a grasp offset moves the object once the first plan is seen."""
    import numpy as np

    from robo_sim.sim_session import SimSession, SimSessionConfig

    session = SimSession(SimSessionConfig(render=False))
    try:
        session.reset(100_001, "seen", "pick_place", perturb="slip")
        plan = session.expert_plan
        session.note_plan(plan)
        session.command_gripper(0.0)
        for i in range(3):  # the place subtask's carry phase (progress < 0.25): the slip waits 0.2 s of it
            session.advance(0.05 if i else 0.0)
            session.note_status(plan.plan_id, 1, 0.1, running=True)  # 20 Hz statuses at 0, 0.05, 0.1 s
        assert session.episode_dict()["perturbation"] is None
        for _ in range(10):  # then at 200 Hz (a policy at the control rate): 0.15 s of sim time, the 4th 20 Hz step
            session.advance(0.005)
            session.note_status(plan.plan_id, 1, 0.1, running=True)
        assert session.episode_dict()["perturbation"][0] == "slip"
        session.command_gripper(0.0)  # the policy commands closed; the slip keeps the fingers open
        assert session.world.gripper_command == 1.0
        with pytest.raises(ValueError, match="perturb must be empty or one of"):
            session.reset(100_001, "seen", "pick_place", perturb="earthquake")
        session.reset(100_001, "seen", "pick_place", perturb="grasp_offset")
        plan = session.expert_plan
        before = session.world.object_pose(session.world.object_by_name("blue block").body_id)[0]
        session.note_plan(plan)
        after = session.world.object_pose(session.world.object_by_name("blue block").body_id)[0]
        assert np.linalg.norm((after - before)[:2]) == pytest.approx(0.065, abs=1e-3)
        session.note_plan(plan)  # once per episode
        again = session.world.object_pose(session.world.object_by_name("blue block").body_id)[0]
        assert np.allclose(again, after)
        assert session.episode_dict()["perturb"] == "grasp_offset"
    finally:
        session.close()


def test_a_dds_episode_with_the_goal_check_ends_on_the_brains_verdict() -> None:
    from robo_system.stack import EpisodeTrace, episode_over

    t0 = time.monotonic()
    tr = EpisodeTrace("put the red block in the blue bowl", t0)
    tr.statuses = [(t0 + 1.0, 0, "p", 1, 1, 0.5, "running"), (t0 + 2.0, 0, "p", 1, 2, 1.0, "plan complete")]
    assert not episode_over(tr, 15.0, True, verify=True)  # the brain has not looked yet
    tr.brain_states.append((t0 + 2.5, "verifying", "plan p rev 0 complete"))
    tr.brain_states.append((t0 + 2.7, "corrected", "pick; place"))  # a goal unmet: redone
    assert not episode_over(tr, 15.0, True, verify=True)
    tr.statuses += [(t0 + 3.0, 1, "p", 0, 1, 0.0, "recovering"), (t0 + 9.0, 1, "p", 1, 2, 1.0, "plan complete")]
    tr.brain_states.append((t0 + 9.6, "succeeded", "[goal holds] ..."))
    assert episode_over(tr, 15.0, True, verify=True)
    assert tr.stack_success is True and "goals hold" in tr.end_reason
    # without the goal check the cerebellum's SUCCEEDED ends it; a brain that gives up ends it FAILED
    plain = EpisodeTrace("x", t0)
    plain.statuses = [(t0 + 2.0, 0, "p", 1, 2, 1.0, "plan complete")]
    assert episode_over(plain, 15.0, True) and plain.stack_success is True
    plain.stack_success = None
    plain.brain_states.append((t0 + 2.6, "failed", "goal not reached after 3 corrections"))
    assert episode_over(plain, 15.0, True, verify=True) and plain.stack_success is False
    assert "goal not reached" in plain.end_reason


def test_a_frame_of_the_world_before_a_reset_is_not_published_after_it() -> None:
    import numpy as np

    from robo_sim.sim_session import SimSession, SimSessionConfig

    class SlowRenderer:  # finishes the frame it was asked for before the reset only after it
        busy = True  # no new requests

        def __init__(self) -> None:
            self.frames: list = []

        def poll(self):  # noqa: ANN202
            return self.frames.pop(0) if self.frames else None

        def load_scene(self, scene) -> None:  # noqa: ANN001
            pass

    session = SimSession(SimSessionConfig(render=False))
    try:
        session.reset(100_001, "seen", "pick_place")
        session.advance(0.2)
        before = session.sim_time
        session.renderer = renderer = SlowRenderer()
        session.reset(100_002, "seen", "stack")  # simulated time goes on across a reset
        image = np.zeros((2, 2, 3), np.uint8)
        renderer.frames = [(before, image, np.zeros((2, 2), np.float32))]
        assert session.poll_camera() is None
        session.advance(0.1)
        renderer.frames = [(session.sim_time, image, np.zeros((2, 2), np.float32))]
        assert session.poll_camera()[0] > before
    finally:
        session.renderer = None
        session.close()


def test_the_shipped_cerebellum_turns_the_hand_and_pushes_a_block_to_the_side() -> None:
    """With the expert's plan, a push to the left or right: the hand turns ~90 degrees (fingers across the push
    line) and the block moves along it (the policy before 2026-12-03 kept the hand straight and pushed 1 in 14)."""
    import math

    from robo_cerebellum.policy import CerebellumPolicy
    from robo_common.geometry import quat_to_matrix
    from robo_sim.tasks import make_task
    from robo_sim.world import SimWorld, WorldConfig
    from robo_system.closed_loop import OracleBrain, run_episode

    sideways = ("left", "right")
    seed = next(s for s in range(200_000, 200_100) if make_task(s, "seen", "push").steps[0].direction in sideways)
    policy = CerebellumPolicy.load(CEREBELLUM)
    world = SimWorld(WorldConfig(control_period=1.0 / policy.cfg.policy_hz))
    yaws: list[float] = []
    step_control = world.step_control

    def recording_step(*args: object) -> None:
        step_control(*args)
        x_axis = quat_to_matrix(world.ee_pose()[1])[:, 0]
        yaws.append(abs(math.degrees(math.atan2(x_axis[1], x_axis[0]))))

    world.step_control = recording_step
    try:
        row = run_episode(policy, OracleBrain(), seed, "seen", "push", None,
                          ClosedLoopConfig(timeout_s=20.0, correction=False, verify=False), world)
    finally:
        world.close()
    assert max(yaws) > 80.0, f"the hand turned at most {max(yaws):.1f} degrees"
    assert row["success"] and row["detected"] is None, row


@pytest.mark.parametrize("name", ["cerebellum", "cerebellum_200hz"])
def test_a_shipped_cerebellum_knows_the_words_of_its_training_plans(name: str) -> None:
    """``code_vocabulary`` of the shipped checkpoints is the words of the plans they were trained on (the seen
    split, seeds 0-959: their model cards); a held-out colour is outside it and left out of the code input."""
    from robo_cerebellum.features import code_token_ids, code_words
    from robo_cerebellum.policy import CerebellumPolicy
    from robo_sim.expert import step_code
    from robo_sim.tasks import make_task

    words = set(code_words("done()"))
    for seed in range(960):
        words |= {w for step in make_task(seed, "seen").steps for w in code_words(step_code(step))}
    cfg = CerebellumPolicy.load(resource_path("models", name)).cfg
    assert set(cfg.code_vocabulary) == words
    purple, bare = code_token_ids('push(object="purple block", direction="left")', cfg), code_token_ids(
        'push(object="block", direction="left")', cfg)
    assert (purple == bare).all()


def test_episode_specs_cycle_the_asked_families_and_refuse_an_unknown_one() -> None:
    from robo_cli.main import build_parser
    from robo_system.closed_loop import episode_specs

    specs = episode_specs(6, "unseen", [None], 200_000, ["push"])
    assert [s[0] for s in specs] == list(range(200_000, 200_006)) and {s[2] for s in specs} == {"push"}
    both = episode_specs(4, "seen", [None, "slip"], 0, ["stack", "push"])
    assert [(s[0], s[2], s[3]) for s in both[:4]] == [(0, "stack", None), (0, "push", None), (1, "stack", None),
                                                     (1, "push", None)]
    assert len(both) == 8 and len(episode_specs(8, "seen", [None], 0)) == 8
    with pytest.raises(ValueError, match="unknown task families"):
        episode_specs(4, "seen", [None], 0, ["juggle"])
    args = build_parser().parse_args(["eval", "closed-loop", "--family", "push", "--family", "stack"])
    assert args.family == ["push", "stack"]
