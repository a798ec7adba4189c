"""Behaviour cloning of the cerebellum policy from episode bags: resumable, with validation.

``robo-stack train cerebellum --data BAGS_DIR --out CKPT_DIR``. Whole episodes are sequences;
the network runs them in parallel (Mamba-2 chunked scan). Each epoch writes ``OUT/last/``
(weights, config, optimiser and progress) so an interrupted run resumes where it stopped; the
best validation checkpoint is ``OUT/model.safetensors`` + ``OUT/config.json``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.dataset import (
    K_EE_POS,
    K_EE_QUAT,
    K_FAILURE,
    K_FRAME,
    K_GRIPPER_CMD,
    K_GRIPPER_WIDTH,
    K_IMAGES,
    K_PROGRESS,
    K_SUBTASK,
    K_TARGET_POS,
    K_TARGET_QUAT,
    Episode,
    load_episodes,
)
from robo_cerebellum.features import code_words, sequence_inputs
from robo_cerebellum.model import CerebellumNet, target_rotation
from robo_cerebellum.policy import CerebellumPolicy
from robo_cerebellum.rotations import geodesic_angle, quat_to_rot6d, rot6d_to_matrix
from robo_common.rates import seconds_to_steps

LOG = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings (saved in ``OUT/train_config.json``)."""

    epochs: int = 14
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    pos_noise_m: float = 0.004
    drift_noise_m: float = 0.01
    drift_fraction: float = 0.5
    state_delay_s: float = 0.0
    width_drift: float = 0.0
    progress_lead: bool = False
    gripper_weight: float = 2.0
    rotation_weight: float = 1.0
    threads: int = 2
    seed: int = 0
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"epochs, batch_size and threads must be >= 1: {self}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.lr <= 0 or self.pos_noise_m < 0 or self.drift_noise_m < 0 or self.gripper_weight < 0 \
                or self.rotation_weight < 0:
            raise ValueError(f"lr must be > 0 and pos_noise_m, drift_noise_m, gripper_weight, rotation_weight >= 0: "
                             f"{self}")
        if not 0.0 <= self.drift_fraction <= 1.0:
            raise ValueError(f"drift_fraction must be in [0, 1], got {self.drift_fraction}")
        if not 0.0 <= self.width_drift <= 0.5:
            raise ValueError(f"width_drift must be in [0, 0.5], got {self.width_drift}")
        if not 0.0 <= self.state_delay_s <= 0.5:
            raise ValueError(f"state_delay_s must be in [0, 0.5] s, got {self.state_delay_s}")


def is_validation(name: str, fraction: float) -> bool:
    """Deterministic episode split by name hash."""
    return (zlib.crc32(name.encode()) % 1000) < fraction * 1000


DRIFT_TIME_S = 1.0
"""Time constant (s) of the slowly wandering offset added to the observed position (:func:`drift`)."""


def drift(length: int, std: float, rng: np.random.Generator, smoothing: float = 0.05) -> np.ndarray:
    """A slowly wandering 3D offset ``(length, 3)`` with per-axis standard deviation ``std`` (m): white noise
    through a first-order low-pass filter (time constant about ``1 / smoothing`` steps)."""
    white = rng.normal(0.0, 1.0, (length, 3))
    out = np.empty_like(white)
    out[0] = white[0] * std  # start in the stationary distribution
    gain = std * math.sqrt(smoothing * (2.0 - smoothing))
    for t in range(1, length):
        out[t] = (1.0 - smoothing) * out[t - 1] + gain * white[t]
    return out


def delayed_index(length: int, max_steps: int, rng: np.random.Generator) -> np.ndarray:
    """For each step, the index of the robot state the policy has then: every state arrives 0..``max_steps``
    steps late (uniform, independently), and the policy keeps the newest that has arrived (a state overtaken by
    a newer one is never seen; before the first arrival, the first state)."""
    idx = np.arange(length)
    if max_steps <= 0 or length == 0:
        return idx
    arrival = np.minimum(idx + rng.integers(0, max_steps + 1, length), length - 1)
    newest = np.full(length, -1)
    np.maximum.at(newest, arrival, idx)
    return np.maximum(np.maximum.accumulate(newest), 0)


def episode_tensors(ep: Episode, cfg: CerebellumConfig, rng: np.random.Generator | None, noise: float,
                    drift_m: float = 0.0, drift_fraction: float = 0.0, state_delay_s: float = 0.0,
                    width_drift: float = 0.0, progress_lead: bool = False) -> dict:
    """Inputs and targets of one episode.

    The observed end-effector position is perturbed (DART-style): white noise of ``noise`` (m) per step and,
    in ``drift_fraction`` of the episodes, a slowly wandering offset of ``drift_m`` (m). The target offset is
    computed from the perturbed position, so the policy learns to steer back onto the demonstration from
    states the expert never visited (the states a lagging or drifting policy reaches in closed loop).
    With ``state_delay_s`` the observed robot state (pose and finger width) is the newest of states that each
    arrive up to that long late (:func:`delayed_index`): the age and jitter of a state that crossed DDS.

    With ``width_drift``, in ``drift_fraction`` of the episodes (drawn apart from the position's) the observed
    finger width (0-1) carries a slowly wandering offset of that standard deviation: at 200 Hz the command of
    one step is nearly the width seen a few steps later, and a policy that learned to copy it opened its
    fingers wide when a push pressed them apart (and closed them when a block squeezed them). With
    ``progress_lead`` the progress label is the one of the commanded target (``cfg.target_lead_s`` ahead, as
    the pose label): a subtask's label of 1.0 then spans the lead (its last 11 steps at 200 Hz with 50 ms, about
    the time of its one step at 20 Hz) instead of one step. (models/cerebellum_200hz, trained so, still peaks at
    0.92-0.93 at a subtask's end: its ``progress_done`` is 0.85, chosen on training seeds.)
    """
    a = ep.arrays
    seen = (delayed_index(ep.length, seconds_to_steps(state_delay_s, ep.rate_hz, minimum=0), rng)
            if rng is not None and state_delay_s > 0 else np.arange(ep.length))
    ee_pos = a[K_EE_POS][seen]
    if rng is not None and noise > 0:
        ee_pos = ee_pos + rng.normal(0, noise, ee_pos.shape)
    smoothing = min(1.0, 1.0 / (DRIFT_TIME_S * ep.rate_hz))  # of the slow offsets (drift): ~DRIFT_TIME_S
    if rng is not None and drift_m > 0 and rng.random() < drift_fraction:
        ee_pos = ee_pos + drift(len(ee_pos), drift_m, rng, smoothing=smoothing)
    width = a[K_GRIPPER_WIDTH][seen]
    if rng is not None and width_drift > 0 and rng.random() < drift_fraction:
        offset = drift(len(width), width_drift, rng, smoothing=smoothing)[:, 0]
        width = np.clip(width + offset, 0.0, 1.0)
    inputs = sequence_inputs(ep.plan.subtasks, a[K_SUBTASK], ee_pos, a[K_EE_QUAT][seen], width, cfg)
    ahead = lead_index(a[K_SUBTASK], seconds_to_steps(cfg.target_lead_s, ep.rate_hz, minimum=0))
    progress = a[K_PROGRESS][ahead] if progress_lead else a[K_PROGRESS]
    return {
        **inputs,
        "frame": a[K_FRAME], "images": a[K_IMAGES],
        "delta": ((a[K_TARGET_POS][ahead] - ee_pos) / cfg.delta_scale).astype(np.float32),
        "rot6d": quat_to_rot6d(a[K_TARGET_QUAT][ahead]).astype(np.float32),
        "gripper": a[K_GRIPPER_CMD][ahead].astype(np.float32), "progress": progress.astype(np.float32),
        "failure": a[K_FAILURE].astype(np.float32),
    }


def lead_index(subtask: np.ndarray, steps: int) -> np.ndarray:
    """For each step, the index ``steps`` later, but not past the last step of its subtask
    (:attr:`CerebellumConfig.target_lead_s`)."""
    n = len(subtask)
    idx = np.arange(n)
    if steps <= 0 or n == 0:
        return idx
    starts = np.r_[0, np.flatnonzero(np.diff(subtask)) + 1]
    ends = np.r_[starts[1:] - 1, n - 1]
    last = np.repeat(ends, np.diff(np.r_[starts, n]))  # last step of each step's subtask run
    return np.minimum(idx + steps, last)


def collate(items: list[dict]) -> dict[str, torch.Tensor]:
    """Pad episodes to the longest; frames are concatenated with per-episode offsets."""
    lengths = [len(it["skill"]) for it in items]
    t_max, b = max(lengths), len(items)
    out: dict[str, torch.Tensor] = {"mask": torch.zeros(b, t_max)}
    for key in ("skill", "code", "keypoints", "proprio", "delta", "rot6d", "gripper", "progress", "failure"):
        first = np.asarray(items[0][key])
        buf = np.zeros((b, t_max, *first.shape[1:]), first.dtype)
        for i, it in enumerate(items):
            buf[i, : lengths[i]] = it[key]
        out[key] = torch.from_numpy(buf)
    frames, offset, index = [], 0, np.zeros((b, t_max), np.int64)
    for i, it in enumerate(items):
        frames.append(it["images"])
        index[i, : lengths[i]] = it["frame"] + offset
        index[i, lengths[i]:] = offset
        offset += len(it["images"])
        out["mask"][i, : lengths[i]] = 1.0
    out["images"] = torch.from_numpy(np.concatenate(frames).astype(np.float32))
    out["frame_index"] = torch.from_numpy(index)
    return out


TURN_RAD = 0.02
"""Rotation error (rad) above which the rotation loss grows quadratically (see :func:`_turn_loss`)."""


def _turn_loss(angle: torch.Tensor) -> torch.Tensor:
    """Geodesic error plus its square over :data:`TURN_RAD`: an error of a few degrees, where the demonstration
    turns the hand, weighs several times the sub-degree errors of the steps that hold the orientation. (With the
    plain angle, an L1-like loss, every step pulls equally and the few percent of steps that turn were
    outvoted: the policy never turned the hand for a push to the side.)"""
    return angle + angle * angle / TURN_RAD


def compute_loss(net: CerebellumNet, batch: dict[str, torch.Tensor], gripper_weight: float = 2.0,
                 rotation_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked behaviour-cloning loss: offset, geodesic rotation, gripper, progress and failure terms.

    The gripper term weighs ``gripper_weight`` (a gripper opened or closed early loses the episode). The rotation
    term is :func:`_turn_loss`, weighed ``rotation_weight`` (at 4 the progress head lost the sharpness that ends
    a subtask)."""
    visual = net.visual(batch["images"])[batch["frame_index"]]
    embeds = net.embed(visual, batch["skill"], batch["code"], batch["keypoints"], batch["proprio"])
    out = net(embeds, batch["mask"])
    mask = batch["mask"]
    denom = mask.sum().clamp(min=1.0)

    def masked(x: torch.Tensor) -> torch.Tensor:
        return (x * mask).sum() / denom

    terms = {
        "delta": masked(F.smooth_l1_loss(out["delta"], batch["delta"], reduction="none", beta=0.05).sum(-1)),
        "rotation": masked(_turn_loss(geodesic_angle(target_rotation(batch["proprio"][..., 3:9], out["rot6d"]),
                                                     rot6d_to_matrix(batch["rot6d"])))),
        "gripper": masked(F.binary_cross_entropy_with_logits(out["gripper"][..., 0], batch["gripper"],
                                                            reduction="none")),
        "progress": masked(F.binary_cross_entropy_with_logits(out["progress"][..., 0], batch["progress"],
                                                             reduction="none")),
        "failure": masked(F.binary_cross_entropy_with_logits(out["failure"][..., 0], batch["failure"],
                                                            pos_weight=torch.tensor(4.0), reduction="none")),
    }
    weights = {"delta": 4.0, "rotation": rotation_weight, "gripper": gripper_weight, "progress": 1.0, "failure": 0.5}
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _batches(items: list, size: int, rng: np.random.Generator) -> list[list]:
    """Groups of ``size`` episodes of similar length (within ~2 s, so little padding), in random order."""
    order = sorted(rng.permutation(len(items)),
                   key=lambda i: len(items[i].arrays[K_SUBTASK]) + rng.random() * 2.0 * items[i].rate_hz)
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return [[items[i] for i in g] for g in groups]


def _evaluate(net: CerebellumNet, episodes: list[Episode], cfg: CerebellumConfig, train_cfg: TrainConfig) -> dict:
    net.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i in range(0, len(episodes), train_cfg.batch_size):
            chunk = [episode_tensors(ep, cfg, None, 0.0, progress_lead=train_cfg.progress_lead)
                     for ep in episodes[i:i + train_cfg.batch_size]]
            total, terms = compute_loss(net, collate(chunk), train_cfg.gripper_weight, train_cfg.rotation_weight)
            for k, v in {"loss": float(total), **terms}.items():
                sums[k] = sums.get(k, 0.0) + v * len(chunk)
    net.train()
    return {k: v / max(1, len(episodes)) for k, v in sums.items()}


def train(data: Path, out: Path, model_cfg: CerebellumConfig, train_cfg: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume) into ``out``; returns the final summary (also ``out/summary.json``)."""
    from tqdm import tqdm

    torch.set_num_threads(train_cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    episodes, bad = load_episodes(Path(data), model_cfg, progress)
    model_cfg = _with_data_rate(model_cfg, episodes)
    model_cfg = replace(model_cfg, code_vocabulary=code_vocabulary(episodes), camera_hz=_camera_rate(episodes))
    val = [e for e in episodes if is_validation(e.name, train_cfg.val_fraction)]
    train_eps = [e for e in episodes if not is_validation(e.name, train_cfg.val_fraction)]
    if not train_eps or not val:
        raise ValueError(f"need training and validation episodes; got {len(train_eps)} and {len(val)} from {data}")
    LOG.info("%d training / %d validation episodes (%d bags skipped)", len(train_eps), len(val), len(bad))
    torch.manual_seed(train_cfg.seed)
    net = CerebellumNet(model_cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_eps) / train_cfg.batch_size)
    total_steps = steps_per_epoch * train_cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train_cfg.lr, total_steps=total_steps, pct_start=0.1)
    state = _resume(out, net, opt, sched, model_cfg, train_cfg)
    start = time.monotonic()
    rng = np.random.default_rng([train_cfg.seed, state["epoch"]])
    bar = tqdm(total=total_steps, initial=state["epoch"] * steps_per_epoch, desc="train cerebellum", unit="batch",
               disable=not progress)
    for epoch in range(state["epoch"], train_cfg.epochs):
        for group in _batches(train_eps, train_cfg.batch_size, rng):
            batch = collate([episode_tensors(e, model_cfg, rng, train_cfg.pos_noise_m, train_cfg.drift_noise_m,
                                             train_cfg.drift_fraction, train_cfg.state_delay_s, train_cfg.width_drift,
                                             train_cfg.progress_lead) for e in group])
            loss, terms = compute_loss(net, batch, train_cfg.gripper_weight, train_cfg.rotation_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", epoch=epoch)
        metrics = _evaluate(net, val, model_cfg, train_cfg)
        state = _end_epoch(out, net, opt, sched, model_cfg, train_cfg, state, epoch, metrics)
        if train_cfg.max_minutes and (time.monotonic() - start) / 60 > train_cfg.max_minutes:
            LOG.warning("stopping after %.1f minutes (max_minutes); re-run to resume", train_cfg.max_minutes)
            break
    bar.close()
    summary = {"episodes_train": len(train_eps), "episodes_val": len(val), "bags_skipped": bad,
               "best_val_loss": state["best"], "epochs_done": state["epoch"], "history": state["history"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def code_vocabulary(episodes: list[Episode]) -> tuple[str, ...]:
    """The sorted words of every subtask code of ``episodes``' plans, and of ``done()``: what the policy's code
    input is trained on (a word outside it is left out at run time: :func:`code_token_ids`)."""
    words = {w for ep in episodes for sub in ep.plan.subtasks for w in code_words(sub.code)}
    return tuple(sorted(words | set(code_words("done()"))))


def _camera_rate(episodes: list[Episode]) -> float:
    """The recordings' camera rate (Hz; ``camera_hz`` of their metadata), 0.0 when they do not say or differ."""
    rates = {round(float(e.meta.get("camera_hz") or 0.0), 3) for e in episodes}
    return rates.pop() if len(rates) == 1 else 0.0


def _with_data_rate(model_cfg: CerebellumConfig, episodes: list[Episode]) -> CerebellumConfig:
    """``model_cfg`` with ``policy_hz`` set to the recordings' control rate (one step per recorded command).

    Raises:
        ValueError: the recordings mix control rates (a policy is trained for one).
    """
    rates = sorted({round(e.rate_hz, 3) for e in episodes})
    if rates[-1] > 1.01 * rates[0]:
        raise ValueError(f"the data mixes control rates {rates} Hz; train on recordings of one rate")
    rate = float(np.median([e.rate_hz for e in episodes]))
    if abs(rate - model_cfg.policy_hz) > 1e-3:
        LOG.info("policy_hz %.1f -> %.1f (the recordings' control rate)", model_cfg.policy_hz, rate)
    return replace(model_cfg, policy_hz=rate)


def _resume(out: Path, net: CerebellumNet, opt: torch.optim.Optimizer, sched: object, model_cfg: CerebellumConfig,
            train_cfg: TrainConfig) -> dict:
    state_path = out / "last" / "trainer_state.pt"
    fresh = {"epoch": 0, "best": float("inf"), "history": []}
    if not state_path.exists():
        (out / "train_config.json").write_text(json.dumps(asdict(train_cfg), indent=2))
        return fresh
    saved = torch.load(state_path, weights_only=False)
    if saved["model_config"] != model_cfg.to_dict():
        raise ValueError(f"{out} holds a run with another model config; use another --out")
    net.load_state_dict(CerebellumPolicy.load(out / "last").net.state_dict())
    opt.load_state_dict(saved["optimizer"])
    if saved["scheduler"].get("total_steps") == getattr(sched, "total_steps", None):
        sched.load_state_dict(saved["scheduler"])
    else:  # resumed with another number of epochs: the new schedule, advanced to where training is
        LOG.warning("learning-rate schedule changed (other --epochs); continuing on the new one")
        for _ in range(saved["epoch"] * saved.get("steps_per_epoch", 0)):
            sched.step()
    LOG.info("resuming %s at epoch %d", out, saved["epoch"])
    return {"epoch": saved["epoch"], "best": saved["best"], "history": saved["history"]}


def _end_epoch(out: Path, net: CerebellumNet, opt: torch.optim.Optimizer, sched: object, model_cfg: CerebellumConfig,
               train_cfg: TrainConfig, state: dict, epoch: int, metrics: dict) -> dict:
    history = [*state["history"], {"epoch": epoch + 1, **metrics}]
    best = state["best"]
    LOG.info("epoch %d validation %s", epoch + 1, {k: round(v, 4) for k, v in metrics.items()})
    if metrics["loss"] < best:
        best = metrics["loss"]
        CerebellumPolicy(net).save(out)
        net.train()
    CerebellumPolicy(net).save(out / "last")
    net.train()
    torch.save({"epoch": epoch + 1, "best": best, "history": history, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "model_config": model_cfg.to_dict(),
                "steps_per_epoch": getattr(sched, "total_steps", 0) // max(1, train_cfg.epochs)},
               out / "last" / "trainer_state.pt")
    with (out / "train_log.jsonl").open("a") as log:
        log.write(json.dumps(history[-1]) + "\n")
    return {"epoch": epoch + 1, "best": best, "history": history}
