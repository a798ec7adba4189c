"""The paraphrase set of tests/data/ and ``eval brain --instructions``: loading, checking, filling, scene choice."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from robo_brain.embedded.augment import PARAPHRASES
from robo_brain.embedded.evaluate import EvalConfig
from robo_sim.scene import ObjectSpec, SceneSpec, assign_names
from robo_sim.tasks import BLOCK_WORDS, DIRECTION_WORDS, TEMPLATES, VERBS, SkillStep, Task, make_task
from robo_system.datasets.paraphrases import (
    ParaphraseEntry,
    assign_scenes,
    fill,
    load_paraphrases,
    parse_paraphrases,
)

DATA = Path(__file__).resolve().parent / "data" / "paraphrases.jsonl"
SEED0 = 1_000_000


@pytest.fixture(scope="module")
def entries() -> list[ParaphraseEntry]:
    return load_paraphrases(DATA)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' -]", " ", text.lower()).split())


_ANY_VERB = "|".join(sorted({v for vs in VERBS.values() for v in vs}))
_ANY_DIR = "|".join(sorted({w for m in DIRECTION_WORDS.values() for ws in m.values() for w in ws}, key=len,
                           reverse=True))
_SLOT = {"verb": f"(?:{_ANY_VERB})", "dir": f"(?:{_ANY_DIR})", "block": f"(?:{'|'.join(BLOCK_WORDS)})",
         "blocks": f"(?:{'|'.join(BLOCK_WORDS)})s", "container": "[a-z]+", "containers": "[a-z]+s"}
"""Placeholder patterns of the task generator's templates; object phrases and colours match any words."""


def _literal(text: str) -> str:
    """``text`` normalised like :func:`_norm` but keeping its edge spaces (it sits between placeholders)."""
    return re.sub(" +", " ", re.sub(r"[^a-z0-9' -]", " ", text.lower()))


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    parts[0], parts[-1] = _literal(parts[0]).lstrip(), _literal(parts[-1]).rstrip()
    body = "".join(_SLOT.get(p[1:-1], "[a-z' -]+?") if p.startswith("{") else re.escape(_literal(p)) for p in parts)
    return re.compile(f"^{body}$")


TEMPLATE_PATTERNS = [(f"tasks.py {key}/{split}: {t}", _pattern(t)) for key, pools in TEMPLATES.items()
                     for split, pool in pools.items() for t in pool]
TRAINING_PATTERNS = [(f"augment.PARAPHRASES {key}: {t}", _pattern(t)) for key, pool in PARAPHRASES.items()
                     for t in pool]


def test_the_set_has_at_least_30_entries_per_family_and_120_in_all(entries: list[ParaphraseEntry]) -> None:
    per_family = Counter(e.family for e in entries)
    assert set(per_family) == {"pick_place", "stack", "rearrange", "push"}
    assert all(n >= 30 for n in per_family.values()), per_family
    assert len(entries) >= 120
    variants = Counter(e.variant for e in entries if e.family == "rearrange")
    assert set(variants) == {"all", "sort"} and min(variants.values()) >= 15, variants
    typos = sum("typo" in e.tags for e in entries)
    assert 0.08 <= typos / len(entries) <= 0.15, typos  # ~10 %
    assert sum("tower" in e.tags for e in entries if e.family == "stack") >= 4
    assert sum("tidy" in e.tags for e in entries if e.family == "rearrange") >= 6
    pushes = [e for e in entries if e.family == "push"]
    assert any("your left" in e.dir_words["left"] for e in pushes)
    assert any(e.dir_words["forward"] == "away from the robot" for e in pushes)


def test_the_template_patterns_recognise_template_instructions() -> None:
    """The check below is meaningful: every generated instruction matches one of the patterns."""
    for seed in range(SEED0, SEED0 + 40):
        for split in ("seen", "unseen"):
            text = _norm(make_task(seed, split, ("pick_place", "stack", "rearrange", "push")[seed % 4]).instruction)
            assert any(p.match(text) for _, p in TEMPLATE_PATTERNS), text


@pytest.mark.parametrize("split", ["seen", "unseen"])
def test_no_filled_paraphrase_is_a_template_instruction(entries: list[ParaphraseEntry], split: str) -> None:
    """Filled on its own scenes, no entry reads as a task template or a training-only paraphrase template."""
    for a in assign_scenes(entries, split, SEED0, per_entry=2):
        text = _norm(a.instruction)
        hits = [name for name, p in TEMPLATE_PATTERNS + TRAINING_PATTERNS if p.match(text)]
        assert not hits, f"line {a.entry.line}: {a.instruction!r} matches {hits}"


@pytest.mark.parametrize("split", ["seen", "unseen"])
def test_scenes_are_distinct_deterministic_and_of_the_entry_family(entries: list[ParaphraseEntry],
                                                                   split: str) -> None:
    todo = assign_scenes(entries, split, SEED0)
    assert len(todo) == len(entries) and [a.entry for a in todo] == entries
    assert len({a.seed for a in todo}) == len(todo) and min(a.seed for a in todo) >= SEED0
    assert todo == assign_scenes(entries, split, SEED0)
    for a in todo[::7]:
        task = make_task(a.seed, split, a.entry.family)
        assert task.family == a.entry.family and (not a.entry.variant or task.variant == a.entry.variant)
        assert fill(a.entry, task) == a.instruction
        assert "{" not in a.instruction and "}" not in a.instruction


def _task(family: str, objects: list[ObjectSpec], steps: list[SkillStep], variant: str = "") -> Task:
    assign_names(objects)
    return Task(family, "seen", 0, "", SceneSpec(objects), [], steps, variant)


def _entry(family: str, template: str, variant: str = "", **kw) -> ParaphraseEntry:  # noqa: ANN003
    return parse_paraphrases(json.dumps({"family": family, "variant": variant, "template": template, **kw}))[0]


def test_fill_reads_the_expert_steps_and_skips_ambiguous_colour_words() -> None:
    blocks = [ObjectSpec("block", "red", "small"), ObjectSpec("block", "red", "large"),
              ObjectSpec("bowl", "blue", "bowl")]
    task = _task("pick_place", blocks, [SkillStep("pick", "small red block"), SkillStep("place", "blue bowl")])
    e = _entry("pick_place", "{obj_cube} -> the {dest_kind} that is {dest_color}")
    assert fill(e, task) == "small red cube -> the bowl that is blue"
    assert fill(_entry("pick_place", "the {obj_color} one into the {dest}"), task) is None  # two red blocks
    assert fill(_entry("stack", "{obj} on {dest}"), task) is None  # another family
    stack = _task("stack", [ObjectSpec("block", "red", "small"), ObjectSpec("block", "green", "large"),
                            ObjectSpec("tray", "green", "tray")],
                  [SkillStep("pick", "red block"), SkillStep("place", "green block")])
    assert fill(_entry("stack", "the {obj_color} one on the {dest}"), stack) == "the red one on the green block"
    assert fill(_entry("stack", "the {obj} on the {dest_color} one"), stack) is None  # the green tray too
    push = _task("push", [ObjectSpec("block", "cyan", "large")], [SkillStep("push", "cyan block", "left")])
    dirs = {"forward": "away from you", "backward": "toward you", "left": "to your left", "right": "to your right"}
    assert fill(_entry("push", "shove {obj} {dir}", dir_words=dirs), push) == "shove cyan block to your left"
    sort = _task("rearrange", [ObjectSpec("bowl", "red", "bowl"), ObjectSpec("tray", "blue", "tray"),
                               ObjectSpec("block", "red", "small"), ObjectSpec("block", "blue", "small")],
                 [SkillStep("pick", "red block"), SkillStep("place", "red bowl")], "sort")
    assert fill(_entry("rearrange", "by colour into the {cont_a} and the {cont_b}", "sort"), sort) == \
        "by colour into the red bowl and the blue tray"
    assert fill(_entry("rearrange", "all {color} cubes into the {dest}", "all"), sort) is None  # other variant


PUSH_DIRS = '"dir_words": {"forward": "a", "backward": "b", "left": "c", "right": "d"}'


@pytest.mark.parametrize(("text", "problem"), [
    ('{"family": "pick_place", "template": "x {obj}"', r":1: not valid JSON"),
    ('["pick_place"]', r":1: expected a JSON object"),
    ('{"family": "stack", "template": "{obj} on {dest}"}\n{"family": "pick", "template": "x"}',
     r":2: family must be one of"),
    ('{"family": "rearrange", "template": "tidy up"}', r":1: variant of a rearrange entry must be one of"),
    ('{"family": "stack", "variant": "all", "template": "x"}', r":1: variant of a stack entry"),
    ('{"family": "stack", "template": "  "}', r":1: template must be a non-empty string"),
    ('{"family": "stack", "template": "{obj} on {base}"}', r":1: placeholder \{base\} is not one of"),
    ('{"family": "stack", "template": "{obj} on {dest"}', r":1: template .*: "),
    ('{"family": "stack", "template": "{obj:>9} on {dest}"}', r":1: template .*: placeholders are plain names"),
    ('{"family": "push", "template": "push {obj} {dir}"}', r":1: a push entry needs dir_words"),
    ('{"family": "push", "template": "push {obj} {dir}", "dir_words": {"left": "l"}}', r":1: a push entry needs"),
    ('{"family": "push", "template": "push {obj}", ' + PUSH_DIRS + "}", r":1: a push template must say"),
    ('{"family": "stack", "template": "{obj} on {dest}", ' + PUSH_DIRS + "}", r":1: dir_words is for push"),
    ('{"family": "stack", "template": "{obj} on {dest}", "tags": "typo"}', r":1: tags must be a list"),
    ('{"family": "stack", "template": "{obj} on {dest}", "note": 1}', r":1: unknown field\(s\) \['note'\]"),
    ('{"family": "stack", "template": "{obj} on {dest}"}\n\n{"family": "stack", "template": "{obj} on {dest}"}',
     r":3: the same entry as line 1"),
    ("\n\n", r": no entries"),
])
def test_bad_files_raise_a_value_error_naming_line_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + problem):
        load_paraphrases(path)
    with pytest.raises(ValueError, match="no such paraphrase file"):
        load_paraphrases(tmp_path / "missing.jsonl")


def test_eval_cli_takes_an_instruction_file_and_only_the_system_layer_fills_it() -> None:
    from robo_brain.embedded.evaluate import evaluate
    from robo_cli.main import build_parser

    args = build_parser().parse_args(["eval", "brain", "--instructions", str(DATA), "--per-instruction", "2"])
    assert args.instructions == str(DATA) and args.per_instruction == 2
    with pytest.raises(ValueError, match="evaluate_brain"):
        evaluate(EvalConfig(instructions=str(DATA)), scenes=None)
    with pytest.raises(ValueError, match="scenes_per_instruction"):
        EvalConfig(scenes_per_instruction=0)


def test_eval_brain_plans_the_filled_paraphrases(tmp_path: Path) -> None:
    from robo_brain.embedded.model import build_model, save_checkpoint
    from robo_system.datasets.brain import evaluate_brain
    from tests.test_brain_embedded import TINY

    path = tmp_path / "p.jsonl"
    path.write_text('{"family": "stack", "template": "crown the {dest} with the {obj}", "tags": ["base_view"]}\n'
                    '{"family": "rearrange", "variant": "sort", "template": "tidy up by colour"}\n')
    model = save_checkpoint(tmp_path / "tiny", *build_model(TINY))
    report = evaluate_brain(EvalConfig(model=str(model), split="seen", max_new_tokens=8, instructions=str(path)),
                            progress=False)
    assert report["episodes"] == 2 and report["entries"] == 2 and report["plan_exact_match"] == 0.0  # untrained
    assert set(report["per_family"]) == {"stack", "rearrange"} and set(report["per_variant"]) == {"rearrange/sort"}
    assert set(report["per_tag"]) == {"base_view"} and report["templated_same_scenes"]["episodes"] == 2
    rows = report["per_entry"]
    assert [r["line"] for r in rows] == [1, 2] and rows[0]["instruction"].startswith("crown the ")
    assert rows[1]["instruction"] == "tidy up by colour" and rows[1]["templated_instruction"] != rows[1]["instruction"]
    assert rows[0]["seed"] % 4 == 1 and rows[1]["seed"] % 4 == 2  # stack and rearrange seeds of the cycle
