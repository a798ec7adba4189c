"""Planner core on simulator renders: plan with 3D keypoints, retry on bad output, corrections with expert checks."""

from __future__ import annotations

import numpy as np
import pytest

from robo_brain.backends import BrainBackend, GenerationSettings
from robo_brain.backends.scripted import ScriptedBackend
from robo_brain.backends.transformers_backend import TransformersBackend
from robo_brain.planner import (
    FailureInfo,
    Outcome,
    Planner,
    PlannerConfig,
    resume_subtasks,
    sanitize_instruction,
)
from robo_brain.tiny_models import make_tiny
from robo_common.camera import CameraModel
from robo_common.plan_language import PlanParseError
from robo_common.plan_types import PlanData, SubtaskData
from robo_sim.world import SimWorld, WorldConfig


@pytest.fixture(scope="module")
def sim():
    world = SimWorld(WorldConfig())
    red = world.add_block("red", 0.05, (0.45, 0.10, 0.025), 0.2)
    bowl = world.add_container("blue", "bowl", (0.55, -0.12), 0.0)
    world.settle(0.2)
    info = world.camera_info()
    yield world, red, bowl, CameraModel(info.K, info.T_base_camera, info.width, info.height)
    world.close()


def _pixel(world: SimWorld, point) -> tuple[int, int]:
    u, v = world.project(np.asarray(point)[None, :])
    return int(round(u[0])), int(round(v[0]))


def _answer(world: SimWorld, red: int, bowl: int) -> str:
    g = _pixel(world, world.object_pose(red)[0] + [0, 0, 0.02])
    p = _pixel(world, world.object_pose(bowl)[0] + [0, 0, 0.01])
    return (f"Reasoning: The red block is left of the blue bowl.\nPlan:\npick(object=\"red block\") @ grasp={g}\n"
            f"place(target=\"blue bowl\") @ place={p}\ndone()")


class Recording(BrainBackend):
    """A scripted file back-end that also records the prompts it was given."""

    def __init__(self, path) -> None:
        self.inner, self.prompts, self.name = ScriptedBackend(path), [], "recording"

    def generate(self, messages, image=None, settings=None, cancel=None) -> str:
        self.prompts.append((messages, image))
        return self.inner.generate(messages, image, settings, cancel)


def test_plan_from_scripted_answer_has_3d_keypoints(sim, tmp_path) -> None:
    world, red, bowl, cam = sim
    rgb, depth = world.render()
    (tmp_path / "a.txt").write_text(_answer(world, red, bowl))
    backend = Recording(tmp_path / "a.txt")
    result = Planner(backend).plan("put the red block in the blue bowl\x00", rgb, depth, cam, np.array([0.3, 0, 0.5]))
    assert result.outcome == Outcome.PLANNED and result.plan.code_lines() == [
        'pick(object="red block")', 'place(target="blue bowl")', "done()"]
    grasp = np.array(result.plan.subtasks[0].keypoint("grasp").point)
    assert np.linalg.norm(grasp[:2] - world.object_pose(red)[0][:2]) < 0.015
    place = np.array(result.plan.subtasks[1].keypoint("place").point)
    assert np.linalg.norm(place[:2] - world.object_pose(bowl)[0][:2]) < 0.015 and place[2] < 0.03
    messages, image = backend.prompts[0]
    assert messages[1]["content"] == "Instruction: put the red block in the blue bowl"
    assert "pick(object: str) @ grasp=(u, v)" in messages[0]["content"] and "128x128" in messages[0]["content"]
    assert "(0.30, 0.00, 0.50)" in messages[0]["content"] and image is rgb
    assert result.plan.reasoning.startswith("The red block")


def test_bad_answers_retry_once_then_fail_with_reason(sim, tmp_path) -> None:
    world, red, bowl, cam = sim
    rgb, depth = world.render()
    (tmp_path / "a.txt").write_text('Plan:\ngrab(object="red block")\n---\nPlan:\npick(object="red block") @ (500, 3)')
    backend = Recording(tmp_path / "a.txt")
    result = Planner(backend).plan("pick up the red block", rgb, depth, cam)
    assert result.outcome == Outcome.FAILED and result.plan is None and len(result.raw_outputs) == 2
    assert "unknown skill 'grab'" in backend.prompts[1][0][-1]["content"]
    assert "outside the 128x128 image" in result.reason and "after 2 attempts" in result.reason


def test_tiny_random_vlm_is_rejected_not_executed(sim, tmp_path) -> None:
    world, _, _, cam = sim
    rgb, depth = world.render()
    backend = TransformersBackend(make_tiny("llava", tmp_path / "tiny"))
    cfg = PlannerConfig(generation=GenerationSettings(max_new_tokens=16))
    result = Planner(backend, cfg).plan('pick(object=__import__("os").system("x"))', rgb, depth, cam)
    assert result.outcome == Outcome.FAILED and len(result.raw_outputs) == 2 and len(result.timing["generate"]) == 2
    assert result.errors[0].startswith(("line", "the plan is empty", "missing"))


def test_instruction_sanitising() -> None:
    assert sanitize_instruction("  put\tthe\nred block\x07 away ") == "put the red block away"
    for bad, needle in ((123, "must be text"), ("x" * 501, "at most 500"), ("\x00\n ", "empty")):
        with pytest.raises(ValueError, match=needle):
            sanitize_instruction(bad)
    with pytest.raises(ValueError, match="parse_retries"):
        PlannerConfig(parse_retries=-1)


def test_correction_after_object_moved(sim, tmp_path) -> None:
    world, red, bowl, cam = sim
    rgb, depth = world.render()
    first = _answer(world, red, bowl)
    world.move_object(red, np.array([0.40, 0.18, 0.025]))
    world.settle(0.1)
    second = _answer(world, red, bowl).replace("The red block is left", "The block moved; it is now further left")
    (tmp_path / "a.txt").write_text(first + "\n---\n" + second)
    backend = Recording(tmp_path / "a.txt")
    planner = Planner(backend, PlannerConfig(max_corrections=1))
    plan = planner.plan("put the red block in the blue bowl", rgb, depth, cam).plan
    rgb2, depth2 = world.render()
    failure = FailureInfo("grasp_missed", "fingers closed on nothing", 0, np.array([0.45, 0.10, 0.03]))
    result = planner.correct(plan, failure, rgb2, depth2, cam)
    assert result.outcome == Outcome.CORRECTED, result.errors
    new = result.plan
    assert (new.plan_id, new.revision) == (plan.plan_id, 1) and [s.index for s in new.subtasks] == [0, 1, 2]
    grasp = np.array(new.subtasks[0].keypoint("grasp").point)
    assert np.linalg.norm(grasp[:2] - np.array([0.40, 0.18])) < 0.015
    assert any("[problem]" in f and "moved" in f for f in result.findings), result.findings
    assert any("bare table" in f for f in result.findings), result.findings
    prompt = backend.prompts[1][0][1]["content"]
    assert "Failure: grasp_missed at step 0" in prompt and "0. [FAILED] pick(" in prompt and "1. [pending]" in prompt
    assert new.reasoning.startswith("The red block is left") and "[revision 1] grasp_missed" in new.reasoning
    assert "The block moved" in new.reasoning
    again = planner.correct(new, failure, rgb2, depth2, cam)
    assert again.outcome == Outcome.FAILED and "max_corrections 1" in again.reason
    bad_index = planner.correct(plan, FailureInfo("timeout", "", 7), rgb2, depth2, cam)
    assert bad_index.outcome == Outcome.FAILED and "subtask 7" in bad_index.reason


def _sub(i: int, code: str) -> SubtaskData:
    return SubtaskData(i, code, code.split("(")[0])


def _plan(*codes: str) -> PlanData:
    return PlanData("p", 0, "instr", "", [_sub(i, c) for i, c in enumerate(codes)])


PICK_A, PLACE_A = 'pick(object="red block")', 'place(target="blue bowl")'
PICK_B, PLACE_B = 'pick(object="green block")', 'place(target="red bowl")'


def test_resume_subtasks_drops_finished_steps_and_regrasps_after_a_drop() -> None:
    old = _plan(PICK_A, PLACE_A, PICK_B, PLACE_B, "done()")
    full = _plan(PICK_A, PLACE_A, PICK_B, PLACE_B, "done()").subtasks
    # the second pick missed: the first move stays finished, the re-plan resumes at pick B
    todo, note = resume_subtasks(old, FailureInfo("grasp_missed", "", 2), full)
    assert [s.code for s in todo] == [PICK_B, PLACE_B, "done()"] and [s.index for s in todo] == [0, 1, 2]
    assert "resume at " + PICK_B in note
    # the object was dropped while placing: pick it again
    todo, note = resume_subtasks(old, FailureInfo("object_dropped", "", 3), full)
    assert [s.code for s in todo] == [PICK_B, PLACE_B, "done()"] and "grasp it again" in note
    # a place that failed otherwise (object still held) resumes at the place
    todo, _ = resume_subtasks(old, FailureInfo("tracking_error", "", 3), full)
    assert [s.code for s in todo] == [PLACE_B, "done()"]
    # a re-plan that only repeats finished steps is an error the planner reports
    with pytest.raises(PlanParseError, match="only repeats steps that are already finished"):
        resume_subtasks(old, FailureInfo("timeout", "", 2), _plan(PICK_A, PLACE_A, "done()").subtasks)


def test_replan_correction_for_plan_only_models(sim, tmp_path) -> None:
    world, red, bowl, cam = sim
    home = world.object_pose(red)[0]
    rgb, depth = world.render()
    first = _answer(world, red, bowl)
    world.move_object(red, np.array([0.42, 0.20, 0.025]))
    world.settle(0.1)
    second = _answer(world, red, bowl)
    (tmp_path / "a.txt").write_text(first + "\n---\n" + second)
    backend = Recording(tmp_path / "a.txt")
    backend.plans_only = True
    planner = Planner(backend)
    assert planner.correction_mode == "replan"
    assert Planner(backend, PlannerConfig(correction="prompt")).correction_mode == "prompt"
    plan = planner.plan("put the red block in the blue bowl", rgb, depth, cam).plan
    rgb2, depth2 = world.render()
    result = planner.correct(plan, FailureInfo("object_dropped", "lost it", 1, home), rgb2, depth2, cam)
    assert result.outcome == Outcome.CORRECTED, result.errors
    new = result.plan
    assert new.code_lines() == [PICK_A, PLACE_A, "done()"] and new.revision == 1
    grasp = np.array(new.subtasks[0].keypoint("grasp").point)
    assert np.linalg.norm(grasp[:2] - np.array([0.42, 0.20])) < 0.015
    # the model saw the plain plan prompt (what it was trained on) with the current image
    messages, image = backend.prompts[1]
    assert messages[1]["content"] == "Instruction: put the red block in the blue bowl" and image is rgb2
    assert "[revision 1] object_dropped" in new.reasoning and "grasp it again" in new.reasoning
    assert any(f.startswith("[problem] the gripper was") for f in result.findings), result.findings
    world.move_object(red, home)
    world.settle(0.1)
    with pytest.raises(ValueError, match="correction must be one of"):
        PlannerConfig(correction="guess")


def test_snap_radius_moves_an_off_grasp_pixel_onto_the_object(sim, tmp_path) -> None:
    world, red, bowl, cam = sim
    world.move_object(red, np.array([0.45, 0.10, 0.025]))  # where the fixture put it (other tests move it)
    world.settle(0.2)
    rgb, depth = world.render()
    g = _pixel(world, world.object_pose(red)[0] + [0, 0, 0.025])
    off = (g[0] + 4, g[1] + 3)  # beside the block: the table
    answer = _answer(world, red, bowl).replace(f"grasp={g}", f"grasp={off}")
    (tmp_path / "a.txt").write_text(answer + "\n---\n" + answer)
    plain = Planner(ScriptedBackend(tmp_path / "a.txt")).plan("put the red block in the blue bowl", rgb, depth, cam)
    snapped = Planner(ScriptedBackend(tmp_path / "a.txt"), PlannerConfig(snap_radius=6)).plan(
        "put the red block in the blue bowl", rgb, depth, cam)
    block = world.object_pose(red)[0]
    err_plain = np.linalg.norm(np.array(plain.plan.subtasks[0].keypoint("grasp").point)[:2] - block[:2])
    err_snap = np.linalg.norm(np.array(snapped.plan.subtasks[0].keypoint("grasp").point)[:2] - block[:2])
    assert err_snap < 0.012 and err_snap < err_plain / 2, (err_plain, err_snap)
    # the grasp pixel shows the block's top (5 cm); its 3D point is the block's centre, as in the expert's plans
    assert abs(snapped.plan.subtasks[0].keypoint("grasp").point[2] - 0.025) < 0.006
    with pytest.raises(ValueError, match="snap_radius"):
        PlannerConfig(snap_radius=99)


def test_named_colour_check_reads_the_object_at_a_grasp_keypoint(sim) -> None:
    from robo_brain.checks import CheckConfig, check_named_colour
    from robo_common.plan_types import KeypointData

    world, red, _, cam = sim
    rgb, depth = world.render()
    u, v = _pixel(world, world.object_pose(red)[0] + [0, 0, 0.025])
    kp = KeypointData("grasp", (0.45, 0.10, 0.025), u, v)
    right = check_named_colour(SubtaskData(0, 'pick(object="red block")', "pick", [kp]), kp, rgb, depth, cam,
                               CheckConfig())
    assert right is not None and right.ok and "red" in right.text
    wrong = check_named_colour(SubtaskData(0, 'pick(object="small green cube")', "pick", [kp]), kp, rgb, depth,
                               cam, CheckConfig())
    assert wrong is not None and not wrong.ok and "not a green one" in wrong.line()
    nameless = SubtaskData(0, 'pick(object="mug")', "pick", [kp])
    assert check_named_colour(nameless, kp, rgb, depth, cam, CheckConfig()) is None
