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
from collections.abc import Mapping, Sequence

import numpy as np

from robo_brain.embedded.tokenizer import WORD_TOKENS
from robo_common.colours import CHROMATIC, read_colour
from robo_common.vocabulary import COLORS, SEEN_BLOCK_COLORS, SEEN_CONTAINER_COLORS

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


# ---------------------------------------------------------------- hue rotation
HUE_MARGIN_DEG = 8.0
"""A rotated colour is named only when its nearest colour term is this much nearer than the next."""


def rotate_hue(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the HSV hue of every pixel (uint8 ``(..., 3)``) by ``degrees``; saturation and value stay."""
    c = np.asarray(rgb, np.float64) / 255.0
    mx, mn = c.max(-1), c.min(-1)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(delta > 0, (h + degrees / 60.0) % 6.0, 0.0)
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    v = mx
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [np.stack(x, -1) for x in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.choose(i[..., None], choices)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _rotated_term(colour: str, degrees: float) -> str | None:
    """The basic colour term of the simulator's ``colour`` after a hue rotation, None when ambiguous."""
    reading = read_colour(rotate_hue(np.array([[round(255 * x) for x in COLORS[colour][:3]]]), degrees))
    if not reading.chromatic:
        return reading.term
    distances = sorted(reading.distance_to(t) for t in CHROMATIC)
    return reading.term if distances[1] - distances[0] >= HUE_MARGIN_DEG else None


def _background(rgb: np.ndarray, tolerance: int = 12) -> np.ndarray:
    """Mask of the pixels of the image's most common colour (the table) within ``tolerance`` per channel."""
    flat = rgb.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    mode = values[int(np.argmax(counts))].astype(int)
    return np.all(np.abs(rgb.astype(int) - mode) <= tolerance, axis=-1)


def hue_shift(rgb: np.ndarray, prompt: str, target: str, rng: random.Random, scene_colours: tuple[str, ...] = (),
              tries: int = 6) -> tuple[np.ndarray, str, str] | None:
    """Rotate the hues of the image's objects by a random angle and rename every colour word of ``prompt``
    and ``target`` to the basic colour term (:mod:`robo_common.colours`) its object now shows.

    The rotation moves the objects' colours onto other terms, held-out ones included, so the model
    sees e.g. purple blocks named ``purple``: the colour names come from the colour lexicon, not from
    any split. The table (the image's most common colour) keeps its colour. An angle is kept only
    when every colour of the scene (``scene_colours`` and the named ones) maps to an unambiguous term
    and no two onto the same one; None after ``tries`` angles fail (or when no colour is named).
    """
    named = [c for c in COLORS if _word_re(c).search(prompt) or _word_re(c).search(target)]
    if not named:
        return None
    present = sorted(set(named) | {c for c in scene_colours if c in COLORS})
    for _ in range(tries):
        degrees = rng.uniform(30.0, 330.0)
        mapping = {c: _rotated_term(c, degrees) for c in present}
        terms = list(mapping.values())
        if None in terms or len(set(terms)) != len(terms) or all(c == t for c, t in mapping.items()):
            continue
        pattern = re.compile(r"\b(" + "|".join(re.escape(c) for c in named) + r")\b")

        def swap(text: str, mapping: dict = mapping, pattern: re.Pattern = pattern) -> str:
            return pattern.sub(lambda m: mapping[m.group(1)], text)

        out = np.where(_background(rgb)[..., None], rgb, rotate_hue(rgb, degrees))
        return out.astype(np.uint8), swap(prompt), swap(target)
    return None


# ---------------------------------------------------------------- paraphrases
_SLOTS = {"verb": r"(?P<verb>put|place|move)", "obj": r"(?P<obj>[a-z ]+?)", "dest": r"(?P<dest>[a-z ]+?)",
          "dest_short": r"(?P<dest_short>[a-z]+?)", "dir": r"(?P<dir>left|right|forward|backward|back)",
          "color": r"(?P<color>[a-z]+)", "blocks": r"(?P<blocks>blocks|cubes)", "block": r"(?P<block>block|cube)",
          "containers": r"(?P<containers>[a-z]+s)", "container": r"(?P<container>[a-z]+)"}

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "pick_place": (
        "grab the {obj} and put it in the {dest}",
        "take the {obj} to the {dest}",
        "I want the {obj} in the {dest}",
        "transfer the {obj} into the {dest}",
        "can you {verb} the {obj} in the {dest}",
        "{verb} the {obj} in the {dest} please",
        "get the {obj} over to the {dest}",
        "the {dest} needs the {obj}",
    ),
    "stack": (
        "place the {obj} above the {dest}",
        "pile the {obj} on the {dest}",
        "I want the {obj} stacked on the {dest}",
        "can you stack the {obj} on the {dest}",
        "lift the {obj} and put it on the {dest}",
        "the {dest} gets the {obj} on top",
    ),
    "rearrange_all": (
        "{verb} each of the {color} {blocks} in the {dest}",
        "take every {color} {block} to the {dest}",
        "the {color} {blocks} all belong in the {dest}",
        "put the {color} {blocks} in the {dest}, all of them",
    ),
    "rearrange_sort": (
        "put each {block} in the {container} with its colour",
        "place the {blocks} in the {containers} that share their colour",
        "{verb} every {block} into the {container} that has its colour",
        "each {block} belongs in the {container} of its own colour",
    ),
    "push": (
        "move the {obj} {dir} by pushing it",
        "send the {obj} {dir} with a push",
        "give the {obj} a push {dir}",
        "bump the {obj} {dir}",
        "push the {obj} {dir} along the table",
    ),
}
"""Training-only instruction templates, none of them an unseen-split template (a test checks)."""


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    body = "".join(_SLOTS[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


def _seen_patterns(templates: Mapping[str, Sequence[str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(key, _template_regex(t)) for key, pool in templates.items() for t in pool]


def paraphrase(instruction: str, rng: random.Random, templates: Mapping[str, Sequence[str]]) -> str | None:
    """Re-say a seen-template instruction with a random :data:`PARAPHRASES` template of its family
    (slots such as the object and destination phrases carried over); None if no template matches.

    ``templates``: the seen split's instruction templates per key of :data:`PARAPHRASES` (the task
    generator's, e.g. :func:`robo_system.datasets.brain.seen_templates`).
    """
    for key, pattern in _seen_patterns(templates):
        m = pattern.match(instruction)
        if m is None:
            continue
        slots = m.groupdict()
        if "dest_short" in slots:  # "stack the X on the red one" -> "red block"
            slots["dest"] = f"{slots.pop('dest_short')} block"
        slots.setdefault("verb", rng.choice(("put", "place", "move")))
        slots["dir"] = slots.get("dir") and ("backward" if slots["dir"] == "back" else slots["dir"])
        usable = [t for t in PARAPHRASES[key] if set(re.findall(r"\{([a-z_]+)\}", t)) <= {k for k, v in slots.items()
                                                                                          if v}]
        if usable:
            return rng.choice(usable).format(**slots)
    return None


# ---------------------------------------------------------------- container kinds
_KIND_RE = re.compile(r"\b(bowl|tray)(s?)\b")


def mask_kinds(instruction: str) -> str:
    """Say ``container(s)`` for every ``bowl(s)`` / ``tray(s)`` of ``instruction``.

    Container colours are unique in a scene, so "the yellow container" still names one object, but
    the plan must name its kind (``yellow bowl``) from the image. Without this, the training split
    names the kind in about 70 % of its container phrases and the model copies it; trained on masked
    instructions it has to look (a round bowl, a square tray).
    """
    return _KIND_RE.sub(lambda m: "container" + m.group(2), instruction)


# ---------------------------------------------------------------- word noise
CONTENT_WORDS = frozenset(
    {"small", "large", "block", "blocks", "cube", "cubes", "bowl", "bowls", "tray", "trays", "container",
     "containers", "one", "left", "right", "forward", "backward", "back", "in", "into", "inside", "on",
     "onto", "top", "of", "all", "every", "each", "same", "its", "colour", "color", "matching"}
    | set(COLORS) | set(CHROMATIC) | {"white", "grey", "gray", "black"}
)
"""Words that carry the task: objects, colours, sizes, directions, spatial relations, quantifiers.
:func:`word_noise` never touches them; every other word of an instruction is phrasing."""
TASK_VERBS = frozenset({"sort", "stack", "push"})
"""Verbs that name a task family. By default they are phrasing to :func:`word_noise` (the model
learns each family from its content words); ``keep=CONTENT_WORDS | TASK_VERBS`` keeps them."""
SPELLING_VARIANTS = {"colour": "color", "grey": "gray"}
"""British -> American spellings of content words (either may reach the robot)."""
_NONCE_MIN, _NONCE_MAX = 2, 8


def nonce_word(rng: random.Random) -> str:
    """A random lowercase letter string that is neither a content word nor holds a whole-word token."""
    while True:
        word = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(_NONCE_MIN, _NONCE_MAX)))
        if word not in CONTENT_WORDS and not any(w in word for w in ("the", *WORD_TOKENS)):
            return word


def word_noise(instruction: str, rng: random.Random, replace: float = 0.3, drop: float = 0.15,
               insert: float = 0.3, variant: float = 0.5, keep: frozenset[str] = CONTENT_WORDS) -> str:
    """Perturb the phrasing of ``instruction`` and keep what it asks for.

    Every word outside ``keep`` (default :data:`CONTENT_WORDS`) is, independently, replaced by a nonce word (probability
    ``replace``) or dropped (``drop``); after each word a nonce word is inserted with probability
    ``insert / n_words`` (never between two content words, which would split a phrase such as
    ``small red block``: a stand-in colour word must stay next to its noun); content words
    get their :data:`SPELLING_VARIANTS` with probability ``variant``; a final ``?``, ``!`` or ``.``
    is added a quarter of the time. A model trained on such instructions cannot key its plan to a
    template's verbs and fillers, only to the content words, which is what an instruction phrased in
    an unseen way shares with the seen ones.
    """
    words = instruction.split()
    if not words:
        return instruction
    use_variants = rng.random() < variant
    out: list[str] = []
    for i, word in enumerate(words):
        if word in keep:
            out.append(SPELLING_VARIANTS.get(word, word) if use_variants else word)
        else:
            r = rng.random()
            if r < replace:
                out.append(nonce_word(rng))
            elif r >= replace + drop:
                out.append(word)
        inside_phrase = word in keep and i + 1 < len(words) and words[i + 1] in keep
        if rng.random() < insert / len(words) and not inside_phrase:
            out.append(nonce_word(rng))
    if not any(w in keep for w in out):
        return instruction
    text = " ".join(out)
    if rng.random() < 0.25:
        text += rng.choice("?!.")
    return text
