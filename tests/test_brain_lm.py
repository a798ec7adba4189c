"""Brain v2: perception listing, constrained decoding, training data, training and loading (tiny LM from a config)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robo_brain.lm.data import TaskRecord, examples_for, reworded
from robo_brain.lm.decode import build_trie, decode_lines, encode_answer
from robo_brain.lm.prompt import REFUSALS, prompt_parts, step_lines
from robo_brain.perception import PerceptionConfig, listing_text, perceive, push_pixels
from robo_common.camera import CameraModel
from robo_sim.tasks import make_task
from robo_system.datasets.brain import SceneRenderer, camera_model
from robo_system.datasets.brain_lm import task_words
from robo_system.datasets.paraphrases import assign_scenes, load_paraphrases
from tests.brain_scene_helpers import NeverAsked

DATA = Path(__file__).resolve().parent / "data" / "paraphrases.jsonl"


# ---------------------------------------------------------------- perception
@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer()
    yield r
    r.close()


def _camera(renderer: SceneRenderer) -> CameraModel:
    return camera_model(renderer.world)


@pytest.mark.parametrize("split", ["seen", "unseen"])
def test_perception_lists_the_simulator_names_and_top_face_pixels(renderer: SceneRenderer, split: str) -> None:
    camera = _camera(renderer)
    for seed in range(1_000_000, 1_000_012):
        task, rgb, depth, plan = renderer.scene(seed, split)
        seen = perceive(rgb, depth, camera)
        assert sorted(o.name for o in seen) == sorted(o.name for o in task.scene.objects), seed
        assert [o.u for o in seen] == sorted(o.u for o in seen)  # left to right
        by_name = {o.name: o for o in seen}
        for st in plan.subtasks:
            if st.skill == "pick":
                o = by_name[st.code.split('"')[1]]
                assert np.hypot(o.u - st.keypoints[0].u, o.v - st.keypoints[0].v) < 2.0


def test_perception_on_an_empty_table_and_bad_images(renderer: SceneRenderer) -> None:
    camera = _camera(renderer)
    _, rgb, depth, _ = renderer.scene(1_000_000, "seen")
    flat = np.full_like(depth, float(np.max(depth)))
    assert perceive(rgb, flat, camera) == [] and listing_text([]) == "none"
    with pytest.raises(ValueError, match="RGB uint8"):
        perceive(rgb.astype(np.float32), depth, camera)
    with pytest.raises(ValueError, match="must match the camera"):
        perceive(rgb, depth[:10], camera)
    with pytest.raises(ValueError, match="min_height < max_height"):
        PerceptionConfig(min_height=0.2, max_height=0.1)


def test_push_pixels_go_the_named_way(renderer: SceneRenderer) -> None:
    camera = _camera(renderer)
    _, rgb, depth, _ = renderer.scene(1_000_000, "seen")
    block = next(o for o in perceive(rgb, depth, camera) if o.is_block)
    (su, sv), (eu, ev) = push_pixels(block, "forward", camera)
    assert ev > sv  # forward is away from the robot: towards the camera, down the image
    with pytest.raises(ValueError, match="unknown push direction"):
        push_pixels(block, "up", camera)


# ---------------------------------------------------------------- training data
def test_training_wordings_never_say_a_paraphrase_of_the_scoring_set() -> None:
    """The paraphrase set scores the model; the training generator must not produce any of its sentences."""
    norm = lambda t: " ".join(re.sub(r"[^a-z0-9' ]", " ", t.lower()).split())  # noqa: E731
    for split in ("seen", "unseen"):
        for a in assign_scenes(load_paraphrases(DATA), split, 1_000_000):
            task = make_task(a.seed, split, a.entry.family)
            names = [o.name for o in task.scene.objects]
            rec = TaskRecord(a.seed, split, task.family, task.variant if task.family == "rearrange" else "",
                             task.instruction, names, [o.name for o in task.scene.objects if o.is_block], [],
                             **task_words(task))
            rng = random.Random(a.seed)
            said = {norm(reworded(rec, rng, typo_prob=0.0)) for _ in range(300)}
            assert norm(a.instruction) not in said, f"line {a.entry.line}: {a.instruction!r}"


def test_examples_mix_templates_rewordings_and_refusals() -> None:
    rec = TaskRecord(0, "seen", "pick_place", "", "put the red block in the blue bowl", ["red block", "blue bowl"],
                     ["red block"], ['pick(object="red block")', 'place(target="blue bowl")', "done()"],
                     obj="red block", dest="blue bowl")
    pairs = examples_for(rec, random.Random(0), 400, template_prob=0.25, refusal_prob=0.2)
    answers = [tuple(a) for _, a in pairs]
    assert answers.count(tuple(rec.lines)) > 250
    assert answers.count((REFUSALS["not in the scene"],)) > 10
    assert answers.count((REFUSALS["not understood"],)) > 10
    absent = [t for t, a in pairs if a == [REFUSALS["not in the scene"]]]
    assert all("red block" not in t or "blue bowl" not in t for t in absent)


# ---------------------------------------------------------------- tiny LM
@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module) -> str:  # noqa: ANN001
    """A tiny Llama with SmolLM2's chat tokens, saved as the converted base ``tiny``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("pretrained")
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()=\"_,.:;!?'\n-"))
    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=4096, tie_word_embeddings=True))
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    monkeypatch_module.setenv("ROBO_PRETRAINED_DIR", str(root))
    return "tiny"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _tokenizer(base: str):  # noqa: ANN202
    from transformers import AutoTokenizer

    from robo_brain.lm.weights import base_path

    return AutoTokenizer.from_pretrained(base_path(base))


def test_constrained_decoding_writes_only_allowed_lines(tiny_base: str) -> None:
    tok = _tokenizer(tiny_base)
    names, blocks = ["red block", "blue bowl"], ["red block"]
    allowed = set(step_lines(blocks, names))
    gen = torch.Generator().manual_seed(1)

    def step(ids: list[int]) -> torch.Tensor:  # a random "model"
        return torch.randn(len(tok), generator=gen)

    def options(i: int, lines: list[str]):  # noqa: ANN202
        return (list(REFUSALS.values()) if i == 0 else []) + sorted(allowed), [*REFUSALS.values(), "done()"]

    for _ in range(20):
        lines, decisions = decode_lines(step, torch.randn(len(tok), generator=gen), options, tok, max_lines=5)
        assert lines[-1] in ("done()", *REFUSALS.values()) and len(lines) <= 5
        assert all(line in allowed or line in REFUSALS.values() for line in lines)
        assert all(0 < d.probability <= 1 and d.options >= 2 for d in decisions)
    trie = build_trie(tok, ['pick(object="red block")', "done()"], ["done()"])
    assert len(trie.children) == 2  # 'p' and 'd' differ at the first character token
    assert encode_answer(tok, ["done()"])[-1] == tok.convert_tokens_to_ids("<|im_end|>")


def test_train_resume_and_load_the_adapter(tiny_base: str, tmp_path: Path) -> None:
    from robo_brain.lm.backend import LMPlannerBackend, is_lm_checkpoint
    from robo_brain.lm.train import LMTrainConfig, train

    rec = TaskRecord(0, "seen", "pick_place", "", "put the red block in the blue bowl", ["red block", "blue bowl"],
                     ["red block"], ['pick(object="red block")', 'place(target="blue bowl")', "done()"],
                     obj="red block", dest="blue bowl")
    out = tmp_path / "brain_lm"
    cfg = LMTrainConfig(out=str(out), base=tiny_base, steps=2, batch_size=2, save_every=1, rank=2, threads=1)
    first = train(cfg, [rec], progress=False)
    assert first["step"] == 2 and is_lm_checkpoint(out)
    assert (out / "adapter_model.safetensors").is_file()
    more = train(LMTrainConfig(**{**cfg.__dict__, "steps": 3}), [rec], progress=False)
    assert more["step"] == 3 and len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "brain_lm.json").read_text())["base"] == tiny_base
    backend = LMPlannerBackend(out)
    answer = backend.plan_lines(rec.names, rec.blocks, rec.instruction)
    assert answer.lines[-1] in ("done()", *REFUSALS.values())
    assert set(answer.lines) <= set(step_lines(rec.blocks, rec.names)) | set(REFUSALS.values())
    assert prompt_parts(rec.names, "x").user.startswith("<|im_start|>user\nObjects: red block, blue bowl")


def test_a_missing_base_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robo_brain.backends import BackendError
    from robo_brain.lm.backend import LMPlannerBackend

    monkeypatch.setenv("ROBO_PRETRAINED_DIR", str(tmp_path / "none"))
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "brain_lm.json").write_text('{"base": "smollm2-135m-instruct"}')
    with pytest.raises(BackendError, match="make setup"):
        LMPlannerBackend(tmp_path / "ckpt")


# ---------------------------------------------------------------- grounding in the planner
def _scene_and_pixels(renderer: SceneRenderer):  # noqa: ANN202
    task, rgb, depth, plan = renderer.scene(1_000_000, "seen", "pick_place")
    return task, rgb, depth, _camera(renderer), plan


def _scene_record(renderer: SceneRenderer):  # noqa: ANN202
    """The pick_place scene of :func:`_scene_and_pixels`, its perceived names and its training record."""
    task, rgb, depth, camera, plan = _scene_and_pixels(renderer)
    names = [o.name for o in perceive(rgb, depth, camera)]
    rec = TaskRecord(0, "seen", "pick_place", "", task.instruction, names,
                     [o.name for o in task.scene.objects if o.is_block], [s.code for s in plan.subtasks],
                     **task_words(task))
    return task, rgb, depth, camera, plan, names, rec


def test_a_plan_naming_an_object_the_brain_does_not_see_is_refused_with_the_name(renderer: SceneRenderer,
                                                                                 tmp_path: Path) -> None:
    from robo_brain.backends.scripted import ScriptedBackend
    from robo_brain.planner import Outcome, Planner, PlannerConfig

    task, rgb, depth, camera, plan = _scene_and_pixels(renderer)
    pick = plan.subtasks[0]
    u, v = round(pick.keypoints[0].u), round(pick.keypoints[0].v)
    answers = tmp_path / "answers.txt"
    answers.write_text(f'Reasoning: x\nPlan:\npick(object="robon block") @ grasp=({u}, {v})\ndone()\n')
    result = Planner(ScriptedBackend(str(answers)), PlannerConfig(parse_retries=0)).plan(
        "put the robon block away", rgb, depth, camera)
    assert result.outcome == Outcome.FAILED and "robon block" in result.reason and "does not see" in result.reason
    assert all(o.name in result.reason for o in task.scene.objects)  # the listing is named too
    good = tmp_path / "good.txt"
    good.write_text(f'Reasoning: x\nPlan:\n{pick.code} @ grasp=({u}, {v})\ndone()\n')
    ok = Planner(ScriptedBackend(str(good)), PlannerConfig(parse_retries=0)).plan("pick it", rgb, depth, camera)
    assert ok.outcome == Outcome.PLANNED
    off = Planner(ScriptedBackend(str(answers)), PlannerConfig(parse_retries=0, ground=False)).plan(
        "put the robon block away", rgb, depth, camera)
    assert off.outcome == Outcome.PLANNED  # grounding can be switched off (parameter ground_names)


def test_the_lm_planner_plans_only_seen_names_with_perception_keypoints(renderer: SceneRenderer, tiny_base: str,
                                                                        tmp_path: Path) -> None:
    from robo_brain.lm.backend import LMPlannerBackend
    from robo_brain.lm.train import LMTrainConfig, train
    from robo_brain.planner import Outcome, Planner

    task, rgb, depth, camera, plan, names, rec = _scene_record(renderer)
    out = tmp_path / "lm"
    train(LMTrainConfig(out=str(out), base=tiny_base, steps=1, batch_size=1, rank=2, threads=1), [rec],
          progress=False)
    planner = Planner(LMPlannerBackend(out))
    assert planner.reads_scene and planner.correction_mode == "replan"
    result = planner.plan(task.instruction, rgb, depth, camera)
    if result.outcome == Outcome.FAILED:  # an untrained model may refuse: the reason names the listing
        assert "cannot ground" in result.reason and names[0] in result.reason
    else:
        for sub in result.plan.subtasks:
            assert all(n in names for n in re.findall(r'"([^"]+)"', sub.code) if n not in
                       ("left", "right", "forward", "backward"))
            assert all(0 <= k.u < camera.width and 0 <= k.v < camera.height for k in sub.keypoints)


def test_a_grounding_refusal_is_marked_so_the_node_keeps_the_running_plan(renderer: SceneRenderer,
                                                                          tmp_path: Path) -> None:
    from robo_brain.backends.scripted import ScriptedBackend
    from robo_brain.planner import Planner, PlannerConfig

    _, rgb, depth, camera, plan = _scene_and_pixels(renderer)
    answers = tmp_path / "a.txt"
    answers.write_text('Reasoning: x\nPlan:\npick(object="robon block") @ grasp=(60, 60)\ndone()\n')
    result = Planner(ScriptedBackend(str(answers)), PlannerConfig(parse_retries=1)).plan("x", rgb, depth, camera)
    assert result.ungrounded and len(result.raw_outputs) == 2
    answers.write_text("not a plan at all")
    other = Planner(ScriptedBackend(str(answers)), PlannerConfig(parse_retries=0)).plan("x", rgb, depth, camera)
    assert other.reason and not other.ungrounded


@pytest.mark.slow
def test_the_shipped_brain_lm_plans_on_the_installed_base(renderer: SceneRenderer) -> None:
    """The real weights: the base converted by make setup, the committed adapter, a scene it never saw."""
    from robo_brain.lm.backend import LMPlannerBackend
    from robo_brain.planner import Outcome, Planner
    from robo_common.resources import resource_path

    planner = Planner(LMPlannerBackend(resource_path("models", "brain_lm")))
    task, rgb, depth, plan = renderer.scene(1_000_004, "unseen", "pick_place")
    camera = _camera(renderer)
    obj, dest = task_words(task)["obj"], task_words(task)["dest"]
    for text in (task.instruction, f"could you please grab the {obj} and drop it into the {dest}"):
        result = planner.plan(text, rgb, depth, camera)
        assert result.outcome == Outcome.PLANNED, result.reason
        assert result.plan.code_lines() == [s.code for s in plan.subtasks]
    refused = planner.plan("cuéntame un chiste", rgb, depth, camera)
    assert refused.outcome == Outcome.FAILED and refused.ungrounded


def test_the_skill_grammar_places_only_what_is_held_and_refuses_only_first() -> None:
    from robo_brain.lm.backend import skill_grammar

    options = skill_grammar(["red block"], ["red block", "blue bowl"])
    first, final = options(0, [])
    assert REFUSALS["not understood"] in first and not any(x.startswith("place(") for x in first)
    after_pick, _ = options(1, ['pick(object="red block")'])
    assert after_pick and all(x.startswith("place(") for x in after_pick)
    later, _ = options(2, ['pick(object="red block")', 'place(target="blue bowl")'])
    assert "done()" in later and not any(x.startswith(("place(", "cannot(")) for x in later)
    assert final == [*REFUSALS.values(), "done()"]


def test_renaming_a_colour_keeps_the_task_and_never_uses_held_out_colours() -> None:
    from robo_brain.lm.data import HELDOUT_COLOURS, renamed

    rec = TaskRecord(0, "seen", "pick_place", "", "put the red block in the blue bowl", ["red block", "blue bowl"],
                     ["red block"], ['pick(object="red block")', 'place(target="blue bowl")', "done()"],
                     obj="red block", dest="blue bowl")
    rng = random.Random(3)
    for _ in range(50):
        r = renamed(rec, rng)
        new = next(w for w in r.names[0].split() + r.names[1].split() if w not in ("red", "blue", "block", "bowl"))
        assert new not in HELDOUT_COLOURS
        assert r.lines[0] == f'pick(object="{r.obj}")' and r.lines[1] == f'place(target="{r.dest}")'
        assert r.obj in r.instruction and r.dest in r.instruction
    for _ in range(200):
        fake = __import__("robo_brain.lm.data", fromlist=["absent_object"]).absent_object(rec, rng)
        assert fake is None or not any(c in fake.split() for c in HELDOUT_COLOURS)


def test_an_instruction_naming_a_colour_the_brain_does_not_see_is_refused(renderer: SceneRenderer,
                                                                          tmp_path: Path) -> None:
    from robo_brain.backends.scripted import ScriptedBackend
    from robo_brain.grounding import check_instruction_colours
    from robo_brain.planner import Planner, PlannerConfig

    task, rgb, depth, camera, plan = _scene_and_pixels(renderer)
    seen = perceive(rgb, depth, camera)
    absent = next(c for c in ("cyan", "purple", "green", "red", "blue") if c not in {o.colour for o in seen})
    check_instruction_colours(task.instruction, seen)  # the task's own words pass
    with pytest.raises(ValueError, match=f"names {absent}"):
        check_instruction_colours(f"put the {absent} block in the bowl", seen)
    pick = plan.subtasks[0]
    answers = tmp_path / "a.txt"
    answers.write_text(f"Reasoning: x\nPlan:\n{pick.code} @ grasp=({round(pick.keypoints[0].u)}, "
                       f"{round(pick.keypoints[0].v)})\ndone()\n")
    result = Planner(ScriptedBackend(str(answers)), PlannerConfig(parse_retries=0)).plan(
        f"nudge the {absent} block away from the robot", rgb, depth, camera)
    assert result.ungrounded and absent in result.reason


def test_the_grammar_never_places_a_block_on_itself() -> None:
    from robo_brain.lm.backend import skill_grammar

    options = skill_grammar(["red block", "blue block"], ["red block", "blue block"])
    after, _ = options(1, ['pick(object="red block")'])
    assert after == ['place(target="blue block")']


def test_the_grammar_with_one_block_alone_pushes_or_ends() -> None:
    from robo_brain.lm.backend import skill_grammar

    options = skill_grammar(["red block"], ["red block"])
    first, _ = options(0, [])
    assert not any(x.startswith("pick(") for x in first) and "done()" in first
    assert any(x.startswith("push(") for x in first)


def test_a_colour_with_the_wrong_kind_is_refused_too() -> None:
    from robo_brain.grounding import check_instruction_colours
    from robo_brain.perception import SeenObject

    scene = [SeenObject("red bowl", "bowl", "red", "", (0.5, 0.0, 0.02), 0.04, 0.15, 60, 60, 200),
             SeenObject("green block", "block", "green", "large", (0.5, 0.1, 0.025), 0.05, 0.06, 40, 60, 40)]
    check_instruction_colours("put the green cube in the red container", scene)
    check_instruction_colours("stack the green one on the red one", scene)  # no noun: the colour alone
    with pytest.raises(ValueError, match="red block"):
        check_instruction_colours("nudge the red block toward the robot", scene)
    with pytest.raises(ValueError, match="green bowl"):
        check_instruction_colours("put it in the green bowl", scene)


@pytest.mark.parametrize("split", ["seen", "unseen"])
def test_the_instruction_checks_refuse_no_paraphrase_or_template_on_its_own_scene(split: str) -> None:
    from robo_brain.grounding import check_destination, check_instruction_colours, check_object_words
    from robo_brain.perception import SeenObject

    def listing(task) -> list[SeenObject]:  # noqa: ANN001 - the simulator's truth as a listing
        return [SeenObject(o.name, o.kind, o.color, "", (0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 1)
                for o in task.scene.objects]

    checks = (check_instruction_colours, check_destination, check_object_words)
    for a in assign_scenes(load_paraphrases(DATA), split, 1_000_000):
        task = make_task(a.seed, split, a.entry.family)
        for check in checks:
            check(a.instruction, listing(task))
            check(task.instruction, listing(task))
    for seed in range(1_000_000, 1_000_200):
        task = make_task(seed, split, ("pick_place", "stack", "rearrange", "push")[seed % 4])
        for check in checks:
            check(task.instruction, listing(task))


def test_the_grammar_picks_only_while_the_place_and_done_still_fit() -> None:
    from robo_brain.lm.backend import skill_grammar

    options = skill_grammar(["red block"], ["red block", "blue bowl"], max_lines=5)
    assert any(x.startswith("pick(") for x in options(2, ["push(...)"] * 2)[0])
    late, _ = options(3, ["push(...)"] * 3)  # a pick here would leave no room for its place and done()
    assert late and not any(x.startswith("pick(") for x in late)


# ---------------------------------------------------------------- corrections written by the model
def test_a_correction_prompt_shows_the_plan_so_far_and_its_answer_starts_with_a_diagnosis() -> None:
    from robo_brain.lm.prompt import correction_user_text, reason_lines, reason_of

    text = correction_user_text(["red block", "blue bowl"], "put the red block in the blue bowl",
                                [("done", 'pick(object="red block")'), ("FAILED", 'place(target="blue bowl")'),
                                 ("todo", "done()")], "object_dropped: the object is no longer in the hand",
                                ["[problem] a", "[problem] b", "[problem] c", "[problem] d", "[problem] e"])
    assert 'done pick(object="red block")\nFAILED place(target="blue bowl")\ntodo done()' in text
    assert "Failure: object_dropped" in text and "[problem] d" in text and "[problem] e" not in text  # at most 4
    whys = reason_lines(["red block", "small red block"])
    assert len(whys) == 6 and all(reason_of(w)[1] in ("red block", "small red block") for w in whys)
    assert reason_of("Why: the small red block is in the gripper, place it") == ("held", "small red block")
    assert reason_of('pick(object="red block")') is None


def test_the_correction_grammar_diagnoses_first_then_redoes_only_the_plans_steps() -> None:
    from robo_brain.lm.backend import correction_grammar

    names, blocks = ["red block", "green block", "pink block", "blue bowl"], ["red block", "green block", "pink block"]
    plan = ['pick(object="yellow block")', 'place(target="blue bowl")', 'pick(object="red block")',
            'place(target="blue bowl")', 'push(object="green block", direction="left")', "done()"]
    options = correction_grammar(blocks, names, 9, plan)
    first, final = options(0, [])
    assert all(line.startswith("Why: ") for line in first) and not final
    assert "Why: the yellow block is in the gripper, place it" in first  # a held block may not be listed
    assert "Why: the yellow block is not in the gripper, pick it again" not in first  # not listed: not pickable
    assert not any("pink block" in line for line in first)  # not in the plan: a correction never brings it in
    assert "Why: the green block did not move far enough, push it again" in first
    assert options(1, ["Why: the red block is in the gripper, place it"])[0] == ['place(target="blue bowl")']
    assert options(1, ["Why: the red block is not in the gripper, pick it again"])[0] == ['pick(object="red block")']
    assert all(x.startswith('push(object="green block"') for x in
               options(1, ["Why: the green block did not move far enough, push it again"])[0])
    why = "Why: the red block is not in the gripper, pick it again"
    after, _ = options(2, [why, 'pick(object="red block")'])
    assert after == ['place(target="blue bowl")']
    later, final = options(3, [why, 'pick(object="red block")', 'place(target="blue bowl")'])
    assert 'pick(object="red block")' not in later and "done()" in later and final == ["done()"]
    assert not any("pink block" in line for line in later)


def test_the_expert_correction_follows_the_simulator_truth() -> None:
    from robo_common.plan_types import PlanData, SubtaskData
    from robo_system.datasets.corrections import expert_correction, failed_object

    codes = ['pick(object="red block")', 'place(target="blue bowl")', 'push(object="green block", direction="left")',
             "done()"]
    plan = PlanData("p", 0, "x", "", [SubtaskData(i, c, c.split("(")[0], []) for i, c in enumerate(codes)])
    assert failed_object(plan, 1) == "red block" and failed_object(plan, 2) == "green block"
    assert expert_correction(plan, 0, held=False) == ["Why: the red block is not in the gripper, pick it again",
                                                      *codes]
    assert expert_correction(plan, 0, held=True) == ["Why: the red block is in the gripper, place it", *codes[1:]]
    assert expert_correction(plan, 1, held=False) == ["Why: the red block is not in the gripper, pick it again",
                                                      codes[0], *codes[1:]]
    assert expert_correction(plan, 1, held=True) == ["Why: the red block is in the gripper, place it", *codes[1:]]
    assert expert_correction(plan, 2, held=False)[0] == "Why: the green block did not move far enough, push it again"
    assert expert_correction(plan, 3, held=False) is None


def _correction_record():  # noqa: ANN202
    from robo_brain.lm.data import CorrectionRecord

    task = TaskRecord(5, "seen", "pick_place", "", "put the red block in the blue bowl", ["red block", "blue bowl"],
                      ["red block"], [], obj="red block", dest="blue bowl")
    return CorrectionRecord(task, [("done", 'pick(object="red block")'), ("FAILED", 'place(target="blue bowl")'),
                                   ("todo", "done()")],
                            "object_dropped: gripper closed to 0.00 of open while placing",
                            ["[problem] the red block is not at the place point"],
                            ["Why: the red block is not in the gripper, pick it again", 'pick(object="red block")',
                             'place(target="blue bowl")', "done()"], "slip")


def test_correction_examples_rename_a_colour_everywhere_and_round_trip_as_json() -> None:
    from robo_brain.lm.data import CorrectionRecord, correction_example

    rec = _correction_record()
    assert CorrectionRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    rng = random.Random(3)
    renamed_seen = 0
    for _ in range(40):
        text, answer = correction_example(rec, rng, template_prob=0.25, rename_prob=0.5)
        listing = text.splitlines()[0].removeprefix("Objects: ").split(", ")
        named = [n for line in answer[1:] for n in re.findall(r'"([^"]+)"', line)]
        assert all(n in listing for n in named), (text, answer)
        assert answer[0].startswith("Why: the ") and answer[-1] == "done()"
        renamed_seen += "red block" not in listing or "blue bowl" not in listing
    assert 5 < renamed_seen < 35


def test_an_adapter_trained_on_corrections_writes_them_itself(renderer: SceneRenderer, tiny_base: str,
                                                              tmp_path: Path) -> None:
    from robo_brain.lm.backend import LMPlannerBackend
    from robo_brain.lm.train import LMTrainConfig, train
    from robo_brain.planner import FailureInfo, Outcome, Planner

    task, rgb, depth, camera, plan, names, rec = _scene_record(renderer)
    out = tmp_path / "lm"
    with pytest.raises(ValueError, match="no correction records"):
        train(LMTrainConfig(out=str(out), base=tiny_base, steps=1, correction_prob=0.5), [rec], progress=False)
    train(LMTrainConfig(out=str(out), base=tiny_base, steps=2, batch_size=2, rank=2, threads=1, correction_prob=0.5),
          [rec], progress=False, corrections=[_correction_record()])
    assert json.loads((out / "brain_lm.json").read_text())["corrections"] is True
    planner = Planner(LMPlannerBackend(out))
    assert planner.correction_mode == "prompt"
    # a plan-only adapter with a second adapter for corrections in a subfolder
    two = tmp_path / "two"
    train(LMTrainConfig(out=str(two), base=tiny_base, steps=1, batch_size=1, rank=2, threads=1), [rec], progress=False)
    shutil.copytree(out, two / "corrections")
    config = json.loads((two / "brain_lm.json").read_text())
    assert not config["corrections"] and Planner(LMPlannerBackend(two)).correction_mode == "replan"
    (two / "brain_lm.json").write_text(json.dumps({**config, "correction_adapter": "corrections"}))
    both = LMPlannerBackend(two)
    assert not both.plans_only and both.correction_model is not both.model
    steps = [("FAILED", plan.subtasks[0].code), *[("todo", s.code) for s in plan.subtasks[1:]]]
    assert both.correct_lines(names, rec.blocks, rec.instruction, steps, "grasp_missed: x", []).lines[0].startswith(
        ("Why: ", "cannot("))
    failure = FailureInfo("grasp_missed", "gripper closed to 0.00 of open: nothing between the fingers", 0)
    result = planner.correct(plan, failure, rgb, depth, camera)
    if result.outcome == Outcome.FAILED:  # an untrained model may write lines the listing cannot ground
        assert result.reason
    else:
        assert result.plan.revision == plan.revision + 1 and "Why: the " in result.plan.reasoning
        assert result.plan.subtasks[-1].code == "done()"
        for sub in result.plan.subtasks:
            assert all(n in names for n in re.findall(r'"([^"]+)"', sub.code)
                       if n not in ("left", "right", "forward", "backward"))


def test_the_recorder_writes_down_what_the_brain_would_read_and_the_expert_answer(renderer: SceneRenderer) -> None:
    from robo_brain.planner import FailureInfo
    from robo_sim.tasks import make_task as task_of
    from robo_system.datasets.corrections import RecordingExpert

    task, _, _, plan = renderer.scene(20_004, "seen", "pick_place")
    brain = RecordingExpert()
    failure = FailureInfo("grasp_missed", "gripper closed to 0.00 of open: nothing between the fingers", 0)
    answer = brain.correct(plan, failure, task_of(20_004, "seen", "pick_place"), renderer.world)
    assert answer.plan is not None and not brain.skipped, brain.skipped
    rec, = brain.records
    assert rec.answer == [f"Why: the {task_words(task)['obj']} is not in the gripper, pick it again",
                          *[s.code for s in plan.subtasks]]
    assert rec.steps[0] == ("FAILED", plan.subtasks[0].code) and rec.failure.startswith("grasp_missed: ")
    assert sorted(rec.task.names) == sorted(o.name for o in task.scene.objects)


class SceneNeverAsked(NeverAsked):
    """A scene-reading back-end (like the brain v2) that fails the test when asked: the instruction checks that run
    before the model refuse on their own."""

    wants_scene = True
    english_words: frozenset[str] | None = None

    def plan_lines(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the model must not be asked")


def test_an_instruction_in_another_script_is_refused_before_the_model_guesses(renderer: SceneRenderer) -> None:
    from robo_brain.grounding import check_script
    from robo_brain.planner import Outcome, Planner
    from robo_common.plan_language import PlanParseError

    for text in ("把绿色方块推到左边", "赤いブロックを青いボウルに入れて", "положи красный блок в миску"):
        with pytest.raises(PlanParseError, match="reads instructions in English"):
            check_script(text)
    for text in ("put the red block in the blue bowl 🙂", "🔴➡️🥣", "stack the red cube on the 青 block", "café"):
        check_script(text)  # emoji are not letters; a word of another script among English ones is not refused

    _, rgb, depth, camera, _ = _scene_and_pixels(renderer)
    result = Planner(SceneNeverAsked()).plan("把红色方块放进蓝色的碗里", rgb, depth, camera)
    assert result.outcome == Outcome.FAILED and result.ungrounded and "cjk script" in result.reason


def test_independent_pick_and_place_pairs_are_taken_left_to_right() -> None:
    from robo_brain.grounding import left_to_right

    names = ["yellow tray", "red block", "red bowl", "yellow block"]
    pick, place = 'pick(object="{}")', 'place(target="{}")'
    wrote = [pick.format("yellow block"), place.format("yellow tray"), pick.format("red block"),
             place.format("red bowl"), "done()"]
    assert left_to_right(wrote, names) == [*wrote[2:4], *wrote[0:2], "done()"]
    stacked = [pick.format("yellow block"), place.format("red block"), pick.format("red block"),
               place.format("red bowl"), "done()"]
    assert left_to_right(stacked, names) == stacked  # the red block moves and is a target: order matters
    pushed = ['push(object="red block", direction="left")', "done()"]
    assert left_to_right(pushed, names) == pushed
    assert left_to_right(wrote[:2] + ["done()"], names) == wrote[:2] + ["done()"]


def test_a_correction_that_finds_nothing_of_the_plan_to_redo_falls_back_to_a_replan(renderer: SceneRenderer) -> None:
    from robo_brain.backends import BrainBackend
    from robo_brain.lm.backend import NOTHING_TO_REDO, LMAnswer
    from robo_brain.planner import FailureInfo, Outcome, Planner

    task, rgb, depth, camera, plan = _scene_and_pixels(renderer)
    lines = [s.code for s in plan.subtasks]

    class Renamed(BrainBackend):
        wants_scene, plans_only, name = True, False, "renamed"

        def generate(self, *args, **kwargs) -> str:  # noqa: ANN002, ANN003
            raise AssertionError("not a chat model")

        def correct_lines(self, *args, **kwargs) -> LMAnswer:  # noqa: ANN002, ANN003
            return LMAnswer([NOTHING_TO_REDO], [], 0.0)

        def plan_lines(self, *args, **kwargs) -> LMAnswer:  # noqa: ANN002, ANN003
            return LMAnswer(lines, [], 0.0)

    planner = Planner(Renamed())
    assert planner.correction_mode == "prompt"
    result = planner.correct(plan, FailureInfo("grasp_missed", "nothing between the fingers", 0), rgb, depth, camera)
    assert result.outcome == Outcome.CORRECTED, result.errors
    assert result.plan.code_lines() == lines and "Re-planned on the current image" in result.plan.reasoning
    assert any("none of the plan's objects" in e for e in result.errors)


def test_an_object_word_that_is_no_colour_size_or_determiner_is_refused_but_typos_are_not() -> None:
    from robo_brain.grounding import check_object_words
    from robo_common.plan_language import PlanParseError

    with pytest.raises(PlanParseError, match="names robon block"):
        check_object_words("put the robon block in the osr block", [])
    for text in ("put the yelow block in the bowl", "put the rde cube in the blue tray", "stack the small one on the "
                 "large green brick", "build a two-block tower: orange block at the bottom, yellow block on top",
                 "put the teal cube in the matching container", "move the block to the moon", "sort blocks by "
                 "colour", "tidy up blocks", "put it in whichever container fits"):
        check_object_words(text, [])
    rng = random.Random(0)
    rec = TaskRecord(0, "seen", "stack", "", "stack the red block on the blue block", ["red block", "blue block"],
                     ["red block", "blue block"], [], obj="red block", dest="blue block")
    for _ in range(300):  # the training wordings are never refused
        check_object_words(reworded(rec, rng), [])


def test_a_place_that_is_nothing_on_the_table_is_refused_but_places_on_it_are_not() -> None:
    from robo_brain.grounding import check_destination
    from robo_common.plan_language import PlanParseError

    for text, phrase in (("move the block to the moon", "to the moon"), ("put the cube on the shelf", "on the shelf"),
                         ("pick up the red block and drop it into the fridge, please", "into the fridge")):
        with pytest.raises(PlanParseError, match=f"asks for '{phrase}'"):
            check_destination(text, [])
    for text in ("move the red block a little to the left", "put the green cube in the basket", "put it on the red",
                 "push the block toward the edge of the table", "slide the cube to the robot's left side",
                 "stack the small pink block on the large one", "put the red one in the bwol on the rihgt"):
        check_destination(text, [])
    rng = random.Random(0)
    for family, direction in (("pick_place", ""), ("stack", ""), ("push", "forward"), ("push", "backward"),
                              ("push", "left"), ("push", "right")):
        rec = TaskRecord(0, "seen", family, "", "x", ["red block", "blue bowl"], ["red block"], [],
                         obj="red block", dest="" if family == "push" else "blue bowl", direction=direction)
        for _ in range(200):  # the training wordings are never refused
            check_destination(reworded(rec, rng), [])


def test_an_instruction_mostly_in_another_language_is_refused_before_the_model_guesses(
        renderer: SceneRenderer, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from robo_brain.grounding import check_english
    from robo_brain.lm.backend import whole_words
    from robo_brain.lm.weights import ENV_DIR, base_path
    from robo_brain.planner import Outcome, Planner
    from robo_common.plan_language import PlanParseError

    monkeypatch.delenv(ENV_DIR, raising=False)  # the installed base, not the tiny one of this module's fixture
    try:
        lexicon = whole_words(AutoTokenizer.from_pretrained(base_path("smollm2-135m-instruct")))
    except FileNotFoundError as exc:
        pytest.skip(f"needs the installed base's tokenizer: {exc}")
    assert lexicon is not None and whole_words(_tokenizer_chars()) is None
    with pytest.raises(PlanParseError, match=r"3 of 5 words are not English \(sorteer, blokken, kleur\)"):
        check_english("sorteer de blokken op kleur", lexicon)
    for text in ("put the yelow block in the bwol pleese", "stack the xqzt cube on the teal one", "push it leftward",
                 "Could you kindly relocate the crimson brick onto the turquoise receptacle?"):
        check_english(text, lexicon)
    check_english("sorteer de blokken op kleur", None)  # no lexicon, no check
    rng = random.Random(0)
    rec = TaskRecord(0, "seen", "pick_place", "", "x", ["red block", "blue bowl"], ["red block"], [],
                     obj="red block", dest="blue bowl")
    for _ in range(300):
        check_english(reworded(rec, rng), lexicon)

    backend = SceneNeverAsked()
    backend.english_words = lexicon
    _, rgb, depth, camera, _ = _scene_and_pixels(renderer)
    result = Planner(backend).plan("sorteer de blokken op kleur", rgb, depth, camera)
    assert result.outcome == Outcome.FAILED and result.ungrounded and "not English" in result.reason


def _tokenizer_chars():  # noqa: ANN202 - a character-level tokenizer (no whole words)
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token=" ")))
