"""Decoding constrained to the skill language and the names the brain sees.

At each step of the answer the model may only write one of a finite set of lines
(:func:`robo_brain.lm.prompt.step_lines` over the perceived names, plus the refusals on the first
line). The lines are token sequences in a trie: where the trie has one way on, the tokens are
forced and fed to the model together in one forward pass (no decision, no extra pass); where it
branches, the model's logits choose among the branches only. A plan therefore parses and names
only listed objects by construction, and costs one forward pass per real decision (skill, object,
direction) instead of one per token.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from robo_brain.lm.prompt import END


class DecodeCancelled(RuntimeError):
    """The cancel event was set while decoding."""


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    line: str | None = None


def encode_line(tokenizer, line: str, last: bool) -> list[int]:  # noqa: ANN001 - a transformers tokenizer
    """Token ids of one answer line: followed by a newline, or by the end-of-turn marker when ``last``."""
    return list(_encoded(tokenizer, line, last))


@functools.lru_cache(maxsize=8192)
def _encoded(tokenizer, line: str, last: bool) -> tuple[int, ...]:  # noqa: ANN001
    """:func:`encode_line`, kept: the decoder's trie holds the same candidate lines at every step of a plan."""
    if last:
        return (*tokenizer(line, add_special_tokens=False)["input_ids"], tokenizer.convert_tokens_to_ids(END))
    return tuple(tokenizer(line + "\n", add_special_tokens=False)["input_ids"])


def encode_answer(tokenizer, lines: Sequence[str]) -> list[int]:  # noqa: ANN001
    """Token ids of a whole answer (what training teaches and the decoder produces)."""
    return [t for i, line in enumerate(lines) for t in encode_line(tokenizer, line, i == len(lines) - 1)]


def build_trie(tokenizer, lines: Sequence[str], final: Sequence[str]) -> _Node:  # noqa: ANN001
    """Trie of the allowed next lines; lines in ``final`` end the answer (``done()``, refusals)."""
    root = _Node()
    for line in lines:
        node = root
        for t in encode_line(tokenizer, line, line in final):
            node = node.children.setdefault(t, _Node())
        node.line = line
    return root


@dataclass
class Decision:
    """One choice the model made: the options it had (by first differing token) and its probability."""

    chosen: str
    probability: float
    options: int


StepFn = Callable[[list[int]], torch.Tensor]
"""Feeds token ids to the model (with its cache) and returns the logits after the last one."""


LineOptions = Callable[[int, list[str]], tuple[list[str], list[str]]]
"""``(line index, lines so far) -> (allowed next lines, the allowed lines that end the answer)``."""


def decode_lines(step: StepFn, first_logits: torch.Tensor, line_options: LineOptions,
                 tokenizer, max_lines: int, cancel: threading.Event | None = None,  # noqa: ANN001
                 ) -> tuple[list[str], list[Decision]]:
    """Greedy constrained decoding of up to ``max_lines`` lines.

    ``line_options(i, lines)`` gives the allowed lines at line ``i`` and which of them end the answer. Returns
    the lines written and every decision with its probability. The last line is always a final one
    (at ``max_lines - 1`` only final lines are allowed).
    """
    logits = first_logits
    pending: list[int] = []
    lines: list[str] = []
    decisions: list[Decision] = []
    for i in range(max_lines):
        allowed, final = line_options(i, lines)
        if i == max_lines - 1:
            allowed = [line for line in allowed if line in final]
        if not allowed:
            raise ValueError(f"no line is allowed at line {i + 1} after {lines}")
        node = build_trie(tokenizer, allowed, final)
        while node.line is None:
            if len(node.children) == 1:
                token = next(iter(node.children))
            else:
                if cancel is not None and cancel.is_set():
                    raise DecodeCancelled("cancelled during decoding")
                if pending:
                    logits = step(pending)
                    pending = []
                options = list(node.children)
                logp = torch.log_softmax(logits.float(), dim=-1)[options]
                best = int(torch.argmax(logp))
                token = options[best]
                decisions.append(Decision("", math.exp(float(logp[best])), len(options)))
            pending.append(token)
            node = node.children[token]
        for d in decisions:
            d.chosen = d.chosen or node.line
        lines.append(node.line)
        if node.line in final:
            break
    return lines, decisions


__all__ = ["Decision", "DecodeCancelled", "build_trie", "decode_lines", "encode_answer", "encode_line"]
