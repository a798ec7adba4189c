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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from robo_brain.embedded.dataset import DEFAULT_RENDER_WORKERS, Example, iter_examples, strip_scene_listing
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
        rename_prob: Share of training examples whose instruction names one object by a stand-in
            colour word (:mod:`robo_brain.embedded.augment`): teaches copying colour names.
        paraphrase_prob: Share of training examples whose instruction is re-said with a training-only
            template (:data:`robo_brain.embedded.augment.PARAPHRASES`).
        hue_prob: Share of training examples whose image hues are rotated, colour words renamed to the
            colour terms the objects then show (:func:`robo_brain.embedded.augment.hue_shift`).
        noise_prob: Share of training examples whose instruction's phrasing words are replaced, dropped
            or padded with nonce words (:func:`robo_brain.embedded.augment.word_noise`).
        kind_mask_prob: Share of training examples whose instruction says ``container`` instead of
            ``bowl`` / ``tray`` (:func:`robo_brain.embedded.augment.mask_kinds`), so the kind is read from the image.
        task_verbs: Keep the task verbs (:data:`robo_brain.embedded.augment.TASK_VERBS`) out of the
            word noise, like the content words.
        scene_listing: Keep the scene listing of the cached targets' reasoning line (default False:
            the model learns to write only family and step count,
            :func:`~robo_brain.embedded.dataset.strip_scene_listing`; measured, the listing did not help).
        coord_sigma: Soft-label width (pixels) of the coordinate-token loss (:class:`CoordLoss`; 0: hard
            cross-entropy).
        ground_weight: Weight of the cross-attention grounding loss (:class:`GroundingLoss`; 0: off).
        ground_sigma: Width (pixels) of its target around the keypoint.
        bf16: bfloat16 autocast on the CPU (weights and optimizer stay float32).
        threads: Torch CPU threads.
        render_workers: Processes that render missing cache examples (the examples do not depend on it).
        eval_interval: Steps between validation losses and checkpoint saves.
        max_minutes: Wall-clock budget of this run (saves and stops when spent; 0: none).
        seed: Initialisation and shuffling seed.
        model: Model sizes.
        export: Folder to also write the final checkpoint to (no trainer state), or empty.
        init: Checkpoint folder whose weights (and tokenizer) a fresh run starts from instead of a random
            initialisation (continued training of an exported model with a new schedule), or empty.
    """

    out: str
    cache: str = "data/brain_embedded/cache"
    examples: int = 14000
    val_every: int = 101
    epochs: float = 1.2
    max_steps: int = 2600
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    rename_prob: float = 0.25
    paraphrase_prob: float = 0.0
    hue_prob: float = 0.0
    noise_prob: float = 0.0
    kind_mask_prob: float = 0.0
    task_verbs: bool = False
    scene_listing: bool = False
    coord_sigma: float = 1.0
    ground_weight: float = 0.5
    ground_sigma: float = 6.0
    bf16: bool = True
    threads: int = 1
    render_workers: int = DEFAULT_RENDER_WORKERS
    eval_interval: int = 150
    max_minutes: float = 0.0
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    export: str = ""
    init: str = ""

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("TrainConfig.out is required")
        if self.examples < 2 or self.val_every < 2:
            raise ValueError(f"TrainConfig needs examples >= 2 and val_every >= 2, got {self.examples}, "
                             f"{self.val_every}")
        for name in ("epochs", "lr", "batch_size", "threads", "render_workers", "eval_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.ground_weight < 0 or self.ground_sigma <= 0:
            raise ValueError(f"TrainConfig needs ground_weight >= 0 and ground_sigma > 0, got "
                             f"{self.ground_weight!r}, {self.ground_sigma!r}")
        if not all(0 <= p <= 1 for p in (self.paraphrase_prob, self.hue_prob, self.noise_prob, self.kind_mask_prob)):
            raise ValueError(f"TrainConfig needs paraphrase_prob, hue_prob, noise_prob and kind_mask_prob in [0, 1], "
                             f"got {self.paraphrase_prob!r}, {self.hue_prob!r}, {self.noise_prob!r}, "
                             f"{self.kind_mask_prob!r}")
        if not 0 <= self.rename_prob <= 1 or self.coord_sigma < 0:
            raise ValueError(f"TrainConfig needs rename_prob in [0, 1] and coord_sigma >= 0, got "
                             f"{self.rename_prob!r}, {self.coord_sigma!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.max_steps < 0 or self.max_minutes < 0 or self.warmup_steps < 0:
            raise ValueError("TrainConfig.max_steps, max_minutes and warmup_steps must be >= 0")

    def to_dict(self) -> dict:
        """Plain dict for ``training_args.json``."""
        return asdict(self)


# ---------------------------------------------------------------- data
IGNORE = -100
"""Label of positions without loss (prompt, padding, coordinates of renamed objects)."""


@dataclass
class Encoded:
    """Tokenised examples in memory: images ``N x H x W x 3`` uint8, token ids ``<s> prompt answer </s>`` and
    per-token labels (the token itself on the answer, :data:`IGNORE` elsewhere)."""

    images: np.ndarray
    ids: list[list[int]]
    labels: list[list[int]]
    seeds: list[int]


def _answer_labels(tokenizer, target: str, skip_lines: list[bool], coord_ids: set[int]) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """Token ids of ``target`` line by line and their labels (coordinates of ``skip_lines`` ignored)."""
    ids, labels = [], []
    for line, skip in zip(target.splitlines(keepends=True), skip_lines, strict=True):
        part = tokenizer(line, add_special_tokens=False)["input_ids"]
        ids += part
        labels += [IGNORE if skip and t in coord_ids else t for t in part]
    return ids, labels


SceneColours = Callable[[Example], tuple[str, ...]]
"""Colours of every object in the scene of a cached example (the hue augmentation keeps them apart)."""


@dataclass(frozen=True)
class ExampleSource:
    """Where training examples come from: the system layer renders them from the simulator
    (:data:`robo_system.datasets.brain.SIM_EXAMPLES`); this package never imports it.

    Attributes:
        render: ``render(cache, seeds, split, progress, workers) -> paths``: the cached example of each
            seed (:func:`~robo_brain.embedded.dataset.example_path`), rendering the missing ones.
        scene_colours: Colours of every object in an example's scene (hue augmentation).
        templates: The seen split's instruction templates per template key (paraphrase augmentation).
    """

    render: Callable[[str | Path, Sequence[int], str, bool, int], list[Path]]
    scene_colours: SceneColours
    templates: Mapping[str, Sequence[str]]


def encode(paths: list[Path], tokenizer, max_len: int, rename_prob: float = 0.0, seed: int = 0,  # noqa: ANN001
           paraphrase_prob: float = 0.0, hue_prob: float = 0.0, noise_prob: float = 0.0,
           scene_listing: bool = False, task_verbs: bool = False, kind_mask_prob: float = 0.0,
           scene_colours: SceneColours | None = None, templates: Mapping[str, Sequence[str]] | None = None) -> Encoded:
    """Load cached examples and tokenise ``<s> prompt answer </s>`` with labels on the answer only.

    Augmentations, each drawn once per example (in this order): with probability ``paraphrase_prob``
    the instruction is re-said with a training-only template
    (:func:`robo_brain.embedded.augment.paraphrase`); with ``kind_mask_prob`` it says ``container`` for
    ``bowl`` / ``tray`` (:func:`~robo_brain.embedded.augment.mask_kinds`); with ``noise_prob`` its phrasing words are
    perturbed (:func:`~robo_brain.embedded.augment.word_noise`); with ``hue_prob`` the image's hues are rotated
    and the colour words renamed (:func:`~robo_brain.embedded.augment.hue_shift`); with
    ``rename_prob`` the instruction names one object by a stand-in colour word
    (:func:`~robo_brain.embedded.augment.rename_colours`), and the pixel coordinates of the plan
    lines naming it get no loss. Each augmentation works on the output of the ones before it.
    Unless ``scene_listing``, the scene listing is dropped from every target's reasoning line. With
    ``task_verbs`` the word noise keeps the task verbs. The hue rotation needs ``scene_colours`` and the
    paraphrases the seen ``templates`` (an :class:`ExampleSource`'s).
    """
    from robo_brain.embedded.augment import (
        CONTENT_WORDS,
        TASK_VERBS,
        hue_shift,
        mask_kinds,
        paraphrase,
        rename_colours,
        renamed_lines,
        word_noise,
    )
    from robo_brain.embedded.tokenizer import coord_token_ids

    if hue_prob > 0 and scene_colours is None:
        raise ValueError("encode: hue_prob > 0 needs scene_colours")
    if paraphrase_prob > 0 and templates is None:
        raise ValueError("encode: paraphrase_prob > 0 needs the seen templates")
    rng = random.Random(seed)
    coord_ids = set(coord_token_ids(tokenizer))
    keep = CONTENT_WORDS | TASK_VERBS if task_verbs else CONTENT_WORDS
    images, ids, labels, seeds = [], [], [], []
    for ex, rgb in iter_examples(paths):
        prompt_text, new_words = ex.prompt, []
        target = ex.target if scene_listing else strip_scene_listing(ex.target)
        instruction = ex.instruction
        if paraphrase_prob > 0 and rng.random() < paraphrase_prob:
            instruction = paraphrase(instruction, rng, templates) or instruction
        if kind_mask_prob > 0 and rng.random() < kind_mask_prob:
            instruction = mask_kinds(instruction)
        if noise_prob > 0 and rng.random() < noise_prob:
            instruction = word_noise(instruction, rng, keep=keep)
        if instruction != ex.instruction and prompt_text.count(f"Instruction: {ex.instruction}\n") == 1:
            prompt_text = prompt_text.replace(f"Instruction: {ex.instruction}\n", f"Instruction: {instruction}\n")
        if hue_prob > 0 and rng.random() < hue_prob:
            shifted = hue_shift(rgb, prompt_text, target, rng, scene_colours(ex))
            if shifted is not None:
                rgb, prompt_text, target = shifted
        if rename_prob > 0 and rng.random() < rename_prob:
            prompt_text, target, new_words = rename_colours(prompt_text, target, rng)
        prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer, answer_labels = _answer_labels(tokenizer, target, renamed_lines(target, new_words), coord_ids)
        seq = [tokenizer.bos_token_id, *prompt, *answer, tokenizer.eos_token_id]
        if len(seq) > max_len:
            logger.warning("seed %d: %d tokens exceed n_positions %d; skipped", ex.seed, len(seq), max_len)
            continue
        images.append(rgb)
        ids.append(seq)
        labels.append([IGNORE] * (1 + len(prompt)) + answer_labels + [tokenizer.eos_token_id])
        seeds.append(ex.seed)
    return Encoded(np.stack(images), ids, labels, seeds)


def collate(data: Encoded, index: list[int], pad_id: int):  # noqa: ANN201 - tensors
    """``(pixel_values, decoder_input_ids, labels)`` of a batch; labels are shifted (next token) and
    :data:`IGNORE` on the prompt, padding and skipped coordinates."""
    import torch

    seqs = [data.ids[i] for i in index]
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for row, i in enumerate(index):
        s = data.ids[i]
        inputs[row, :len(s) - 1] = torch.tensor(s[:-1])
        labels[row, :len(s) - 1] = torch.tensor(data.labels[i][1:])
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


class CoordLoss:
    """Soft labels for pixel-coordinate tokens: a Gaussian of ``sigma`` pixels over the coordinate tokens
    around the target (an ordinal target: one pixel off costs less than forty), hard labels elsewhere.

    ``sigma == 0`` or a tokenizer without coordinate tokens gives plain cross-entropy everywhere.
    """

    def __init__(self, tokenizer, sigma: float) -> None:  # noqa: ANN001 - tokenizer
        """Look up the coordinate token ids of ``tokenizer``."""
        import torch

        from robo_brain.embedded.tokenizer import coord_token_ids

        ids = coord_token_ids(tokenizer)
        self.sigma = sigma
        self.steps_id = tokenizer.get_vocab().get(" steps.", -1)
        self.ids = torch.tensor(ids, dtype=torch.long)
        self.value = torch.full((len(tokenizer),), -1, dtype=torch.long)
        if ids:
            self.value[self.ids] = torch.arange(len(ids))
            grid = torch.arange(len(ids), dtype=torch.float32)
            soft = torch.exp(-0.5 * ((grid[None, :] - grid[:, None]) / max(sigma, 1e-6)) ** 2)
            self.soft = soft / soft.sum(dim=1, keepdim=True)

    def coordinate_mask(self, labels):  # noqa: ANN001, ANN201 - tensors
        """Positions whose label is a pixel coordinate (a coordinate token not followed by ``" steps."``)."""
        import torch

        if not len(self.ids):
            return torch.zeros_like(labels, dtype=torch.bool)
        following = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)
        return (labels >= 0) & (self.value[labels.clamp(min=0)] >= 0) & (following != self.steps_id)

    def __call__(self, logits, labels):  # noqa: ANN001, ANN204 - tensors
        """Mean loss over the labelled positions of ``logits`` (``B x T x V``)."""
        import torch

        logp = torch.log_softmax(logits.float(), dim=-1)
        mask = labels != IGNORE
        nll = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        if self.sigma > 0 and len(self.ids):
            coord = self.coordinate_mask(labels)
            if coord.any():
                q = self.soft[self.value[labels[coord]]]
                nll = nll.masked_scatter(coord, -(q * logp[coord][:, self.ids]).sum(-1))
        return (nll * mask).sum() / mask.sum().clamp(min=1)


class GroundingLoss:
    """Auxiliary training loss that supervises *where* the decoder looks when it writes a keypoint.

    At the position that predicts the ``u`` of a ``grasp`` or ``place`` keypoint, head 0 of every
    decoder cross-attention layer is pulled onto the image patches around the target pixel
    (cross-entropy against a Gaussian of ``sigma_px`` over the patch centres) and head 1 onto the
    encoder's CLS token (a "look nowhere" slot without a position); at the position that predicts
    ``v`` the two heads swap roles. Each coordinate then has its own head carrying the attended
    patch's position, which the decoder can map *linearly* onto the coordinate token (the patch
    position embeddings and the coordinate-token embeddings share their wavelengths, see
    :mod:`robo_brain.embedded.model`). With one head for both, the decoder attended to the right
    patch within ~1 000 steps but wrote chance-level coordinates: telling ``u`` from ``v`` out of
    the same attended vector is a nonlinear gate to learn.

    The attention weights are ordinary model outputs; nothing is added to the checkpoint, which
    stays a plain ``VisionEncoderDecoderModel``.
    """

    ANCHORS = ('") @ grasp=(', '") @ place=(')

    def __init__(self, tokenizer, weight: float, sigma_px: float, image_size: int, patch_size: int,  # noqa: ANN001
                 heads: tuple[int, int] = (0, 1)) -> None:
        """Anchor tokens of ``tokenizer`` and the patch grid of the encoder."""
        import torch

        vocab = tokenizer.get_vocab()
        self.anchors = torch.tensor([vocab[a] for a in self.ANCHORS if a in vocab], dtype=torch.long)
        self.weight, self.sigma, self.heads = weight, sigma_px, heads
        grid = image_size // patch_size
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * patch_size - 0.5
        self.rows, self.cols = (c.reshape(-1) for c in torch.meshgrid(centres, centres, indexing="ij"))

    def targets(self, inputs, labels, value):  # noqa: ANN001, ANN201 - tensors
        """``(batch, position, axis, patch distribution)`` of every supervised query position (axis 0: u, 1: v)."""
        import torch

        val = torch.where(labels >= 0, value[labels.clamp(min=0)], -1)
        val2 = torch.nn.functional.pad(val[:, 2:], (0, 2), value=-1)  # the v two tokens after u
        anchor = torch.isin(inputs, self.anchors) & (val >= 0) & (val2 >= 0)
        b, p = anchor.nonzero(as_tuple=True)
        u, v = val[b, p].float(), val2[b, p].float()
        d2 = (self.cols[None, :] - u[:, None]) ** 2 + (self.rows[None, :] - v[:, None]) ** 2
        q = torch.softmax(-d2 / (2 * self.sigma ** 2), dim=-1)
        axis = torch.cat([torch.zeros_like(p), torch.ones_like(p)])
        return torch.cat([b, b]), torch.cat([p, p + 2]), axis, torch.cat([q, q])

    def __call__(self, cross_attentions, inputs, labels, value):  # noqa: ANN001, ANN204 - tensors
        """Mean cross-entropy of the supervised heads' attention (0 when nothing is supervised)."""
        import torch

        b, p, axis, q = self.targets(inputs, labels, value)
        if not len(b):
            return cross_attentions[0].sum() * 0.0
        on = torch.tensor(self.heads)[axis]  # the head that looks at the object for this coordinate
        off = torch.tensor(self.heads)[1 - axis]  # the other one looks at CLS
        total = 0.0
        for att in cross_attentions:
            look = -(q * (att[b, on, p, 1:].float() + 1e-6).log()).sum(-1)
            rest = -(att[b, off, p, 0].float() + 1e-6).log()
            total = total + (look + rest).mean()
        return self.weight * total / len(cross_attentions)


def batch_loss(model, batch, bf16: bool, loss_fn: CoordLoss | None = None,  # noqa: ANN001, ANN201 - torch objects
               grounding: GroundingLoss | None = None):
    """Mean next-token loss over the answer tokens of a batch (cross-entropy, or ``loss_fn``), plus the
    ``grounding`` loss when given (``loss_fn`` is then required; the model must use eager attention)."""
    import torch

    pixels, inputs, labels = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(pixel_values=pixels, decoder_input_ids=inputs, output_attentions=grounding is not None)
    if loss_fn is None:
        return torch.nn.functional.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]),
                                                 labels.reshape(-1), ignore_index=IGNORE)
    loss = loss_fn(out.logits, labels)
    if grounding is not None and grounding.weight > 0:
        loss = loss + grounding(out.cross_attentions, inputs, labels, loss_fn.value)
    return loss


def validation_metrics(model, data: Encoded, pad_id: int, bf16: bool, batch_size: int,  # noqa: ANN001
                       loss_fn: CoordLoss) -> dict[str, float]:
    """Mean answer cross-entropy of the validation examples and, teacher-forced, the pixel error of the
    most likely coordinate token at every coordinate (mean, median, share within 2 px)."""
    import torch

    model.eval()
    total, n, errors = 0.0, 0, []
    with torch.no_grad():
        for i in range(0, len(data.ids), batch_size):
            pixels, inputs, labels = collate(data, list(range(i, min(i + batch_size, len(data.ids)))), pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(pixel_values=pixels, decoder_input_ids=inputs).logits.float()
            mask = labels != IGNORE
            total += float(torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="sum"))
            n += int(mask.sum())
            if len(loss_fn.ids):
                coord = loss_fn.coordinate_mask(labels)
                guess = logits[coord][:, loss_fn.ids].argmax(-1)
                errors += (guess - loss_fn.value[labels[coord]]).abs().tolist()
    model.train()
    out = {"val_loss": total / max(1, n)}
    if errors:
        err = np.asarray(errors, dtype=float)
        out |= {"val_coord_px_mean": float(err.mean()), "val_coord_px_median": float(np.median(err)),
                "val_coord_within_2px": float((err <= 2).mean())}
    return out


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
def _save(cfg: TrainConfig, out: Path, model, tok, proc, opt, sched, step: int, rng: random.Random,  # noqa: ANN001
          elapsed_s: float) -> None:
    import torch

    save_checkpoint(out, model, tok, proc)
    (out / ARGS_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    tmp = out / (STATE_FILE + ".tmp")
    torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": rng.getstate(), "elapsed_s": elapsed_s}, tmp)
    tmp.replace(out / STATE_FILE)
    logger.info("saved step %d to %s", step, out)


def _load_or_build(cfg: TrainConfig, out: Path):  # noqa: ANN202
    from robo_brain.embedded.model import load_checkpoint

    if (out / STATE_FILE).is_file():
        logger.info("resuming from %s", out)
        return (*load_checkpoint(out), True)
    if cfg.init:
        if not (Path(cfg.init) / "config.json").is_file():
            raise FileNotFoundError(f"--init {cfg.init}: no checkpoint there (config.json missing)")
        logger.info("starting from the weights of %s", cfg.init)
        return (*load_checkpoint(Path(cfg.init)), False)
    return (*build_model(cfg.model, cfg.seed), False)


def _log_metrics(out: Path, row: dict) -> None:
    with (out / METRICS_FILE).open("a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------- main loop
def train(cfg: TrainConfig, source: ExampleSource, progress: bool = True) -> Path:
    """Train (or resume) into ``cfg.out`` on ``source``'s examples; return the checkpoint folder."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_seeds, val_seeds = split_seeds(cfg.examples, cfg.val_every)
    paths = source.render(cfg.cache, range(cfg.examples), "seen", progress, cfg.render_workers)
    model, tok, proc, resumed = _load_or_build(cfg, out)
    logger.info("model: %.2f M parameters", n_parameters(model) / 1e6)
    data = encode([paths[s] for s in train_seeds], tok, cfg.model.n_positions, cfg.rename_prob, cfg.seed,
                  cfg.paraphrase_prob, cfg.hue_prob, cfg.noise_prob, cfg.scene_listing, cfg.task_verbs,
                  cfg.kind_mask_prob, source.scene_colours, source.templates)
    val = encode([paths[s] for s in val_seeds], tok, cfg.model.n_positions, scene_listing=cfg.scene_listing)
    loss_fn = CoordLoss(tok, cfg.coord_sigma)
    grounding = None
    if cfg.ground_weight > 0:
        model.set_attn_implementation("eager")  # attention weights are outputs; the saved config is unchanged
        grounding = GroundingLoss(tok, cfg.ground_weight, cfg.ground_sigma, cfg.model.image_size,
                                  cfg.model.patch_size)
    total = cfg.max_steps or math.ceil(cfg.epochs * len(data.ids) / cfg.batch_size)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.warmup_steps, cfg.min_lr_ratio))
    rng = random.Random(cfg.seed)
    step, elapsed = 0, 0.0
    if resumed:
        state = torch.load(out / STATE_FILE, weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        step = int(state["step"])
        elapsed = float(state.get("elapsed_s", 0.0))
    (out / ARGS_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    logger.info("%d training / %d validation examples; steps %d -> %d", len(data.ids), len(val.ids), step, total)
    model.train()
    batches = _batches([len(x) for x in data.ids], cfg.batch_size, rng)
    t0 = time.monotonic()
    bar = tqdm(total=total, initial=step, desc="train brain", disable=not progress, unit="step")
    running = None
    while step < total:
        loss = batch_loss(model, collate(data, next(batches), tok.pad_token_id), cfg.bf16, loss_fn, grounding)
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
            metrics = validation_metrics(model, val, tok.pad_token_id, cfg.bf16, cfg.batch_size, loss_fn)
            _log_metrics(out, {"step": step, "train_loss": running, **metrics,
                               "lr": sched.get_last_lr()[0], "elapsed_s": elapsed + time.monotonic() - t0})
            logger.info("step %d: train loss %.4f, %s", step, running,
                        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            _save(cfg, out, model, tok, proc, opt, sched, step, rng, elapsed + time.monotonic() - t0)
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
