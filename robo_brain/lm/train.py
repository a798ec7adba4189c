"""``robo-stack train brain-lm``: LoRA-tune the pretrained base on scene listings + varied instructions.

Each step draws ``batch_size`` examples. A share ``correction_prob`` are corrections
(:class:`~robo_brain.lm.data.CorrectionRecord`, made in the simulator with perturbations: plan so far,
failure report, expert-check problems -> a ``Why:`` diagnosis and the steps still to do), the rest first
plans from records (:class:`~robo_brain.lm.data.TaskRecord`), says each task in a
new way (:func:`~robo_brain.lm.data.examples_for`: the simulator's template, a rewording or a refusal)
and teaches the answer lines (loss on the answer tokens only). The system prompt is the same for every
example, so it runs once per step (batch 1, with gradients through the adapter) and its keys and
values are shared by the batch: a step costs the prompt once plus the short per-example turns.

Resumable: every ``save_every`` steps the adapter (``peft``'s ``save_pretrained``), ``brain_lm.json`` and
``trainer_state.pt`` (step, optimizer, random state) are written to ``out``; running again continues
from there. ``max_minutes`` stops cleanly (and saves) after that wall time. Progress is a tqdm bar
with the loss; every step is logged to ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from robo_brain.lm.backend import CONFIG_FILE
from robo_brain.lm.data import CorrectionRecord, TaskRecord, correction_example, examples_for
from robo_brain.lm.decode import encode_answer
from robo_brain.lm.prompt import prompt_parts

logger = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LMTrainConfig:
    """Settings of :func:`train`.

    Attributes:
        out: Checkpoint folder (adapter, config, trainer state, metrics).
        base: Name of the converted base (:func:`robo_brain.lm.weights.base_path`).
        steps: Optimizer steps.
        batch_size: Examples per step.
        lr: Peak learning rate (linear warm-up, then linear decay to 10 %).
        warmup_steps: Warm-up steps.
        rank: LoRA rank (alpha is twice the rank).
        dropout: LoRA dropout.
        template_prob: Share of examples with the simulator's own instruction.
        refusal_prob: Share of refusal examples.
        rename_prob: Share of examples with a colour renamed to a stand-in word (:func:`~robo_brain.lm.data.renamed`).
        seed: Random seed.
        save_every: Steps between checkpoints.
        max_minutes: Stop (resumable) after this wall time; 0: no limit.
        threads: Torch CPU threads.
        max_lines: Longest answer the decoder allows (saved for inference).
        correction_prob: Share of correction examples (when correction records are given).
        init_adapter: Start from this adapter folder (e.g. a shipped one) instead of a new LoRA; its rank wins.
    """

    out: str
    base: str = "smollm2-135m-instruct"
    steps: int = 160
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 10
    rank: int = 16
    dropout: float = 0.05
    template_prob: float = 0.25
    refusal_prob: float = 0.1
    rename_prob: float = 0.3
    seed: int = 0
    save_every: int = 20
    max_minutes: float = 0.0
    threads: int = 2
    max_lines: int = 9
    correction_prob: float = 0.0
    init_adapter: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "rank", "save_every", "threads", "max_lines"):
            if getattr(self, name) < 1:
                raise ValueError(f"LMTrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"LMTrainConfig.lr must be > 0, got {self.lr!r}")
        for name in ("template_prob", "refusal_prob", "rename_prob", "dropout", "correction_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"LMTrainConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")


def _lr_at(step: int, cfg: LMTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (1.0 - 0.9 * min(1.0, frac))


def batch_tensors(tokenizer, pairs: Sequence[tuple[list[str], str, list[str]]], pad_id: int):  # noqa: ANN001, ANN201
    """Suffix ids, attention mask and labels of a batch of ``(names, instruction, lines[, correction text])``:
    the user turn and the answer of each, right-padded; labels are the answer tokens (-100 elsewhere)."""
    import torch

    rows, labels = [], []
    for names, instruction, lines, *correction in pairs:
        text = correction[0] if correction else None
        user = tokenizer(prompt_parts(names, instruction, text).user, add_special_tokens=False)["input_ids"]
        answer = encode_answer(tokenizer, lines)
        rows.append(user + answer)
        labels.append([-100] * len(user) + answer)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id)
    lab = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels, strict=True)):
        ids[i, :len(r)] = torch.tensor(r)
        lab[i, :len(lb)] = torch.tensor(lb)
        mask[i, :len(r)] = 1
    return ids, mask, lab


def shared_prefix_loss(model, prefix_ids: list[int], ids, mask, labels):  # noqa: ANN001, ANN201
    """Mean cross-entropy of the answer tokens, with the system prompt run once and shared by the batch."""
    import torch
    from transformers import DynamicCache

    batch, n_prefix = ids.shape[0], len(prefix_ids)
    single = DynamicCache()
    model(input_ids=torch.tensor([prefix_ids]), past_key_values=single, use_cache=True)
    shared = DynamicCache()
    for i, layer in enumerate(single.layers):
        shared.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1), i)
    full_mask = torch.cat([torch.ones((batch, n_prefix), dtype=mask.dtype), mask], dim=1)
    positions = (n_prefix + torch.arange(ids.shape[1])).unsqueeze(0).expand(batch, -1)
    out = model(input_ids=ids, attention_mask=full_mask, position_ids=positions, past_key_values=shared,
                use_cache=True)
    logits = out.logits[:, :-1].float()
    target = labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100)


def train(cfg: LMTrainConfig, records: Sequence[TaskRecord], progress: bool = True,
          corrections: Sequence[CorrectionRecord] = ()) -> dict:
    """Tune the adapter on ``records`` and ``corrections`` (see the module docstring); return the last metrics."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from robo_brain.lm.weights import base_path

    if not records:
        raise ValueError("train brain-lm: no training records")
    if cfg.correction_prob > 0 and not corrections:
        raise ValueError("train brain-lm: correction_prob > 0 but no correction records")
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    base_dir = base_path(cfg.base)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)
    state_file = out / "trainer_state.pt"
    if state_file.is_file() and (out / "adapter_config.json").is_file():
        model = PeftModel.from_pretrained(model, out, is_trainable=True)
        state = torch.load(state_file, weights_only=False)
        logger.info("resuming %s at step %d", out, state["step"])
    elif cfg.init_adapter:
        model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
        state = None
        logger.info("starting from the adapter %s", cfg.init_adapter)
    else:
        lora = LoraConfig(r=cfg.rank, lora_alpha=2 * cfg.rank, lora_dropout=cfg.dropout,
                          target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        state = None
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    step = 0
    if state is not None:
        optim.load_state_dict(state["optimizer"])
        rng.setstate(state["rng"])
        step = state["step"]
    prefix_ids = tokenizer(prompt_parts([], "").prefix, add_special_tokens=False)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    t0, metrics = time.monotonic(), {}
    bar = tqdm(total=cfg.steps, initial=step, desc="train brain-lm", unit="step", disable=not progress)
    with (out / "metrics.jsonl").open("a") as log:
        while step < cfg.steps:
            pairs: list[tuple] = []
            for r in rng.sample(list(records), min(cfg.batch_size, len(records))):
                if corrections and rng.random() < cfg.correction_prob:
                    c = rng.choice(corrections)
                    turn, lines = correction_example(c, rng, cfg.template_prob, cfg.rename_prob)
                    pairs.append((c.task.names, "", lines, turn))
                    continue
                (text, lines), = examples_for(r, rng, 1, cfg.template_prob, cfg.refusal_prob, cfg.rename_prob)
                pairs.append((r.names, text, lines))
            ids, mask, labels = batch_tensors(tokenizer, pairs, pad_id)
            for g in optim.param_groups:
                g["lr"] = _lr_at(step, cfg)
            loss = shared_prefix_loss(model, prefix_ids, ids, mask, labels)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            step += 1
            metrics = {"step": step, "loss": round(float(loss), 5), "lr": optim.param_groups[0]["lr"],
                       "elapsed_s": round(time.monotonic() - t0, 1)}
            log.write(json.dumps(metrics) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}")
            out_of_time = cfg.max_minutes > 0 and time.monotonic() - t0 > 60 * cfg.max_minutes
            if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
                _save(model, optim, rng, step, cfg, out)
            if out_of_time:
                logger.info("stopping after %.1f min at step %d (run again to resume)", cfg.max_minutes, step)
                break
    bar.close()
    if not math.isfinite(metrics.get("loss", 0.0)):
        raise RuntimeError(f"train brain-lm: loss is not finite at step {step}")
    return metrics


def _save(model, optim, rng: random.Random, step: int, cfg: LMTrainConfig, out: Path) -> None:  # noqa: ANN001
    import torch

    for peft_cfg in model.peft_config.values():  # the base by its name, not this machine's path
        peft_cfg.base_model_name_or_path = cfg.base
    model.save_pretrained(out)
    (out / CONFIG_FILE).write_text(json.dumps({"base": cfg.base, "max_lines": cfg.max_lines,
                                               "corrections": cfg.correction_prob > 0,
                                               "train": asdict(cfg), "step": step}, indent=1) + "\n")
    tmp = out / "trainer_state.pt.tmp"
    torch.save({"step": step, "optimizer": optim.state_dict(), "rng": rng.getstate()}, tmp)
    tmp.replace(out / "trainer_state.pt")


__all__ = ["LMTrainConfig", "batch_tensors", "shared_prefix_loss", "train"]
