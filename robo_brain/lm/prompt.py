"""The brain v2's prompt and answer format (one function builds both training and inference inputs).

The model reads a system prompt (the skill language and its rules), then a user turn::

    Objects: red block, blue bowl, green tray
    Instruction: put the red block in the blue bowl

and answers with code lines only, keypoints coming from perception (:mod:`robo_brain.perception`)::

    pick(object="red block")
    place(target="blue bowl")
    done()

or one refusal line, :data:`REFUSALS`, when the instruction names something the brain does not see or
is not a request it can do. Chat markup is SmolLM2's (``<|im_start|>role ... <|im_end|>``); each part is
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


def prompt_parts(names: Sequence[str], instruction: str) -> PromptParts:
    """The chat-formatted prompt of one plan request."""
    return PromptParts(f"<|im_start|>system\n{SYSTEM_PROMPT}{END}\n",
                       f"<|im_start|>user\n{user_text(names, instruction)}{END}\n<|im_start|>assistant\n")


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


__all__ = ["END", "REFUSALS", "SYSTEM_PROMPT", "PromptParts", "answer_text", "prompt_parts", "step_lines",
           "user_text"]
