"""Embedded brain model: simulator dataset, byte-level tokenizer, training, evaluation, shipped checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from robo_brain.backends.transformers_backend import encoder_decoder_prompt
from robo_brain.embedded.dataset import example_path, load_example, plan_prompt
from robo_brain.embedded.evaluate import EvalConfig, subtask_f1
from robo_brain.embedded.model import ModelConfig, build_model, save_checkpoint
from robo_brain.embedded.tokenizer import make_char_tokenizer
from robo_brain.embedded.train import (
    IGNORE,
    STATE_FILE,
    CoordLoss,
    GroundingLoss,
    TrainConfig,
    batch_loss,
    collate,
    encode,
    lr_factor,
    train,
)
from robo_brain.planner import Planner
from robo_common.plan_language import parse_model_output
from robo_system.datasets.brain import SIM_EXAMPLES, SceneRenderer, generate, scene_colours, seen_templates
from robo_system.datasets.brain import evaluate_brain as evaluate

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "brain_embedded"
TINY = ModelConfig(patch_size=16, enc_hidden=32, enc_layers=1, enc_heads=2, dec_hidden=48, dec_layers=1, dec_heads=2)


@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer()
    yield r
    r.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("brain_cache")
    generate(path, range(12), "seen", progress=False)
    return path


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_example_round_trips_through_the_parser(renderer: SceneRenderer, seed: int) -> None:
    ex, rgb = renderer.example(seed, "seen")
    task, _, _, plan = renderer.scene(seed, "seen")
    parsed = parse_model_output(ex.target)
    assert [s.call.code() for s in parsed.steps] == [s.code for s in plan.subtasks]
    assert parsed.reasoning
    for step in parsed.steps:
        for u, v in step.pixels.values():
            assert 0 <= u < rgb.shape[1] and 0 <= v < rgb.shape[0] and u == int(u) and v == int(v)
    messages = Planner(None).plan_messages(task.instruction, rgb.shape[1], rgb.shape[0])  # type: ignore[arg-type]
    assert ex.prompt == encoder_decoder_prompt(messages) == plan_prompt(task.instruction, 128, 128)
    assert rgb.dtype == np.uint8 and rgb.shape == (128, 128, 3)


@pytest.mark.parametrize("seed", [2, 6])
def test_reasoning_lists_the_scene_left_to_right(renderer: SceneRenderer, seed: int) -> None:
    ex, _ = renderer.example(seed, "seen")  # seeds 2 and 6 are rearrange scenes
    task, _, _, _ = renderer.scene(seed, "seen")
    listing, family = parse_model_output(ex.target).reasoning.split("; ")
    names = listing.split(", ")
    assert sorted(names) == sorted(o.name for o in task.scene.objects)
    columns = []
    for name in names:  # each object's pixel column in the rendered image, left to right
        info = renderer.world.object_by_name(name)
        u, _ = renderer.world.project(renderer.world.object_pose(info.body_id)[0][None, :])
        columns.append(float(u[0]))
    assert columns == sorted(columns)
    assert family.startswith("rearrange, ")
    picks = [line.split('"')[1] for line in ex.target.splitlines() if line.startswith("pick(")]
    assert picks == [n for n in names if n in picks]  # blocks are taken in the listing's order


def test_targets_can_drop_the_scene_listing(cache: Path) -> None:
    from robo_brain.embedded.dataset import strip_scene_listing

    target = 'Reasoning: red block, white tray; pick place, 2 steps.\nPlan:\ndone()'
    assert strip_scene_listing(target) == 'Reasoning: pick place, 2 steps.\nPlan:\ndone()'
    assert strip_scene_listing(strip_scene_listing(target)) == strip_scene_listing(target)
    tok = make_char_tokenizer()
    paths = sorted(example_path(cache, "seen", 0).parent.glob("*.npz"))[:4]
    for with_list, without in zip(encode(paths, tok, TINY.n_positions, scene_listing=True).ids,
                                  encode(paths, tok, TINY.n_positions).ids, strict=True):
        prompt_a, answer_a = tok.decode(with_list[1:-1]).split("Reasoning: ")
        prompt_b, answer_b = tok.decode(without[1:-1]).split("Reasoning: ")
        assert prompt_a == prompt_b and "; " in answer_a.splitlines()[0]
        assert "Reasoning: " + answer_b == strip_scene_listing("Reasoning: " + answer_a) != "Reasoning: " + answer_a


def test_parallel_render_writes_the_same_examples(cache: Path, tmp_path: Path, monkeypatch) -> None:
    from robo_system.datasets import brain as dataset

    monkeypatch.setattr(dataset, "RENDER_CHUNK", 2)  # 3 jobs over 2 worker processes
    paths = generate(tmp_path, range(6), "seen", progress=False, workers=2)
    for path, ref in zip(paths, generate(cache, range(6), "seen", progress=False), strict=True):
        (ex, rgb), (ex_ref, rgb_ref) = load_example(path), load_example(ref)
        assert ex == ex_ref and np.array_equal(rgb, rgb_ref)
    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path, range(6), "seen", progress=False, workers=0)


def test_cache_is_resumable(cache: Path) -> None:
    paths = generate(cache, range(12), "seen", progress=False)
    assert all(p.is_file() for p in paths)
    ex, rgb = load_example(paths[5])
    assert ex.seed == 5 and rgb.shape == (128, 128, 3)


def test_char_tokenizer_spells_unseen_words(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = make_char_tokenizer()
    text = 'Instruction: put the purple cube in the orange bowl\npick(object="cyan block") @ grasp=(61, 88)'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert len(tok("purple", add_special_tokens=False)["input_ids"]) == 6  # spelled byte by byte
    assert len(ids) < len(text)  # syntax chunks are whole tokens
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again.decode([again.bos_token_id, *ids, again.eos_token_id], skip_special_tokens=True) == text


def test_coordinates_are_one_token_each_and_decode_to_digits() -> None:
    from robo_brain.embedded.tokenizer import COORD_BINS, coord_token_ids

    tok = make_char_tokenizer()
    ids = coord_token_ids(tok)
    assert len(ids) == len(set(ids)) == COORD_BINS
    line = 'pick(object="red block") @ grasp=(127, 0)\n'
    pieces = tok.convert_ids_to_tokens(tok(line, add_special_tokens=False)["input_ids"])
    assert pieces[-4:] == ["127", ", ", "0", ")\n"]
    text = "push_end=(130, -3)"  # outside the bins: still spelled with digit tokens, still decodes
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_coordinate_embeddings_read_patch_positions() -> None:
    from robo_brain.embedded.model import coordinate_embeddings, patch_position_embeddings
    from robo_brain.embedded.tokenizer import coord_token_ids

    patches, coords = patch_position_embeddings(128, 8, 192), coordinate_embeddings(128, 256, 192, 8, 128)
    for patch in (0, 37, 200, 255):
        row, col = divmod(patch, 16)
        x, y = patches[patch, :96], patches[patch, 96:]
        assert abs(int(np.argmax(coords[:, :96] @ x)) - (8 * col + 3.5)) <= 1  # linear read-out = the centre
        assert abs(int(np.argmax(coords[:, :96] @ y)) - (8 * row + 3.5)) <= 1
    model, tok, _ = build_model(TINY)
    emb = model.decoder.get_input_embeddings().weight[coord_token_ids(tok)].detach().numpy()
    assert np.allclose(emb, TINY.coord_scale * coordinate_embeddings(128, 48, 32, 16, 128), atol=1e-6)
    assert model.decoder.lm_head.weight.data_ptr() == model.decoder.get_input_embeddings().weight.data_ptr()


def test_readout_init_maps_an_attended_patch_to_its_coordinates() -> None:
    import torch

    from robo_brain.embedded.tokenizer import coord_token_ids

    cfg = ModelConfig(patch_size=16, enc_hidden=64, enc_layers=1, enc_heads=2, dec_hidden=64, dec_layers=1,
                      dec_heads=2, readout_init=True)
    model, tok, _ = build_model(cfg)
    attn, hd = model.decoder.transformer.h[0].crossattention, 32
    emb = model.decoder.get_input_embeddings().weight[coord_token_ids(tok)]
    with torch.no_grad():
        enc = model.encoder(pixel_values=torch.zeros(1, 3, 128, 128)).last_hidden_state  # equal widths: no proj
        value = attn.c_attn(enc).split(64, dim=2)[1][0]
        for patch in (9, 42, 63):  # 8 x 8 grid of 16 px patches
            row, col = divmod(patch, 8)
            for head, centre in ((0, 16 * col + 7.5), (1, 16 * row + 7.5)):
                v = torch.zeros(64)
                v[head * hd:(head + 1) * hd] = value[1 + patch, head * hd:(head + 1) * hd]
                assert abs(int((emb @ (attn.c_proj.weight.T @ v)).argmax()) - centre) <= 2


def test_rename_colours_keeps_prompt_and_target_consistent() -> None:
    import random

    from robo_brain.embedded.augment import rename_colours, renamed_lines, stand_in

    prompt = "Instruction: put the red block in the blue bowl\n"
    target = ('Reasoning: pick place, 2 steps.\nPlan:\npick(object="red block") @ grasp=(1, 2)\n'
              'place(target="blue bowl") @ place=(3, 4)\ndone()')
    rng = random.Random(0)
    for _ in range(20):
        p, t, words = rename_colours(prompt, target, rng)
        assert len(words) == 1 and words[0] in p and words[0] in t
        assert sum(c in p for c in ("red", "blue")) == 1  # one object renamed, the other kept
        assert renamed_lines(t, words).count(True) == 1
    assert rename_colours("Instruction: sort the blocks\n", target, rng)[2] == []
    taken = {stand_in(rng, set()) for _ in range(300)}
    assert not taken & {"purple", "cyan", "orange", "red", "white"}


def test_paraphrases_are_training_only_and_keep_the_slots() -> None:
    import random

    from robo_brain.embedded.augment import PARAPHRASES, paraphrase
    from robo_sim.tasks import TEMPLATES, make_task

    unseen = {t for pools in TEMPLATES.values() for t in pools["unseen"]}
    assert not unseen & {t for ts in PARAPHRASES.values() for t in ts}
    rng = random.Random(0)
    for seed in range(40):
        task = make_task(seed, "seen", ("pick_place", "stack", "rearrange", "push")[seed % 4])
        said = paraphrase(task.instruction, rng, seen_templates())
        assert said is not None and said != task.instruction, task.instruction
        if task.family in ("pick_place", "stack", "push"):  # the object phrase is carried over
            obj = task.steps[0].arg.split()[-2]  # its colour word
            assert obj in said, (task.instruction, said)
    assert paraphrase("do a little dance", rng, seen_templates()) is None


def test_hue_shift_renames_each_colour_to_what_its_patch_now_shows() -> None:
    import random

    from robo_brain.embedded.augment import hue_shift, rotate_hue
    from robo_common import vocabulary
    from robo_common.colours import read_colour

    table = np.array([143, 107, 71], np.uint8)
    image = np.tile(table, (32, 32, 1))
    patches = {"red": (2, 2), "blue": (2, 20), "yellow": (20, 2)}
    for colour, (r, c) in patches.items():
        image[r:r + 8, c:c + 8] = np.round(255 * np.array(vocabulary.COLORS[colour][:3]) * 0.94)
    prompt = "Instruction: put the red block in the blue bowl\n"
    target = 'pick(object="red block") @ grasp=(5, 5)\nplace(target="blue bowl") @ place=(5, 23)\ndone()'
    rng = random.Random(1)
    shifted = [hue_shift(image, prompt, target, rng, ("red", "blue", "yellow")) for _ in range(30)]
    assert sum(out is not None for out in shifted) >= 10  # None: no unambiguous angle in 6 tries
    for out in filter(None, shifted):
        rgb, new_prompt, new_target = out
        assert np.array_equal(rgb[30, 30], table)  # the table keeps its colour
        words = {colour: new_target.split('"')[1 if colour == "red" else 3].split()[0] for colour in ("red", "blue")}
        for colour, word in words.items():
            r, c = patches[colour]
            assert read_colour(rgb[r:r + 8, c:c + 8].reshape(-1, 3)).term == word
            assert f"the {word} " in new_prompt
        assert len({*words.values(), read_colour(rgb[22, 4][None]).term}) == 3  # no two colours merged
    assert np.array_equal(rotate_hue(image, 0.0), image) and np.array_equal(rotate_hue(image, 360.0), image)
    assert hue_shift(image, "Instruction: sort the blocks\n", "done()", rng) is None


def test_renamed_examples_skip_their_coordinates(cache: Path) -> None:
    from robo_brain.embedded.tokenizer import coord_token_ids

    tok = make_char_tokenizer()
    paths = sorted(example_path(cache, "seen", 0).parent.glob("*.npz"))[:4]
    plain, renamed = encode(paths, tok, TINY.n_positions), encode(paths, tok, TINY.n_positions, rename_prob=1.0)
    coords = set(coord_token_ids(tok))
    n_coord = [sum(t in coords for t in lab) for lab in plain.labels]
    n_kept = [sum(t in coords for t in lab) for lab in renamed.labels]
    assert all(k <= n for k, n in zip(n_kept, n_coord, strict=True)) and sum(n_kept) < sum(n_coord)
    assert all(len(i) == len(lab) and lab[0] == IGNORE for i, lab in zip(renamed.ids, renamed.labels, strict=True))


def test_word_noise_keeps_the_content_words() -> None:
    import random

    from robo_brain.embedded.augment import CONTENT_WORDS, SPELLING_VARIANTS, TASK_VERBS, word_noise

    rng = random.Random(0)
    text = "please put the small red block into the blue bowl of the same colour"
    british = {v: k for k, v in SPELLING_VARIANTS.items()}
    content = [w for w in text.split() if w in CONTENT_WORDS]
    outs = [word_noise(text, rng) for _ in range(200)]
    assert len(set(outs)) > 100  # it does perturb
    for out in outs:
        kept = [british.get(w, w) for w in out.rstrip("?!.").split() if w in CONTENT_WORDS]
        assert kept == content, out
        assert "small red block" in out  # nothing is inserted inside a phrase of content words
    assert any("color" in o for o in outs) and any("colour" in o for o in outs)
    assert word_noise("", rng) == ""
    # the task verbs are phrasing by default, content words when kept
    sort = "sort the cubes into the trays of the same colour"
    assert any("sort" not in word_noise(sort, rng).split() for _ in range(50))
    assert all("sort" in word_noise(sort, rng, keep=CONTENT_WORDS | TASK_VERBS).split() for _ in range(50))


def test_mask_kinds_says_container_and_the_target_keeps_the_kind(cache: Path) -> None:
    from robo_brain.embedded.augment import mask_kinds

    assert mask_kinds("put the red block in the blue tray") == "put the red block in the blue container"
    assert mask_kinds("sort the cubes into the bowls of the same colour") == \
        "sort the cubes into the containers of the same colour"
    assert mask_kinds("stack it on the trayful bowlish one") == "stack it on the trayful bowlish one"  # whole words
    tok = make_char_tokenizer()
    paths = sorted(example_path(cache, "seen", 0).parent.glob("*.npz"))
    data = encode(paths, tok, TINY.n_positions, kind_mask_prob=1.0)
    kinds = 0
    for ids, labels in zip(data.ids, data.labels, strict=True):
        prompt = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE], skip_special_tokens=True)
        answer = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE], skip_special_tokens=True)
        instruction = prompt.split("Instruction:")[1].split("\n")[0]
        assert not re.search(r"\b(bowl|tray)s?\b", instruction), instruction
        kinds += bool(re.search(r"\b(bowl|tray)\b", answer))
    assert kinds > 0  # the plans still name bowls and trays


def test_encode_chains_the_augmentations(cache: Path) -> None:
    """Each augmentation works on the output of the one before: a rotated image keeps the colour words
    that say what it shows (the colour stand-in used to restore the original words over a rotated image)."""
    from robo_brain.embedded.augment import TRAIN_COLOURS
    from robo_common.colours import read_colour

    tok = make_char_tokenizer()
    paths = sorted(example_path(cache, "seen", 0).parent.glob("*.npz"))
    plain = encode(paths, tok, TINY.n_positions)
    data = encode(paths, tok, TINY.n_positions, rename_prob=1.0, seed=3, hue_prob=1.0, noise_prob=1.0,
                  scene_colours=scene_colours)
    checked = 0
    for ids, image, before in zip(data.ids, data.images, plain.images, strict=True):
        text = tok.decode(ids[1:-1])
        answer = text.split("Reasoning: ")[1]
        if np.array_equal(image, before):
            continue  # no unambiguous rotation for this scene
        for line in answer.splitlines():
            if not line.startswith("pick("):
                continue
            name = line.split('"')[1]
            colour = name.split()[-2]
            u, v = (int(x) for x in line.split("grasp=(")[1].rstrip(")").split(", "))
            if colour in TRAIN_COLOURS or colour in ("purple", "cyan"):
                reading = read_colour(image[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2].reshape(-1, 3))
                assert reading.term == colour, (line, reading.term)
                checked += 1
    assert checked >= 3


def test_coord_loss_soft_labels() -> None:
    import torch

    from robo_brain.embedded.tokenizer import coord_token_ids

    tok = make_char_tokenizer()
    ids = coord_token_ids(tok)
    labels = torch.tensor([[ids[40], IGNORE, tok.eos_token_id]])
    near, far = torch.zeros(1, 3, len(tok)), torch.zeros(1, 3, len(tok))
    near[0, 0, ids[41]] = far[0, 0, ids[90]] = 10.0
    soft = CoordLoss(tok, sigma=1.0)
    assert soft.coordinate_mask(labels).tolist() == [[True, False, False]]
    assert soft(near, labels) < soft(far, labels)  # one pixel off costs less than fifty
    hard = CoordLoss(tok, sigma=0.0)
    ref = torch.nn.functional.cross_entropy(near[0, [0, 2]], labels[0, [0, 2]])
    assert torch.isclose(hard(near, labels), ref)


def test_grounding_loss_targets_the_keypoint_patch() -> None:
    import torch

    tok = make_char_tokenizer()
    text = 'Plan:\npick(object="red block") @ grasp=(84, 52)\ndone()'
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    inputs, labels = ids[:, :-1], ids[:, 1:]
    ground = GroundingLoss(tok, weight=1.0, sigma_px=4.0, image_size=128, patch_size=16)
    b, p, axis, q = ground.targets(inputs, labels, CoordLoss(tok, 1.0).value)
    assert axis.tolist() == [0, 1] and (p[1] - p[0]).item() == 2
    assert tok.convert_ids_to_tokens(inputs[0, p].tolist()) == ['") @ grasp=(', ", "]
    assert divmod(int(q[0].argmax()), 8) == (3, 5)  # v 52 -> patch row 3, u 84 -> patch column 5
    att = torch.full((1, 2, inputs.shape[1], 65), 1 / 65)
    good = att.clone()
    good[0, 0, p[0]] = good[0, 1, p[1]] = torch.cat([torch.zeros(1), q[0]])  # the object, per coordinate
    good[0, 1, p[0]] = good[0, 0, p[1]] = torch.eye(65)[0]  # the other head on CLS
    assert ground((good,), inputs, labels, CoordLoss(tok, 1.0).value) < ground((att,), inputs, labels,
                                                                              CoordLoss(tok, 1.0).value)


def test_tiny_model_loss_decreases(cache: Path) -> None:
    import torch

    torch.manual_seed(0)
    model, tok, _ = build_model(TINY)
    data = encode(sorted(example_path(cache, "seen", 0).parent.glob("*.npz"))[:6], tok, TINY.n_positions)
    batch = collate(data, list(range(6)), tok.pad_token_id)
    assert (batch[2] != -100).sum() > 0 and batch[1].shape == batch[2].shape
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = batch_loss(model, batch, bf16=False)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_train_saves_and_resumes(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    base = {"out": str(out), "cache": str(cache), "examples": 12, "val_every": 6, "batch_size": 4,
            "eval_interval": 2, "warmup_steps": 1, "model": TINY}
    train(TrainConfig(**base, max_steps=2), SIM_EXAMPLES, progress=False)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "preprocessor_config.json").is_file() and (out / STATE_FILE).is_file()
    args = json.loads((out / "training_args.json").read_text())
    assert args["max_steps"] == 2 and args["model"]["dec_hidden"] == TINY.dec_hidden
    train(TrainConfig(**base, max_steps=4, export=str(tmp_path / "export")), SIM_EXAMPLES, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert not (tmp_path / "export" / STATE_FILE).exists()
    # continued training: a fresh run that starts from the exported weights, on a schedule of its own
    import torch
    from safetensors.torch import load_file

    cont = tmp_path / "continued"
    train(TrainConfig(**{**base, "out": str(cont)}, max_steps=1, lr=1e-9, init=str(tmp_path / "export")), SIM_EXAMPLES,
          progress=False)
    start, after = load_file(tmp_path / "export" / "model.safetensors"), load_file(cont / "model.safetensors")
    assert start.keys() == after.keys()
    assert all(torch.allclose(start[k], after[k], atol=1e-5) for k in start)  # lr 1e-9: still the init weights
    with pytest.raises(FileNotFoundError, match="no checkpoint there"):
        train(TrainConfig(**{**base, "out": str(tmp_path / "x")}, max_steps=1, init=str(tmp_path / "nothing")),
              SIM_EXAMPLES, progress=False)


def test_eval_reports_required_keys(tmp_path: Path) -> None:
    model, tok, proc = build_model(TINY)
    path = save_checkpoint(tmp_path / "tiny", model, tok, proc)
    report = evaluate(EvalConfig(model=str(path), split="unseen", episodes=2, max_new_tokens=16), progress=False)
    for key in ("plan_exact_match", "plan_any_order_match", "subtask_f1", "keypoint_error_cm_median",
                "latency_s_p50", "latency_s_p95",
                "parse_failure_rate", "per_family"):
        assert key in report
    assert report["episodes"] == 2 and report["parse_failure_rate"] == 1.0
    assert set(report["per_family"]) == {"pick_place", "stack"}
    assert "plan_exact_match_at_k" not in report and report["top_k"] == 1


def test_eval_top_k_decodes_k_beams_of_the_planner_prompt(tmp_path: Path, monkeypatch) -> None:
    from robo_brain.embedded import evaluate as ev

    model, tok, proc = build_model(TINY)
    path = save_checkpoint(tmp_path / "tiny", model, tok, proc)
    seen: list[int] = []
    real = ev.beam_code_lines

    def spy(planner, instruction, rgb, k, max_new_tokens):  # noqa: ANN001, ANN202
        beams = real(planner, instruction, rgb, k, max_new_tokens)
        seen.append(len(beams))
        return beams

    monkeypatch.setattr(ev, "beam_code_lines", spy)
    report = evaluate(EvalConfig(model=str(path), split="seen", episodes=2, max_new_tokens=8, top_k=3),
                      progress=False)
    assert seen == [3, 3] and report["top_k"] == 3
    assert report["plan_exact_match_at_k"] == 0.0 == report["plan_exact_match"]  # an untrained model
    assert report["per_family"]["pick_place"]["plan_exact_match_at_k"] == 0.0
    with pytest.raises(ValueError, match="top_k"):
        EvalConfig(top_k=0)


def test_any_order_match_frees_the_order_of_pick_place_pairs() -> None:
    from robo_brain.embedded.evaluate import skill_units

    a = ['pick(object="red block")', 'place(target="red bowl")']
    b = ['pick(object="blue block")', 'place(target="blue tray")']
    assert skill_units([*a, *b, "done()"]) == skill_units([*b, *a, "done()"])
    assert skill_units([*a, *b, "done()"]) != skill_units([*a, "done()"])
    assert skill_units([a[1], a[0], "done()"]) is None  # a place before its pick
    assert skill_units([*a]) is None  # no done()
    push = ['push(object="red block", direction="left")', "done()"]
    assert skill_units(push) == skill_units(list(push)) and skill_units(push) != skill_units([*a, "done()"])


def test_keypoint_errors_by_step_follow_the_block_not_the_index() -> None:
    from types import SimpleNamespace

    from robo_brain.embedded.evaluate import keypoint_errors
    from robo_common.plan_types import KeypointData, PlanData, SubtaskData

    def plan(steps: list[tuple[str, str, float]]) -> PlanData:
        subtasks = [SubtaskData(i, code, code.split("(")[0], [KeypointData(name, (x, 0.0, 0.0), u=x * 100, v=0)])
                    for i, (code, name, x) in enumerate(steps)]
        return PlanData("p", 0, "", "", subtasks)

    red, blue, bowl = 'pick(object="red block")', 'pick(object="blue block")', 'place(target="red bowl")'
    expert = plan([(red, "grasp", 0.1), (bowl, "place", 0.5), (blue, "grasp", 0.3), (bowl, "place", 0.55)])
    reordered = plan([(blue, "grasp", 0.3), (bowl, "place", 0.5), (red, "grasp", 0.1), (bowl, "place", 0.55)])

    def locate(name: str, u: float, v: float) -> SimpleNamespace:
        return SimpleNamespace(point=(u / 100, 0.0, 0.0))

    errs = keypoint_errors(reordered, expert, expert, locate)
    assert sorted(errs["cm"]) == pytest.approx([0.0, 0.0, 20.0, 20.0])  # by index: the other block
    assert errs["step_cm"] == pytest.approx([0.0, 0.0, 0.0, 0.0])  # k-th place into the bowl: slot k
    wrong = plan([('pick(object="green block")', "grasp", 0.9), (bowl, "place", 0.5)])
    assert keypoint_errors(wrong, expert, expert, locate)["step_cm"] == pytest.approx([0.0])  # the pick is not scored


def test_subtask_f1_and_lr_schedule() -> None:
    ref = ['pick(object="red block")', 'place(target="blue bowl")', "done()"]
    assert subtask_f1(ref, ref) == 1.0
    assert subtask_f1(ref[:1] + ["done()"], ref) == pytest.approx(2 / 3)
    assert subtask_f1([], ref) == 0.0
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, 0.1) == pytest.approx(1.0)


def test_cli_registers_train_and_eval_brain() -> None:
    from robo_cli.main import build_parser

    args = build_parser().parse_args(["train", "brain", "--out", "x", "--max-steps", "3"])
    assert args.max_steps == 3 and callable(args.func)
    args = build_parser().parse_args(["eval", "brain", "--split", "seen", "--episodes", "2", "--json"])
    assert args.episodes == 2 and args.json


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped checkpoint")
def test_shipped_checkpoint_plans_a_seen_scene(renderer: SceneRenderer) -> None:
    from robo_brain.backends import BackendConfig, make_backend
    from robo_brain.planner import PlannerConfig
    from robo_common.camera import CameraModel

    backend = make_backend(BackendConfig(backend="transformers", model_path=str(SHIPPED)))
    task, rgb, depth, _ = renderer.scene(1_000_000, "seen")
    info = renderer.world.camera_info()
    result = Planner(backend, PlannerConfig(parse_retries=0)).plan(
        task.instruction, rgb, depth, CameraModel(info.K, info.T_base_camera, info.width, info.height))
    assert result.ok, result.errors
    assert result.plan.subtasks[-1].code == "done()"


def test_snap_moves_a_nearby_pixel_onto_the_top_face(renderer: SceneRenderer) -> None:
    from robo_brain.embedded.refine import SnapConfig, snap_to_top_face
    from robo_common.camera import CameraModel

    _, _, depth, plan = renderer.scene(0, "seen")
    info = renderer.world.camera_info()
    camera = CameraModel(info.K, info.T_base_camera, info.width, info.height)
    grasp = plan.subtasks[0].keypoint("grasp")
    u, v = snap_to_top_face(grasp.u + 2.0, grasp.v - 2.0, depth, camera)
    assert np.hypot(u - grasp.u, v - grasp.v) < 1.5
    assert snap_to_top_face(3.0, 3.0, depth, camera) == (3.0, 3.0)  # nothing stands out of the table there
    assert snap_to_top_face(grasp.u + 2, grasp.v, depth, camera, SnapConfig(radius=0)) == (grasp.u + 2, grasp.v)
