"""``robo-stack train brain``: train the embedded model on cached simulator examples (CPU, resumable).

The output folder is always a loadable checkpoint (``save_pretrained`` safetensors, tokenizer,
image processor) plus ``training_args.json``, ``metrics.jsonl`` and ``trainer_state.pt``
(optimizer, scheduler, step, RNG) from which a rerun with the same ``--out`` resumes. The loss
is next-token cross-entropy on the answer only (the instruction prefix is given, not learned).
Validation holds out every seed with ``seed % val_every == val_every - 1``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from robo_brain.embedded.dataset import generate, iter_examples
from robo_brain.embedded.model import ModelConfig, build_model, n_parameters, pixel_values, save_checkpoint

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
ARGS_FILE = "training_args.json"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        out: Checkpoint folder (resumed from when it holds ``trainer_state.pt``).
        cache: Example cache folder (rendered on demand).
        examples: Number of ``seen`` seeds ``0 .. examples-1`` (validation seeds included).
        val_every: Every ``val_every``-th seed is held out for validation.
        epochs: Passes over the training examples (the step count is derived from it).
        max_steps: Cap on optimizer steps (0: no cap).
        batch_size: Examples per step.
        lr: Peak learning rate (AdamW), linear warm-up then cosine decay to ``lr * min_lr_ratio``.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        warmup_steps: Linear warm-up steps.
        weight_decay: AdamW weight decay.
        grad_clip: Gradient norm clip.
        bf16: bfloat16 autocast on the CPU (weights and optimizer stay float32).
        threads: Torch CPU threads.
        eval_interval: Steps between validation losses and checkpoint saves.
        max_minutes: Wall-clock budget of this run (saves and stops when spent; 0: none).
        seed: Initialisation and shuffling seed.
        model: Model sizes.
        export: Folder to also write the final checkpoint to (no trainer state), or empty.
    """

    out: str
    cache: str = "data/brain_embedded/cache"
    examples: int = 20000
    val_every: int = 50
    epochs: float = 1.2
    max_steps: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool = True
    threads: int = 1
    eval_interval: int = 50
    max_minutes: float = 0.0
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    export: str = ""

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("TrainConfig.out is required")
        if self.examples < 2 or self.val_every < 2:
            raise ValueError(f"TrainConfig needs examples >= 2 and val_every >= 2, got {self.examples}, "
                             f"{self.val_every}")
        for name in ("epochs", "lr", "batch_size", "threads", "eval_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.max_steps < 0 or self.max_minutes < 0 or self.warmup_steps < 0:
            raise ValueError("TrainConfig.max_steps, max_minutes and warmup_steps must be >= 0")

    def to_dict(self) -> dict:
        """Plain dict for ``training_args.json``."""
        return asdict(self)


# ---------------------------------------------------------------- data
@dataclass
class Encoded:
    """Tokenised examples in memory: images ``N x H x W x 3`` uint8, token ids and answer start per example."""

    images: np.ndarray
    ids: list[list[int]]
    answer_start: list[int]
    seeds: list[int]


def encode(paths: list[Path], tokenizer, max_len: int) -> Encoded:  # noqa: ANN001 - tokenizer
    """Load cached examples and tokenise ``<s> prompt answer </s>`` (answer start index kept for the loss mask)."""
    images, ids, starts, seeds = [], [], [], []
    for ex, rgb in iter_examples(paths):
        prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        answer = tokenizer(ex.target, add_special_tokens=False)["input_ids"]
        seq = [tokenizer.bos_token_id, *prompt, *answer, tokenizer.eos_token_id]
        if len(seq) > max_len:
            logger.warning("seed %d: %d tokens exceed n_positions %d; skipped", ex.seed, len(seq), max_len)
            continue
        images.append(rgb)
        ids.append(seq)
        starts.append(1 + len(prompt))
        seeds.append(ex.seed)
    return Encoded(np.stack(images), ids, starts, seeds)


def collate(data: Encoded, index: list[int], pad_id: int):  # noqa: ANN201 - tensors
    """``(pixel_values, decoder_input_ids, labels)`` of a batch; labels are -100 on the prompt and padding."""
    import torch

    seqs = [data.ids[i] for i in index]
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for row, (i, s) in enumerate(zip(index, seqs, strict=True)):
        inputs[row, :len(s) - 1] = torch.tensor(s[:-1])
        start = data.answer_start[i] - 1
        labels[row, start:len(s) - 1] = torch.tensor(s[start + 1:])
    return pixel_values(data.images[index]), inputs, labels


def split_seeds(n: int, val_every: int) -> tuple[list[int], list[int]]:
    """Training and validation seeds of ``0 .. n-1``."""
    val = [s for s in range(n) if s % val_every == val_every - 1]
    held = set(val)
    return [s for s in range(n) if s not in held], val


# ---------------------------------------------------------------- optimisation
def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1 then cosine decay to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def batch_loss(model, batch, bf16: bool):  # noqa: ANN001, ANN201 - torch objects
    """Mean next-token cross-entropy over the answer tokens of a batch."""
    import torch

    pixels, inputs, labels = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(pixel_values=pixels, decoder_input_ids=inputs).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)


def validation_loss(model, data: Encoded, pad_id: int, bf16: bool, batch_size: int) -> float:  # noqa: ANN001
    """Mean answer loss over the validation examples."""
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data.ids), batch_size):
            index = list(range(i, min(i + batch_size, len(data.ids))))
            total += float(batch_loss(model, collate(data, index, pad_id), bf16)) * len(index)
            n += len(index)
    model.train()
    return total / max(1, n)


def _batches(lengths: list[int], batch_size: int, rng: random.Random, pool: int = 32):
    """Endless shuffled index batches of similar lengths (less padding): a fresh permutation per epoch,
    sorted by length within pools of ``pool`` batches, batches shuffled again."""
    n = len(lengths)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        batches = []
        for i in range(0, n, pool * batch_size):
            chunk = sorted(order[i:i + pool * batch_size], key=lengths.__getitem__)
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk) - batch_size + 1, batch_size)]
        rng.shuffle(batches)
        yield from batches


# ---------------------------------------------------------------- state
def _save(cfg: TrainConfig, out: Path, model, tok, proc, opt, sched, step: int, rng: random.Random) -> None:  # noqa: ANN001
    import torch

    save_checkpoint(out, model, tok, proc)
    (out / ARGS_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    tmp = out / (STATE_FILE + ".tmp")
    torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": rng.getstate()}, tmp)
    tmp.replace(out / STATE_FILE)
    logger.info("saved step %d to %s", step, out)


def _load_or_build(cfg: TrainConfig, out: Path):  # noqa: ANN202
    from robo_brain.embedded.model import load_checkpoint

    if (out / STATE_FILE).is_file():
        logger.info("resuming from %s", out)
        return (*load_checkpoint(out), True)
    return (*build_model(cfg.model, cfg.seed), False)


def _log_metrics(out: Path, row: dict) -> None:
    with (out / METRICS_FILE).open("a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------- main loop
def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) into ``cfg.out``; return the checkpoint folder."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_seeds, val_seeds = split_seeds(cfg.examples, cfg.val_every)
    paths = generate(cfg.cache, range(cfg.examples), "seen", progress)
    model, tok, proc, resumed = _load_or_build(cfg, out)
    logger.info("model: %.2f M parameters", n_parameters(model) / 1e6)
    data = encode([paths[s] for s in train_seeds], tok, cfg.model.n_positions)
    val = encode([paths[s] for s in val_seeds], tok, cfg.model.n_positions)
    total = cfg.max_steps or math.ceil(cfg.epochs * len(data.ids) / cfg.batch_size)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.warmup_steps, cfg.min_lr_ratio))
    rng = random.Random(cfg.seed)
    step = 0
    if resumed:
        state = torch.load(out / STATE_FILE, weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        step = int(state["step"])
    (out / ARGS_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    logger.info("%d training / %d validation examples; steps %d -> %d", len(data.ids), len(val.ids), step, total)
    model.train()
    batches = _batches([len(x) for x in data.ids], cfg.batch_size, rng)
    t0 = time.monotonic()
    bar = tqdm(total=total, initial=step, desc="train brain", disable=not progress, unit="step")
    running = None
    while step < total:
        loss = batch_loss(model, collate(data, next(batches), tok.pad_token_id), cfg.bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        out_of_time = cfg.max_minutes and (time.monotonic() - t0) / 60 >= cfg.max_minutes
        if step % cfg.eval_interval == 0 or step == total or out_of_time:
            vloss = validation_loss(model, val, tok.pad_token_id, cfg.bf16, cfg.batch_size)
            _log_metrics(out, {"step": step, "train_loss": running, "val_loss": vloss,
                               "lr": sched.get_last_lr()[0], "elapsed_s": time.monotonic() - t0})
            logger.info("step %d: train loss %.4f, val loss %.4f", step, running, vloss)
            _save(cfg, out, model, tok, proc, opt, sched, step, rng)
        if out_of_time:
            logger.warning("time budget of %.1f min spent at step %d/%d; rerun to resume", cfg.max_minutes, step,
                           total)
            break
    bar.close()
    if cfg.export and step >= total:
        export(out, Path(cfg.export))
    return out


def export(src: Path, dst: Path) -> Path:
    """Copy the model, tokenizer, processor and training args of ``src`` to ``dst`` (no trainer state)."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in (STATE_FILE, STATE_FILE + ".tmp"):
            shutil.copy2(f, dst / f.name)
    logger.info("exported %s to %s", src, dst)
    return dst
