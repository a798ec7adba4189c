"""The brain v2's prompt and answer format (one function builds both training and inference inputs).

The model reads a system prompt (the skill language and its rules), then a user turn::

    Objects: red block, blue bowl, green tray
    Instruction: put the red block in the blue bowl

and answers with code lines only, keypoints coming from perception (:mod:`robo_brain.perception`)::

    pick(object="red block")
    place(target="blue bowl")
    done()

or one refusal line, :data:`REFUSALS`, when the instruction names something the brain does not see or
is not a request it can do.

A correction turn (:func:`correction_user_text`) adds the plan so far with each step's status, the
cerebellum's failure report and the expert checks' problems; the answer starts with one ``Why:`` line,
the model's diagnosis (:func:`reason_lines`: is the object in the gripper, did the push go far enough),
then the steps still to do::

    Why: the red block is not in the gripper, pick it again
    pick(object="red block")
    place(target="blue bowl")
    done() Chat markup is SmolLM2's (``<|im_start|>role ... <|im_end|>``); each part is
tokenized on its own and concatenated, so training and the constrained decoder see the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robo_common.plan_language import DIRECTIONS

SYSTEM_PROMPT = (
    "You plan for a robot arm with a gripper above a table. You get the objects on the table, listed left "
    "to right, and a person's instruction. Answer with one skill call per line, then done().\n"
    'pick(object="NAME"): grasp an object.\n'
    'place(target="NAME"): put the held object in a container or on a block.\n'
    'push(object="NAME", direction="DIR"): slide an object without grasping. DIR is forward (away from the '
    "robot), backward (toward the robot), left or right (the robot's own left and right).\n"
    "Use only the listed names. Move one block at a time: pick it, then place it. To stack A on B: pick A, "
    "place on B. To sort, put each block in the container of its colour. Take several blocks from left to "
    "right.\n"
    'If the instruction names something that is not listed, answer cannot(reason="not in the scene"). If it '
    'is not a request to move these objects, answer cannot(reason="not understood").'
)
CORRECTION_ASK = "Say why the failed step failed, then write the steps still to do (done steps are not repeated)."
REASONS = {"regrasp": "Why: the {obj} is not in the gripper, pick it again",
           "held": "Why: the {obj} is in the gripper, place it",
           "repush": "Why: the {obj} did not move far enough, push it again"}
"""Diagnosis kind -> the ``Why:`` line a correction's answer starts with (``{obj}``: a listed block)."""
MAX_CHECKS = 4
"""At most this many expert-check problems go into a correction turn (the prompt's length is latency)."""
REFUSALS = {"not in the scene": 'cannot(reason="not in the scene")',
            "not understood": 'cannot(reason="not understood")'}
"""Refusal reason -> the line the model writes."""
END = "<|im_end|>"


@dataclass(frozen=True)
class PromptParts:
    """The text of one prompt: ``prefix`` (constant: the system turn) and ``user`` (this request's turn,
    ending with the assistant header)."""

    prefix: str
    user: str


def user_text(names: Sequence[str], instruction: str) -> str:
    """The user turn's text: the scene listing and the instruction."""
    return f"Objects: {', '.join(names) or 'none'}\nInstruction: {instruction}"


def correction_user_text(names: Sequence[str], instruction: str, steps: Sequence[tuple[str, str]], failure: str,
                         problems: Sequence[str]) -> str:
    """The user turn of a correction: listing, instruction, the plan so far (``(status, code line)``, status
    ``done``, ``FAILED`` or ``todo``), the failure report and the expert checks' problems."""
    plan = "\n".join(f"{status} {code}" for status, code in steps)
    checks = "; ".join(problems[:MAX_CHECKS]) or "none"
    return (f"{user_text(names, instruction)}\nPlan so far:\n{plan}\nFailure: {failure}\nProblems seen: {checks}\n"
            f"{CORRECTION_ASK}")


def prompt_parts(names: Sequence[str], instruction: str, correction: str | None = None) -> PromptParts:
    """The chat-formatted prompt of one plan request (``correction``: a correction's user text instead,
    :func:`correction_user_text`)."""
    text = correction if correction is not None else user_text(names, instruction)
    return PromptParts(f"<|im_start|>system\n{SYSTEM_PROMPT}{END}\n",
                       f"<|im_start|>user\n{text}{END}\n<|im_start|>assistant\n")


def reason_lines(blocks: Sequence[str]) -> list[str]:
    """Every ``Why:`` line a correction may start with: each diagnosis of :data:`REASONS` for each block."""
    return [template.format(obj=b) for template in REASONS.values() for b in blocks]


def reason_of(line: str) -> tuple[str, str] | None:
    """``(kind, object)`` of a ``Why:`` line of :func:`reason_lines`, or None."""
    for kind, template in REASONS.items():
        head, tail = template.split("{obj}")
        if line.startswith(head) and line.endswith(tail) and len(line) > len(head) + len(tail):
            return kind, line[len(head):len(line) - len(tail)]
    return None


def step_lines(blocks: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Every code line the model may write next (without its newline): picks and pushes of ``blocks``,
    places on ``targets``, and ``done()``."""
    lines = [f'pick(object="{b}")' for b in blocks]
    lines += [f'place(target="{t}")' for t in targets]
    lines += [f'push(object="{b}", direction="{d}")' for b in blocks for d in DIRECTIONS]
    return [*lines, "done()"]


def answer_text(lines: Sequence[str]) -> str:
    """The answer as the model writes it: one line each, newline separated, then the end-of-turn marker."""
    return "".join(f"{line}\n" for line in lines[:-1]) + lines[-1] + END


__all__ = ["CORRECTION_ASK", "END", "MAX_CHECKS", "REASONS", "REFUSALS", "SYSTEM_PROMPT", "PromptParts",
           "answer_text", "correction_user_text", "prompt_parts", "reason_lines", "reason_of", "step_lines",
           "user_text"]
