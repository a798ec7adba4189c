"""Colour-name augmentation: teach the decoder to *copy* an object's colour word from the instruction.

The ``seen`` training split never names purple or cyan blocks or orange or purple containers; a
model trained on it writes a colour it knows instead of the held-out word. In a fraction of the
training examples, :func:`rename_colours` replaces one colour word of the instruction by a
random stand-in (a colour name from :data:`STAND_IN_COLOURS` or a random letter string) in both
the instruction and the target plan, while the image keeps the real colour. The only way to get
such an answer right is to copy the word, which is also what an unseen colour name needs.

A stand-in word does not say which object in the image is meant, so the training loss skips the
pixel coordinates of plan lines that name a renamed object (:func:`renamed_lines`); those
examples teach copying only, and grounding is learned from the unchanged ones. The evaluation's
held-out names (purple, cyan, orange) are never used as stand-ins.
"""

from __future__ import annotations

import random
import re

from robo_brain.embedded.tokenizer import WORD_TOKENS
from robo_sim.scene import SEEN_BLOCK_COLORS, SEEN_CONTAINER_COLORS

TRAIN_COLOURS = tuple(sorted(set(SEEN_BLOCK_COLORS) | set(SEEN_CONTAINER_COLORS)))
"""Colour words of the training split (the words that get renamed)."""
STAND_IN_COLOURS = ("magenta", "violet", "teal", "brown", "grey", "black", "lime", "navy", "gold", "silver",
                    "maroon", "beige", "olive", "indigo", "turquoise", "crimson", "amber", "lilac", "mauve",
                    "ochre", "scarlet", "azure", "khaki", "coral", "tan", "plum", "rose", "mint")
"""Colour names used as stand-ins (none of them is a colour of either split)."""
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(word)}\b")


def stand_in(rng: random.Random, taken: set[str]) -> str:
    """A new colour-like word: half the time a stand-in colour name, else 3-8 random letters."""
    while True:
        if rng.random() < 0.5:
            word = rng.choice(STAND_IN_COLOURS)
        else:
            word = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(3, 8)))
        # "the" inside a word would be matched by the tokenizer's "the " chunk before " block"; a
        # stand-in is spelled byte by byte like a held-out colour, so it holds no whole-word token
        if word not in taken and not any(w in word for w in ("the", *WORD_TOKENS)):
            return word


def rename_colours(prompt: str, target: str, rng: random.Random, max_words: int = 1) -> tuple[str, str, list[str]]:
    """Replace up to ``max_words`` training colour words of ``prompt`` (chosen at random) by stand-ins, in
    ``prompt`` and ``target``. One word at a time keeps the other objects' keypoints supervised.

    Returns ``(prompt, target, new_words)`` (unchanged and ``[]`` when the prompt names no colour).
    """
    found = [c for c in TRAIN_COLOURS if _word_re(c).search(prompt)]
    found = rng.sample(found, min(max_words, len(found)))
    taken: set[str] = set()
    new_words = []
    for colour in found:
        word = stand_in(rng, taken)
        taken.add(word)
        new_words.append(word)
        prompt = _word_re(colour).sub(word, prompt)
        target = _word_re(colour).sub(word, target)
    return prompt, target, new_words


def renamed_lines(target: str, new_words: list[str]) -> list[bool]:
    """For each line of ``target`` (``splitlines(keepends=True)``): does it name a renamed object?"""
    patterns = [_word_re(w) for w in new_words]
    return [any(p.search(line) for p in patterns) for line in target.splitlines(keepends=True)]
