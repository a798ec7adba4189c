"""The skill language: ast whitelist parsing, precise errors, the model output format and the retry protocol."""

from __future__ import annotations

import pytest

from robo_common.plan_language import (
    SKILLS,
    ArgSpec,
    PlanParseError,
    SkillSpec,
    TextLimits,
    format_plan_text,
    generate_with_retry,
    parse_call,
    parse_model_output,
    parse_plan_text,
    plan_from_model_output,
)
from robo_common.plan_types import KeypointData

GOOD = """Reasoning: The red block is on the left.
The bowl is on the right.
Plan:
1. pick(object="red block") @ grasp=(61, 88)
2. place(target="blue bowl") @ (30.5, 40)
push(object="green block", direction="left") @ push_start=(10, 20), push_end=(30, 20)
# a comment
done()
"""


def _locate(name: str, u: float, v: float) -> KeypointData:
    if u > 127:
        raise ValueError("outside the 128x128 image")
    return KeypointData(name, (u / 100, v / 100, 0.0), u, v)


def test_parses_reasoning_steps_and_keypoints() -> None:
    out = parse_model_output(GOOD)
    assert out.reasoning == "The red block is on the left.\nThe bowl is on the right."
    assert [s.call.code() for s in out.steps] == [
        'pick(object="red block")', 'place(target="blue bowl")',
        'push(object="green block", direction="left")', "done()"]
    assert out.steps[0].pixels == {"grasp": (61.0, 88.0)} and out.steps[0].line == 4
    assert out.steps[1].pixels == {"place": (30.5, 40.0)}
    assert out.steps[2].pixels == {"push_start": (10.0, 20.0), "push_end": (30.0, 20.0)}


def test_every_skill_of_the_vocabulary_parses() -> None:
    assert set(SKILLS) >= {"pick", "place", "push", "move_to", "open_gripper", "close_gripper", "done"}
    for code in ('move_to(target="tray")', "open_gripper()", "close_gripper()", "done()"):
        assert parse_call(code).code() == code


@pytest.mark.parametrize(("line", "needle"), [
    ('grab(object="red block")', "line 3: unknown skill 'grab'; expected one of pick, place, push"),
    ('pick("red block")', "keyword arguments only"),
    ('pick(object=red)', "must be a string or number literal, got a variable name"),
    ('pick(object=os.system("ls"))', "got a nested call"),
    ('pick(object=x.y)', "got attribute access"),
    ('pick(object=a[0])', "got a subscript"),
    ('pick(**{"object": "x"})', "pick(**...) is not allowed"),
    ('pick(*args)', "keyword arguments only, got a starred argument"),
    ('os.system("rm -rf /")', "attribute access is not allowed as a skill name"),
    ('__import__("os").system("ls")', "is not allowed as a skill name"),
    ('pick(colour="red")', "unknown argument 'colour'; expected pick(object: str)"),
    ('pick()', "missing argument 'object'"),
    ('push(object="red block", direction="up")', "expected one of left, right, forward, backward"),
    ('pick(object="red; rm -rf")', "is not a valid name"),
    ('pick(object=3)', "must be a string, got 3.0"),
    ('pick(object="a"', "not a skill call"),
    ('pick(object="a"); done()', "not a skill call"),
    ("lambda: 0", "expected a single skill call"),
    ('pick(object="red block") @ grasp=(1, 2), grasp=(3, 4)', "given twice"),
    ('pick(object="red block") @ place=(1, 2)', "has no keypoint 'place'; expected grasp"),
    ('pick(object="red block")', "missing keypoint 'grasp'"),
    ('push(object="red block", direction="left") @ (1, 2)', "needs named keypoints"),
])
def test_rejections_name_line_and_expectation(line: str, needle: str) -> None:
    text = f"Reasoning: r\nPlan:\n{line}\ndone()"
    with pytest.raises(PlanParseError) as info:
        parse_model_output(text)
    assert needle in str(info.value)
    assert info.value.line == 3


def test_numbers_and_custom_tables() -> None:
    table = {"lift": SkillSpec("lift", (ArgSpec("height", "float", low=0.0, high=0.3),))}
    assert parse_call("lift(height=0.1)", skills=table).args == {"height": 0.1}
    with pytest.raises(PlanParseError, match=r"out of range \[0.0, 0.3\]"):
        parse_call("lift(height=-1)", skills=table)
    with pytest.raises(PlanParseError, match="must be a number"):
        parse_call('lift(height="high")', skills=table)
    with pytest.raises(PlanParseError, match="string or number literal"):
        parse_call("lift(height=True)", skills=table)
    with pytest.raises(ValueError, match="kind"):
        ArgSpec("x", "int")


def test_size_and_character_guards() -> None:
    with pytest.raises(PlanParseError, match="at most 8000"):
        parse_model_output("done()\n" * 2000)
    with pytest.raises(PlanParseError, match=r"line 2: control character '\\x1b'"):
        parse_model_output('Plan:\npick(object="red\x1b[31m") @ (1, 2)')
    with pytest.raises(PlanParseError, match="lines; at most 5"):
        parse_model_output("\n" * 10, TextLimits(max_lines=5))
    with pytest.raises(PlanParseError, match="more than 2 steps"):
        parse_model_output("open_gripper()\nclose_gripper()\nopen_gripper()", TextLimits(max_plan_lines=2))
    with pytest.raises(PlanParseError, match="the plan is empty"):
        parse_model_output("Reasoning: nothing to do\nPlan:\n")
    with pytest.raises(PlanParseError, match="missing 'Plan:' section"):
        parse_model_output("Reasoning: I will pick the block")
    with pytest.raises(PlanParseError, match="line 2: nothing may follow done"):
        parse_model_output("done()\nopen_gripper()")


def test_format_and_parse_round_trip_and_done_appended() -> None:
    plan = plan_from_model_output(GOOD, instruction="tidy up", locate=_locate, plan_id="p1", revision=2)
    assert plan.plan_id == "p1" and plan.revision == 2 and [s.index for s in plan.subtasks] == [0, 1, 2, 3]
    assert plan.subtasks[0].keypoint("grasp").point == (0.61, 0.88, 0.0)
    again = plan_from_model_output(format_plan_text(plan), instruction="tidy up", locate=_locate, plan_id="p1")
    assert again.code_lines() == plan.code_lines() and again.reasoning == plan.reasoning
    assert [k.point for s in again.subtasks for k in s.keypoints] == [
        k.point for s in plan.subtasks for k in s.keypoints]
    calls = parse_plan_text('pick(object="red block")\nplace(target="tray")')
    assert [c.code() for c in calls] == ['pick(object="red block")', 'place(target="tray")', "done()"]
    assert format_plan_text(calls).splitlines()[1:] == [c.code() for c in calls]


def test_keypoint_errors_become_line_errors() -> None:
    with pytest.raises(PlanParseError, match=r"line 2: keypoint grasp=\(200, 5\) of pick.*outside the 128x128"):
        plan_from_model_output('Plan:\npick(object="red block") @ grasp=(200, 5)', instruction="x", locate=_locate)


def test_retry_feeds_the_error_back_exactly_once() -> None:
    answers = iter(['grab(object="red block")', 'Plan:\npick(object="red block") @ (5, 6)'])
    seen: list[list[dict]] = []

    def generate(messages: list[dict]) -> str:
        seen.append(messages)
        return next(answers)

    base = [{"role": "user", "content": "Instruction: pick the red block"}]
    out = generate_with_retry(generate, base, parse_model_output, max_retries=1)
    assert out.ok and out.value.steps[0].pixels == {"grasp": (5.0, 6.0)}
    assert len(seen) == 2 and seen[0] == base
    assert seen[1][1] == {"role": "assistant", "content": 'grab(object="red block")'}
    assert "line 1: unknown skill 'grab'" in seen[1][2]["content"]
    failing = generate_with_retry(lambda m: "nonsense !!", base, parse_model_output, max_retries=1)
    assert not failing.ok and len(failing.outputs) == 2 and len(failing.errors) == 2
