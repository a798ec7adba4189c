"""Per-step latency of the cerebellum policy vs a KV-cache transformer (part 1 of ``robo-stack bench cerebellum``).

Part 2, the node's loop rate beside ``sim_node``, needs the simulator: :mod:`robo_system.bench`.

Step latency: one episode of ``steps`` policy steps (batch 1, one torch thread, after a
warm-up) for the shipped Mamba-2 policy and, in the same run, a causal transformer (GPT-2)
of the same width and depth with a KV cache. ``step_ms``: p50/p99 of the ``repeats`` steps
from 10, 100, 1 000 and 10 000, the episode continued from its saved state at each mark, the
marks interleaved step by step (so all see the same machine load); ``flatness`` is the step-10 000
p50 over the step-10 p50. ``step_ms_sequential`` / ``flatness_sequential``: the same from the
one pass (the 50 steps from each index).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.policy import CerebellumPolicy, Observation, PolicyState
from robo_common.plan_types import KeypointData, SubtaskData

LOG = logging.getLogger(__name__)
MARKS = (10, 100, 1000, 10_000)
WINDOW = 50


def _episode_start(policy: CerebellumPolicy, rng: np.random.Generator) -> None:
    """A fresh episode after a warm-up: camera frame, one subtask, an empty recurrent state."""
    policy.reset()
    policy.update_image(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8),
                        rng.uniform(0.5, 1.5, (128, 128)).astype(np.float32))
    policy.set_subtask(SubtaskData(0, 'pick(object="red block")', "pick",
                                   [KeypointData("grasp", (0.5, 0.1, 0.02))]))
    for _ in range(20):  # warm-up, then a fresh episode
        policy.step(Observation(np.array([0.5, 0.0, 0.3]), QUAT, 1.0))
    policy.state.cache, policy.state.steps = None, 0


QUAT = np.array([1.0, 0.0, 0.0, 0.0])


def time_steps(policy: CerebellumPolicy, steps: int, marks: tuple[int, ...] = (), repeats: int = 0,
               seed: int = 0) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Seconds taken by each of ``steps`` consecutive policy steps of one episode, and by step ``m`` re-run.

    The sequential times are what one episode sees, but step 10 and step 10 000 are timed a minute
    apart, so a change in the machine's load between them enters their ratio. So the recurrent state
    just before each step in ``marks`` is also kept, and the episode is then continued from each of
    them for ``repeats`` more steps, one step per mark per round in a shuffled order: every mark is
    timed under the same load. (Each continuation owns its state, so nothing is copied while timing.)
    """
    rng = np.random.default_rng(seed)
    _episode_start(policy, rng)
    out = np.empty(steps)
    pos = np.array([0.5, 0.0, 0.3])
    saved: dict[int, PolicyState] = {}
    for k in range(steps):
        obs = Observation(pos + rng.normal(0, 0.001, 3), QUAT, 1.0)
        if k + 1 in marks:
            saved[k + 1] = copy.deepcopy(policy.state)
        t0 = time.perf_counter()
        policy.step(obs)
        out[k] = time.perf_counter() - t0
    rerun = {m: np.empty(repeats) for m in saved}
    order = list(saved)
    for r in range(repeats):
        rng.shuffle(order)
        for m in order:
            policy.state = saved[m]
            obs = Observation(pos + rng.normal(0, 0.001, 3), QUAT, 1.0)
            t0 = time.perf_counter()
            policy.step(obs)
            rerun[m][r] = time.perf_counter() - t0
    return out, rerun


def step_latency(checkpoint: Path, steps: int, repeats: int = 100) -> dict:
    """``step_ms`` / ``flatness`` (interleaved re-runs) and their one-pass ``_sequential`` versions.

    For the shipped policy and a causal transformer (GPT-2) of the same width and depth with a KV cache.
    """
    torch.set_num_threads(1)
    shipped = CerebellumPolicy.load(checkpoint)
    marks = [m for m in MARKS if m + WINDOW <= steps + 1] or [1]
    baseline_cfg = CerebellumConfig(**{**shipped.cfg.to_dict(), "backbone": "transformer",
                                       "max_positions": max(shipped.cfg.max_positions, steps + repeats + 64)})
    models = {f"{shipped.cfg.backbone} (shipped)": shipped,
              "transformer (KV cache)": CerebellumPolicy.from_config(baseline_cfg)}
    res: dict = {"step_ms": {}, "flatness": {}, "step_ms_sequential": {}, "flatness_sequential": {}}
    for name, policy in models.items():
        LOG.info("timing %d steps of %s, then %d interleaved re-runs of steps %s", steps, name, repeats, marks)
        times, rerun = time_steps(policy, steps, tuple(marks), repeats)
        times *= 1e3
        sequential = {}
        for m in marks:
            window = times[m - 1: m - 1 + WINDOW]
            sequential[str(m)] = {"p50": float(np.percentile(window, 50)), "p99": float(np.percentile(window, 99))}
        res["step_ms_sequential"][name] = sequential
        res["flatness_sequential"][name] = sequential[str(marks[-1])]["p50"] / sequential[str(marks[0])]["p50"]
        if repeats > 0:
            rows = {str(m): {"p50": float(np.percentile(rerun[m] * 1e3, 50)),
                             "p99": float(np.percentile(rerun[m] * 1e3, 99))} for m in marks}
        else:
            rows = sequential
        res["step_ms"][name] = rows
        res["flatness"][name] = rows[str(marks[-1])]["p50"] / rows[str(marks[0])]["p50"]
    return res
