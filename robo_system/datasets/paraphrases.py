"""Paraphrase instruction sets for ``robo-stack eval brain --instructions FILE``.

A paraphrase file (``tests/data/paraphrases.jsonl``, described in ``tests/data/paraphrases.md``) holds
one JSON object per line: an instruction template of one task family (and, for ``rearrange``, one
variant) whose placeholders are filled from a scene's :class:`~robo_sim.tasks.Task`, so that the
filled instruction asks for exactly the expert's plan of that scene. This module loads and checks
such files (:func:`load_paraphrases`), fills an entry from a task (:func:`fill`) and picks the scenes
each entry is planned on (:func:`assign_scenes`); :func:`robo_system.datasets.brain.evaluate_brain`
plans and scores them like the templated evaluation.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from robo_brain.embedded.dataset import family_for_seed
from robo_sim import catalog
from robo_sim.tasks import FAMILIES, Task, make_task

VARIANTS: dict[str, tuple[str, ...]] = {"pick_place": ("",), "stack": ("",), "rearrange": ("all", "sort"),
                                        "push": ("",)}
"""The variants of each family (``make_task``'s ``Task.variant``)."""

PLACEHOLDERS: dict[tuple[str, str], frozenset[str]] = {
    ("pick_place", ""): frozenset({"obj", "obj_cube", "obj_color", "dest", "dest_color", "dest_kind"}),
    ("stack", ""): frozenset({"obj", "obj_cube", "obj_color", "dest", "dest_cube", "dest_color"}),
    ("rearrange", "all"): frozenset({"color", "dest", "dest_color", "dest_kind"}),
    ("rearrange", "sort"): frozenset({"cont_a", "cont_b"}),
    ("push", ""): frozenset({"obj", "obj_cube", "obj_color", "dir"}),
}
"""The placeholders a template of each (family, variant) may use (see ``tests/data/paraphrases.md``)."""

COLOUR_ONLY = {"obj_color": "obj", "dest_color": "dest"}
"""Placeholders naming an object by its colour alone, and the object they stand for: an entry using one
fits only scenes where no other object has that colour."""

FIELDS = frozenset({"family", "variant", "template", "dir_words", "tags"})
MAX_SEEDS_PER_ENTRY = 4000
"""How many seeds of its family a scene search may walk past for one entry before giving up."""


@dataclass(frozen=True)
class ParaphraseEntry:
    """One line of a paraphrase file.

    Attributes:
        line: 1-based line number in the file.
        family: Task family.
        variant: ``all`` / ``sort`` for ``rearrange``, empty otherwise.
        template: The instruction with ``{placeholders}``.
        dir_words: For ``push``: the phrase of each direction (``forward``, ``backward``, ``left``, ``right``).
        tags: Free labels (``polite``, ``terse``, ``typo`` ...) for breakdowns.
    """

    line: int
    family: str
    variant: str
    template: str
    dir_words: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def placeholders(self) -> set[str]:
        """The placeholder names of the template."""
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}


def _entry(obj: object, where: str, line: int) -> ParaphraseEntry:
    def bad(problem: str) -> ValueError:
        return ValueError(f"{where}:{line}: {problem}")

    if not isinstance(obj, dict):
        raise bad(f"expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - FIELDS
    if unknown:
        raise bad(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(FIELDS)}")
    family, variant, template = obj.get("family"), obj.get("variant", ""), obj.get("template")
    if family not in FAMILIES:
        raise bad(f"family must be one of {FAMILIES}, got {family!r}")
    if variant not in VARIANTS[family]:
        raise bad(f"variant of a {family} entry must be one of {VARIANTS[family]}, got {variant!r}")
    if not isinstance(template, str) or not template.strip():
        raise bad("template must be a non-empty string")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise bad(f"template {template!r}: {e}") from None
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not name or spec or conv:
            raise bad(f"template {template!r}: placeholders are plain names such as {{obj}}, got "
                      f"{{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}")
        if name not in PLACEHOLDERS[(family, variant)]:
            raise bad(f"placeholder {{{name}}} is not one of a {family}{'/' + variant if variant else ''} entry's "
                      f"{sorted(PLACEHOLDERS[(family, variant)])}")
    names = {name for _, name, _, _ in parsed if name is not None}
    dir_words = obj.get("dir_words")
    if family == "push":
        if "dir" not in names:
            raise bad("a push template must say the direction with {dir}")
        if (not isinstance(dir_words, dict) or set(dir_words) != set(catalog.DIRECTIONS)
                or not all(isinstance(v, str) and v.strip() for v in dir_words.values())):
            raise bad(f"a push entry needs dir_words: a non-empty phrase for each of {sorted(catalog.DIRECTIONS)}, "
                      f"got {dir_words!r}")
    elif dir_words is not None:
        raise bad(f"dir_words is for push entries only (this one is {family})")
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise bad(f"tags must be a list of non-empty strings, got {tags!r}")
    return ParaphraseEntry(line, family, variant, template, dict(dir_words or {}), tuple(tags))


def parse_paraphrases(text: str, where: str = "<paraphrases>") -> list[ParaphraseEntry]:
    """Parse and check the JSONL ``text`` of a paraphrase file (blank lines are skipped); ``ValueError``
    naming ``where``, the line and the problem for anything unusable."""
    entries = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}:{i}: not valid JSON ({e.msg} at column {e.colno})") from None
        entries.append(_entry(obj, where, i))
    if not entries:
        raise ValueError(f"{where}: no entries")
    seen: dict[tuple, int] = {}
    for e in entries:
        key = (e.family, e.variant, e.template, tuple(sorted(e.dir_words.items())))
        if key in seen:
            raise ValueError(f"{where}:{e.line}: the same entry as line {seen[key]}")
        seen[key] = e.line
    return entries


def load_paraphrases(path: str | Path) -> list[ParaphraseEntry]:
    """Load and check the paraphrase file at ``path`` (see :func:`parse_paraphrases`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such paraphrase file")
    return parse_paraphrases(path.read_text(encoding="utf-8"), str(path))


def slot_values(task: Task) -> dict[str, str]:
    """Every placeholder value of ``task``'s family and variant, read from its expert steps and scene."""
    steps, scene = task.steps, task.scene
    if task.family in ("pick_place", "stack", "push"):
        obj = scene.by_name(steps[0].arg)
        out = {"obj": obj.name, "obj_cube": obj.name.replace("block", "cube"), "obj_color": obj.color}
        if task.family == "push":
            out["dir"] = steps[0].direction
            return out
        dest = scene.by_name(steps[1].arg)
        out.update(dest=dest.name, dest_color=dest.color)
        if task.family == "stack":
            out["dest_cube"] = dest.name.replace("block", "cube")
        else:
            out["dest_kind"] = dest.kind
        return out
    if task.variant == "all":
        dest = scene.by_name(steps[1].arg)
        return {"color": scene.by_name(steps[0].arg).color, "dest": dest.name, "dest_color": dest.color,
                "dest_kind": dest.kind}
    conts = [o for o in scene.objects if not o.is_block]
    return {"cont_a": conts[0].name, "cont_b": conts[1].name}


def fill(entry: ParaphraseEntry, task: Task) -> str | None:
    """``entry``'s instruction for ``task``, or None when the task is not of the entry's family and variant
    or when a colour-only placeholder would not name one object (another object has that colour)."""
    if task.family != entry.family or (entry.variant and task.variant != entry.variant):
        return None
    values = slot_values(task)
    names = entry.placeholders
    for slot, named in COLOUR_ONLY.items():
        if slot in names:
            target = task.scene.by_name(values[named])
            if any(o.color == target.color for o in task.scene.objects if o is not target):
                return None
    if "dir" in names:
        values["dir"] = entry.dir_words[values["dir"]]
    return entry.template.format(**values)


@dataclass(frozen=True)
class Assignment:
    """One entry planned on one scene: the entry, the task seed and the filled instruction."""

    entry: ParaphraseEntry
    seed: int
    instruction: str


def assign_scenes(entries: list[ParaphraseEntry], split: str, seed_offset: int, per_entry: int = 1,
                  task: Callable[[int, str, str], Task] = make_task) -> list[Assignment]:
    """Pick ``per_entry`` scenes for each entry, deterministically.

    The scenes of a family are the seeds ``seed_offset, seed_offset + 1, ...`` whose family (the
    templated evaluation's, :func:`~robo_brain.embedded.dataset.family_for_seed`) is the entry's,
    made with ``task(seed, split, family)``. Entries take scenes in file order: each the first ones,
    not yet taken by an earlier entry, of its variant that it fits (:func:`fill`), so a scene is
    planned with at most one paraphrase.
    """
    cache: dict[int, Task] = {}
    taken: set[int] = set()
    out = []
    for e in entries:
        seed, walked, found = seed_offset, 0, 0
        while found < per_entry:
            if family_for_seed(seed) == e.family and seed not in taken:
                walked += 1
                if walked > MAX_SEEDS_PER_ENTRY:
                    raise ValueError(f"line {e.line}: no fitting {e.family} scene in {MAX_SEEDS_PER_ENTRY} seeds "
                                     f"from {seed_offset} ({split}) for {e.template!r}")
                if seed not in cache:
                    cache[seed] = task(seed, split, e.family)
                text = fill(e, cache[seed])
                if text is not None:
                    out.append(Assignment(e, seed, text))
                    taken.add(seed)
                    found += 1
            seed += 1
    return out
