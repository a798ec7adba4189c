"""Plans grounded in what the brain sees: every name a plan uses must be in the scene listing.

:func:`check_grounded` is applied to every back-end's plan (a plan naming anything else is refused
with the name and the listing, and is never published); :func:`answer_text_with_keypoints` turns
the brain v2's code lines into the planner's text format with keypoint pixels from perception.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

from robo_brain.perception import CONTAINER_FLOOR_M, SeenObject, push_pixels
from robo_common.camera import CameraModel
from robo_common.colours import ACHROMATIC, CHROMATIC, SYNONYMS
from robo_common.plan_language import PlanParseError, format_step, parse_call
from robo_common.plan_types import PlanData

NAME_ARGS = ("object", "target")
SLOTS_M = ((-0.033, 0.0), (0.033, 0.0), (0.0, 0.04))
"""Where successive blocks go in one container (base-frame offsets from its centre), so a second block
is not put down on the first."""


def check_grounded(plan: PlanData, scene: Sequence[SeenObject]) -> None:
    """Raise :class:`PlanParseError` naming the first object or target of ``plan`` that ``scene`` does not have
    (and the first ``pick``/``push`` of something that is not a block)."""
    names = {o.name: o for o in scene}
    seen = ", ".join(names) or "nothing"
    for i, sub in enumerate(plan.subtasks):
        call = parse_call(sub.code, i + 1)
        for arg in NAME_ARGS:
            name = call.args.get(arg)
            if name is None:
                continue
            if name not in names:
                raise PlanParseError(i + 1, f"the plan names {name!r}, which the brain does not see on the table "
                                     f"(it sees: {seen})", sub.code)
            if arg == "object" and not names[name].is_block:
                raise PlanParseError(i + 1, f"the plan would {call.skill} the {name}, which is a {names[name].kind}, "
                                     "not a block", sub.code)


NOUN_KINDS = {"block": ("block",), "blocks": ("block",), "cube": ("block",), "cubes": ("block",),
              "brick": ("block",), "bowl": ("bowl",), "bowls": ("bowl",), "tray": ("tray",), "trays": ("tray",),
              "container": ("bowl", "tray"), "containers": ("bowl", "tray")}
"""Nouns an instruction may put after a colour, and the kinds of object they mean."""


MODIFIERS = frozenset("""
a an the this that these those each every all both other another same matching its their your my our one two three
four any some either first second third last next left right leftmost rightmost middle centre center near far nearer
nearest closest farthest furthest front back base top bottom big small large little tiny huge larger smaller bigger
biggest smallest largest remaining single lone only empty colour color coloured colored correct proper corresponding
appropriate respective own loose stacked
""".split())
"""Words that may stand before an object noun besides colour words (determiners, sizes, places)."""
COLOUR_WORDS = frozenset([*CHROMATIC, *ACHROMATIC, *SYNONYMS, "brown", "magenta", "violet", "teal", "lime", "navy",
                          "gold", "silver", "beige", "maroon", "olive", "turquoise", "lavender", "crimson", "scarlet",
                          "indigo", "aqua", "tan", "golden"])
"""Colour words a person may use; whether the scene has one is the colour check's and the model's to say."""


def _near(word: str, known: frozenset[str]) -> bool:
    """``word`` is one of ``known`` or a typo of one (1 edit for short words, 2 from 5 letters on)."""
    if word in known:
        return True
    limit = 1 if len(word) <= 4 else 2
    return any(abs(len(word) - len(k)) <= limit and _edits(word, k) <= limit for k in known)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance, with a swap of neighbours counted as one edit."""
    d = [[max(i, j) if i == 0 or j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


DETERMINERS = frozenset("the a an this that these those each every all both".split())
"""Words after which a word before an object noun modifies it ("the robon block"), rather than being a verb
("sort blocks") or a particle ("tidy up blocks")."""


def check_object_words(instruction: str, scene: Sequence[SeenObject]) -> None:
    """Raise :class:`PlanParseError` when a determiner, a word and an object noun (block, cube, bowl, tray,
    container, ...) follow each other and the word is neither a colour word, a size or place word
    (:data:`MODIFIERS`), nor a typo of one: "the robon block" names an object the brain cannot see, and a plan
    of other objects would not be what was asked."""
    words = re.findall(r"[a-z]+", instruction.lower())
    known = MODIFIERS | COLOUR_WORDS
    for det, before, noun in zip(words, words[1:], words[2:], strict=False):
        if det in DETERMINERS and noun in NOUN_KINDS and not _near(before, known) and before not in NOUN_KINDS:
            listing = ", ".join(o.name for o in scene) or "nothing"
            raise PlanParseError(1, f"the instruction names {before} {noun}, which the brain does not see on the table "
                                 f"(it sees: {listing})", instruction)


PLACE_NOUNS = frozenset("""
robot robots arm gripper hand side sides left right front back rear forward forwards backward backwards top bottom
base middle centre center edge edges corner table tabletop surface stack tower pile you me camera way spot place
position area one ones it them
""".split())
"""Words for where something may go that are no object of the scene listing (the robot's left, the table, the
stack), and the pronouns that stand for an object ("the red one")."""
CONTAINER_NOUNS = frozenset("""
dish dishes plate plates basket baskets box boxes bin bins cup cups pot pots tub tubs crate crates bucket buckets
receptacle receptacles holder pan mug
""".split())
"""Other words a person may use for a bowl or a tray; which container is meant is the model's to say."""
PREPOSITIONS = frozenset("to into onto in inside on toward towards at beside near next over across off".split())
PHRASE_ENDS = PREPOSITIONS | frozenset("and then please thanks thank now but so while with without using by from of "
                                       "for a an".split())
_PLACE_HEADS = frozenset(NOUN_KINDS) | PLACE_NOUNS | CONTAINER_NOUNS
_MODIFIER_WORDS = MODIFIERS | COLOUR_WORDS | {"s"}  # "s": the robot's
_OWN_WORDS = MODIFIERS | COLOUR_WORDS | _PLACE_HEADS
"""The brain's own words: object, place and container nouns, colours, sizes and determiners."""


def check_destination(instruction: str, scene: Sequence[SeenObject]) -> None:
    """Raise :class:`PlanParseError` when a place the instruction sends something to ("to the moon", "in the
    kitchen") has neither an object noun (block, bowl, tray, ...), nor a word for a place on the table (the
    robot's left, the stack: :data:`PLACE_NOUNS`), nor only colour and size words ("on the red"): the brain would
    otherwise put the block somewhere it sees, which is not what was asked."""
    words = re.findall(r"[a-z]+", instruction.lower())
    for i in range(len(words) - 2):
        if words[i] not in PREPOSITIONS or words[i + 1] not in ("the", "your", "my"):
            continue
        run: list[str] = []
        for w in words[i + 2:]:
            if w in PHRASE_ENDS:
                break
            run.append(w)
        if run and not any(_near(w, _PLACE_HEADS) for w in run) and not all(_near(w, _MODIFIER_WORDS) for w in run):
            listing = ", ".join(o.name for o in scene) or "nothing"
            raise PlanParseError(1, f"the instruction asks for '{words[i]} the {' '.join(run)}', which names nothing "
                                 f"the brain sees on the table (it sees: {listing})", instruction)


ENGLISH_SHARE = 0.6
"""Below this share of English words (or typos of the brain's own words) an instruction is not read: the training
wordings, typos and made-up colour names included, never go below 0.8."""


def check_english(instruction: str, lexicon: frozenset[str] | None) -> None:
    """Raise :class:`PlanParseError` when at least two words and more than ``1 - ENGLISH_SHARE`` of the words of
    ``instruction`` are neither in ``lexicon`` (English words; the LM back-end uses its tokenizer's whole-word
    tokens) nor a colour, size, place or object word of the brain or a typo of one ("sorteer de blokken op
    kleur"). On such words the decoder would still pick some listed objects, a plan nobody asked for.
    ``lexicon=None`` (a back-end without one) checks nothing."""
    if lexicon is None:
        return
    words = re.findall(r"[^\W\d_]+", instruction.lower())
    unknown = [w for w in words if w not in lexicon and not _near(w, _OWN_WORDS)]
    if len(unknown) >= 2 and len(unknown) > (1.0 - ENGLISH_SHARE) * len(words):
        raise PlanParseError(1, f"not understood: {len(unknown)} of {len(words)} words are not English "
                             f"({', '.join(dict.fromkeys(unknown))}); the brain reads instructions in English",
                             instruction)


def check_instruction_colours(instruction: str, scene: Sequence[SeenObject]) -> None:
    """Raise :class:`PlanParseError` when the instruction names a basic colour that no listed object has
    ("the blue block" on a table without anything blue), or a colour and a kind no object has together
    ("the red block" beside a red bowl only): a plan for it could only be about something else."""
    words = [SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", instruction.lower())]
    missing = []
    for i, w in enumerate(words):
        if w not in CHROMATIC and w not in ACHROMATIC:
            continue
        after = [x for x in words[i + 1:i + 3] if x not in ("small", "large", "big", "little")]
        kinds = NOUN_KINDS.get(after[0], ()) if after else ()
        if not any(o.colour == w and (not kinds or o.kind in kinds) for o in scene):
            missing.append(f"{w} {after[0]}" if kinds else w)
    if missing:
        listing = ", ".join(o.name for o in scene) or "nothing"
        raise PlanParseError(1, f"the instruction names {' and '.join(dict.fromkeys(missing))}, which the brain "
                             f"does not see on the table (it sees: {listing})", instruction)


def check_script(instruction: str) -> None:
    """Raise :class:`PlanParseError` when most letters of ``instruction`` are not Latin (Chinese, Japanese,
    Cyrillic, ...): the brain v2 reads English, and on words it cannot read its decoder would still pick some
    listed objects, a plan nobody asked for. Emoji, digits and punctuation are not letters and do not count."""
    letters = [c for c in instruction if unicodedata.category(c).startswith("L")]
    other = Counter(unicodedata.name(c, "UNKNOWN").split()[0] for c in letters
                    if not unicodedata.name(c, "").startswith("LATIN"))
    if letters and sum(other.values()) * 2 > len(letters):
        scripts = ", ".join(name.lower() for name, _ in other.most_common(2))
        raise PlanParseError(1, f"not understood: the instruction is written in {scripts} script; the brain reads "
                             "instructions in English", instruction)


def left_to_right(lines: Sequence[str], names: Sequence[str]) -> list[str]:
    """``lines`` with independent pick-and-place pairs in the order of their blocks in ``names`` (the listing,
    left to right), the order the system prompt asks for and the expert's plans, which the cerebellum learned
    from, always use. Pairs are independent when no block that is moved is also a target; anything else
    (a push, a stack onto a block that moves, a pick without its place) is left as the model wrote it."""
    body = [line for line in lines if line != "done()"]
    if len(body) < 4 or len(body) % 2 or body == list(lines):
        return list(lines)
    calls = [parse_call(line, i + 1) for i, line in enumerate(body)]
    pairs = [(calls[i], calls[i + 1], body[i], body[i + 1]) for i in range(0, len(body), 2)]
    if not all(a.skill == "pick" and b.skill == "place" for a, b, _, _ in pairs):
        return list(lines)
    moved = {str(a.args["object"]) for a, _, _, _ in pairs}
    if moved & {str(b.args["target"]) for _, b, _, _ in pairs} or any(m not in names for m in moved):
        return list(lines)
    pairs.sort(key=lambda p: list(names).index(str(p[0].args["object"])))
    return [line for _, _, pick, place in pairs for line in (pick, place)] + ["done()"]


def answer_text_with_keypoints(lines: Sequence[str], scene: Sequence[SeenObject], camera: CameraModel,
                               reasoning: str, placed_before: Sequence[str] = ()) -> str:
    """The planner's text of ``lines`` with keypoint pixels from ``scene`` (grasp: the block's top-face
    centre; place: a block's top or a container's floor, with :data:`SLOTS_M` when a container gets
    more than one block; push: behind the object and past it along the direction).

    ``placed_before``: the targets of ``place`` steps already done (a correction's finished steps), so that
    a container that got a block before gets the next one in its next slot, not on top of the first.
    """
    names = {o.name: o for o in scene}
    calls = [parse_call(line, i + 1) for i, line in enumerate(lines)]
    used: Counter[str] = Counter(placed_before)
    places = Counter(str(c.args["target"]) for c in calls if c.skill == "place") + used
    out = [f"Reasoning: {reasoning}", "Plan:"]
    for line, call in zip(lines, calls, strict=True):
        if call.skill == "pick":
            o = names[str(call.args["object"])]
            out.append(format_step(line, {"grasp": _round((o.u, o.v))}))
        elif call.skill == "place":
            target = names[str(call.args["target"])]
            slot = SLOTS_M[min(used[target.name], len(SLOTS_M) - 1)] if places[target.name] > 1 else (0.0, 0.0)
            used[target.name] += 1
            out.append(format_step(line, {"place": _place_pixel(target, slot, camera)}))
        elif call.skill == "push":
            start, end = push_pixels(names[str(call.args["object"])], str(call.args["direction"]), camera)
            out.append(format_step(line, {"push_start": _round(start), "push_end": _round(end)}))
        else:
            out.append(line)
    return "\n".join(out)


def _round(px: tuple[float, float]) -> tuple[int, int]:
    return round(px[0]), round(px[1])


def _place_pixel(target: SeenObject, slot: tuple[float, float], camera: CameraModel) -> tuple[int, int]:
    if target.is_block:
        return _round((target.u, target.v))
    x, y, _ = target.centre
    return _round(camera.project(np.array([x + slot[0], y + slot[1], CONTAINER_FLOOR_M])))


__all__ = ["answer_text_with_keypoints", "check_destination", "check_english", "check_grounded",
           "check_instruction_colours", "check_object_words", "check_script", "left_to_right"]
