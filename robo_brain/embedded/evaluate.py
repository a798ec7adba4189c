"""``robo-stack eval brain``: the real :class:`~robo_brain.planner.Planner` on simulator scenes vs the expert plan.

Scenes are the tasks of ``seed_offset + i`` (default offset 1 000 000, disjoint from the training
seeds ``0 .. N-1``), families cycling with the seed, rendered at the initial state by the system
layer (:func:`robo_system.datasets.brain.evaluate_brain` passes them in as :class:`EvalScene`). The planner
gets rgb + depth + camera exactly as on the robot; its plan is compared with the expert's:

* ``plan_exact_match``: the plan's code lines (``done()`` included) equal the expert's, in order.
* ``plan_any_order_match``: the same, except that the order of independent pick-and-place pairs is
  free: the plan is a sequence of ``pick`` + ``place`` pairs (and pushes) ending in ``done()`` whose
  multiset equals the expert's. It differs from the exact match on rearrange tasks only (one pair
  for pick_place and stack, one push), where any order reaches the same goals; the expert takes the
  blocks from left to right as the camera sees them (:func:`robo_sim.scene.left_to_right`), an
  order the image shows, so the exact match asks for it (before the cache format 2 the expert's
  order was a random permutation the scene did not reveal).
* ``subtask_f1``: F1 of the multisets of code lines (``done()`` excluded).
* ``keypoint_error_cm_median``: 3D distance between each predicted keypoint, lifted by the
  planner, and the expert's keypoint pixel lifted the same way (same depth image and locator),
  matched by subtask index and keypoint name (a plan with other steps or another order is scored
  against other objects' keypoints). The expert's pixels are the training targets (grasp: the
  object's top-face centre, see :mod:`robo_brain.embedded.dataset`).
* ``keypoint_error_same_step_cm_median``: the same distance matched by the step instead: the k-th
  occurrence of the same code line and keypoint name (a reordered ``pick`` of the right block is
  scored against that block; a step the expert does not have is not scored).
* ``keypoint_error_gt3d_cm_median``: the same predicted points against the simulator's 3D
  keypoints of :func:`robo_sim.expert.expert_plan` (grasp: the object's centre, inside the block).
  ``keypoint_lift_floor_cm_median`` is that error for the expert's own pixels: the part due to
  lifting a pixel onto a visible surface, which no pixel-predicting model can remove.
* ``keypoint_error_px_median``: pixel distance to the expert's pixels.
* ``latency_s_p50`` / ``latency_s_p95``: wall time of ``Planner.plan`` (generation, parsing, lifting).
* ``parse_failure_rate``: episodes without a plan (unparseable output or a keypoint the planner rejected).
* ``plan_exact_match_at_k`` (with ``top_k`` > 1): a diagnostic, not the planner's score: the share of
  scenes where any of the model's ``top_k`` beam-search answers (same prompt and image) has the
  expert's code lines. Close to ``plan_exact_match`` means the right plan is not among the model's
  next best answers either, so no re-ranking or validation of several answers would find it.

Breakdowns per family and by whether the task names a held-out colour (``heldout_colour``).

With ``EvalConfig.instructions`` (``eval brain --instructions FILE``) the scenes are the same seeds'
but the instructions come from a file of paraphrase templates, filled by the system layer from each
scene's task (:func:`robo_system.datasets.brain.evaluate_brain`); the scoring is this module's
(:func:`run_episode`, :func:`report`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from robo_brain.embedded.dataset import EVAL_SEED_OFFSET
from robo_brain.keypoints import make_locator
from robo_common.camera import CameraModel
from robo_common.plan_types import PlanData
from robo_common.vocabulary import check_split

logger = logging.getLogger(__name__)

HELDOUT_WORDS = ("purple block", "cyan block", "orange bowl", "orange tray", "purple bowl", "purple tray")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of :func:`evaluate`.

    Attributes:
        model: Checkpoint folder loaded with the ``transformers`` back-end.
        split: ``seen`` or ``unseen``.
        episodes: Number of scenes.
        seed_offset: First seed (disjoint from training seeds).
        max_new_tokens: Generation limit per plan.
        parse_retries: Planner retries after an unusable answer (0: greedy decoding of the same
            prefix would repeat the same answer).
        threads: Torch CPU threads.
        snap_radius: When > 0, lift grasp keypoints after :func:`robo_brain.embedded.refine.snap_to_top_face`
            with this search radius (pixels); 0 evaluates the planner as it is.
        top_k: When > 1, also decode ``top_k`` beams per scene for ``plan_exact_match_at_k``.
        instructions: A JSONL file of paraphrase templates; when set, ``episodes`` is not used and each
            entry is planned on ``scenes_per_instruction`` scenes of its family (the system layer's
            :func:`robo_system.datasets.brain.evaluate_brain` fills them).
        scenes_per_instruction: Scenes per entry of ``instructions``.
    """

    model: str = "models/brain_embedded"
    split: str = "unseen"
    episodes: int = 100
    seed_offset: int = EVAL_SEED_OFFSET
    max_new_tokens: int = 512
    parse_retries: int = 0
    threads: int = 1
    snap_radius: int = 0
    top_k: int = 1
    instructions: str = ""
    scenes_per_instruction: int = 1

    def __post_init__(self) -> None:
        check_split(self.split)
        if not 0 <= self.snap_radius <= 32:
            raise ValueError(f"EvalConfig.snap_radius must be in [0, 32], got {self.snap_radius!r}")
        if self.episodes < 1:
            raise ValueError(f"EvalConfig.episodes must be >= 1, got {self.episodes!r}")
        if not 1 <= self.top_k <= 16:
            raise ValueError(f"EvalConfig.top_k must be in [1, 16], got {self.top_k!r}")
        if not 1 <= self.scenes_per_instruction <= 100:
            raise ValueError("EvalConfig.scenes_per_instruction must be in [1, 100], "
                             f"got {self.scenes_per_instruction!r}")
        if self.seed_offset < 0 or self.threads < 1:
            raise ValueError("EvalConfig.seed_offset must be >= 0 and threads >= 1")


@dataclass(frozen=True)
class EvalScene:
    """One scene to plan: what the planner sees, and the expert's plans to compare with.

    Attributes:
        seed: Task seed.
        family: Task family.
        instruction: The task's instruction.
        rgb: Colour image (uint8 HxWx3) at the task's initial state.
        depth: Registered depth image (float32 metres, HxW).
        camera: The camera of both images.
        target: The expert plan with the training targets' keypoint pixels (grasp: the object's top-face centre).
        expert: The simulator's expert plan (3D keypoints; grasp: the object's centre).
    """

    seed: int
    family: str
    instruction: str
    rgb: np.ndarray
    depth: np.ndarray
    camera: CameraModel
    target: PlanData
    expert: PlanData


SceneSource = Callable[[int, str], EvalScene]
"""``scene(seed, split) -> EvalScene``: the system layer renders them from the simulator
(:meth:`robo_system.datasets.brain.SceneRenderer.eval_scene`)."""


@dataclass
class EpisodeResult:
    """Comparison of one planned episode with the expert."""

    seed: int
    family: str
    heldout: bool
    ok: bool
    exact: bool
    any_order: bool
    f1: float
    kp_cm: list[float]
    kp_step_cm: list[float]
    kp_gt3d_cm: list[float]
    floor_cm: list[float]
    kp_px: list[float]
    latency_s: float
    output: str
    error: str
    instruction: str = ""
    expected: tuple[str, ...] = ()
    exact_at_k: bool | None = None


def code_lines(plan: PlanData | None) -> list[str]:
    """The plan's code lines in order (empty for no plan)."""
    return [s.code for s in plan.subtasks] if plan is not None else []


def skill_units(lines: list[str]) -> Counter | None:
    """The plan's steps as a multiset of units: ``(pick, place)`` pairs and single other calls, or None
    when the lines do not end in ``done()`` or a ``pick`` is not followed by a ``place``."""
    if not lines or lines[-1] != "done()":
        return None
    units, i, body = Counter(), 0, lines[:-1]
    while i < len(body):
        if body[i].startswith("pick("):
            if i + 1 >= len(body) or not body[i + 1].startswith("place("):
                return None
            units[(body[i], body[i + 1])] += 1
            i += 2
        else:
            units[(body[i],)] += 1
            i += 1
    return units


def subtask_f1(pred: list[str], ref: list[str]) -> float:
    """F1 of the multisets of code lines, ``done()`` excluded (1.0 when both are empty)."""
    p = Counter(c for c in pred if c != "done()")
    r = Counter(c for c in ref if c != "done()")
    if not p and not r:
        return 1.0
    hit = sum((p & r).values())
    if hit == 0:
        return 0.0
    precision, recall = hit / sum(p.values()), hit / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def _lifted_refs(target: PlanData, locate) -> dict[tuple[int, str], np.ndarray]:  # noqa: ANN001
    refs = {}
    for st in target.subtasks:
        for k in st.keypoints:
            try:
                refs[(st.index, k.name)] = np.asarray(locate(k.name, k.u, k.v).point)
            except ValueError:
                logger.debug("expert keypoint %s of subtask %d cannot be lifted", k.name, st.index)
    return refs


def _step_keypoints(plan: PlanData | None):  # noqa: ANN202 - generator
    """``((code, occurrence, keypoint name), subtask, keypoint)`` for each keypoint of ``plan``: the k-th
    occurrence of the same code line names the same step in any order."""
    seen: Counter = Counter()
    for st in plan.subtasks if plan is not None else []:
        seen[st.code] += 1
        for k in st.keypoints:
            yield (st.code, seen[st.code], k.name), st, k


def keypoint_errors(pred: PlanData | None, target: PlanData, gt: PlanData, locate) -> dict[str, list[float]]:  # noqa: ANN001
    """Per-keypoint errors (see the module docstring), matched by subtask index and keypoint name."""
    lifted = _lifted_refs(target, locate)
    tgt = {(s.index, k.name): k for s in target.subtasks for k in s.keypoints}
    true3d = {(s.index, k.name): np.asarray(k.point) for s in gt.subtasks for k in s.keypoints}
    out: dict[str, list[float]] = {"cm": [], "step_cm": [], "gt3d_cm": [], "floor_cm": [], "px": []}
    by_step = {key: lifted[(st.index, k.name)] for key, st, k in _step_keypoints(target)
               if (st.index, k.name) in lifted}
    for key, _, k in _step_keypoints(pred):
        if key in by_step:
            out["step_cm"].append(100 * float(np.linalg.norm(np.asarray(k.point) - by_step[key])))
    for key, point in lifted.items():
        out["floor_cm"].append(100 * float(np.linalg.norm(point - true3d[key])))
    for st in pred.subtasks if pred is not None else []:
        for k in st.keypoints:
            key = (st.index, k.name)
            if key not in tgt:
                continue
            p = np.asarray(k.point)
            out["px"].append(math.hypot(k.u - tgt[key].u, k.v - tgt[key].v))
            out["gt3d_cm"].append(100 * float(np.linalg.norm(p - true3d[key])))
            if key in lifted:
                out["cm"].append(100 * float(np.linalg.norm(p - lifted[key])))
    return out


def beam_code_lines(planner, instruction: str, rgb: np.ndarray, k: int, max_new_tokens: int) -> list[list[str]]:  # noqa: ANN001
    """The code lines of the ``k`` best beam-search answers of ``planner``'s encoder-decoder checkpoint to the
    planner's own prompt (an answer that does not parse gives an empty list)."""
    import torch

    from robo_brain.backends.transformers_backend import encoder_decoder_prompt
    from robo_brain.planner import sanitize_instruction
    from robo_common.plan_language import PlanParseError, parse_model_output

    backend = planner.backend
    model, tok = getattr(backend, "model", None), getattr(backend, "tokenizer", None)
    if model is None or tok is None or not getattr(model.config, "is_encoder_decoder", False):
        raise ValueError("top_k > 1 needs the transformers back-end with an encoder-decoder checkpoint")
    h, w = rgb.shape[:2]
    prompt = encoder_decoder_prompt(planner.plan_messages(sanitize_instruction(instruction), w, h))
    prefix = tok(prompt, add_special_tokens=False)["input_ids"]
    device = getattr(backend, "device", "cpu")
    ids = torch.tensor([[model.config.decoder_start_token_id, *prefix]], device=device)
    limit = getattr(model.config.decoder, "n_positions", 0)  # as the back-end: prompt + answer fit the decoder
    max_new_tokens = max(1, min(max_new_tokens, limit - ids.shape[1])) if limit else max_new_tokens
    pixels = backend.processor(images=[rgb], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.generate(pixel_values=pixels.to(device, model.dtype), decoder_input_ids=ids, num_beams=k,
                             num_return_sequences=k, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=model.config.pad_token_id, eos_token_id=model.config.eos_token_id)
    beams = []
    for text in tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True):
        try:
            beams.append([st.call.code() for st in parse_model_output(text.strip()).steps])
        except PlanParseError:
            beams.append([])
    return beams


def run_episode(planner, scene: EvalScene, top_k: int = 1, max_new_tokens: int = 512) -> EpisodeResult:  # noqa: ANN001
    """Plan ``scene`` with ``planner`` and compare with the expert (and, with ``top_k`` > 1, whether any of
    the model's ``top_k`` beams is the expert's plan)."""
    target = scene.target
    result = planner.plan(scene.instruction, scene.rgb, scene.depth, scene.camera)
    locate = make_locator(scene.depth, scene.camera, planner.config.keypoints)
    errs = keypoint_errors(result.plan, target, scene.expert, locate)
    pred, ref = code_lines(result.plan), code_lines(target)
    heldout = any(w in line for line in ref for w in HELDOUT_WORDS)
    pred_units = skill_units(pred)
    any_order = pred == ref or (pred_units is not None and pred_units == skill_units(ref))
    at_k = (pred == ref or ref in beam_code_lines(planner, scene.instruction, scene.rgb, top_k, max_new_tokens)
            if top_k > 1 else None)
    return EpisodeResult(scene.seed, scene.family, heldout, result.ok, pred == ref, any_order, subtask_f1(pred, ref),
                         errs["cm"], errs["step_cm"],
                         errs["gt3d_cm"], errs["floor_cm"], errs["px"], float(result.timing["total"]),
                         result.raw_outputs[-1] if result.raw_outputs else "", result.reason,
                         scene.instruction, tuple(ref), at_k)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarize(episodes: list[EpisodeResult]) -> dict:
    """Aggregate metrics of a list of episodes (the keys of the module docstring)."""
    lat = [e.latency_s for e in episodes]
    at_k = [e.exact_at_k for e in episodes if e.exact_at_k is not None]
    flat = {k: [x for e in episodes for x in getattr(e, k)]
            for k in ("kp_cm", "kp_step_cm", "kp_gt3d_cm", "floor_cm", "kp_px")}
    return {
        "episodes": len(episodes),
        "plan_exact_match": float(np.mean([e.exact for e in episodes])),
        "plan_any_order_match": float(np.mean([e.any_order for e in episodes])),
        "subtask_f1": float(np.mean([e.f1 for e in episodes])),
        "keypoint_error_cm_median": _median(flat["kp_cm"]),
        "keypoint_error_cm_p90": float(np.percentile(flat["kp_cm"], 90)) if flat["kp_cm"] else None,
        "keypoint_error_same_step_cm_median": _median(flat["kp_step_cm"]),
        "keypoint_error_same_step_cm_p90": (float(np.percentile(flat["kp_step_cm"], 90))
                                            if flat["kp_step_cm"] else None),
        "keypoint_error_gt3d_cm_median": _median(flat["kp_gt3d_cm"]),
        "keypoint_lift_floor_cm_median": _median(flat["floor_cm"]),
        "keypoint_error_px_median": _median(flat["kp_px"]),
        "latency_s_p50": float(np.percentile(lat, 50)),
        "latency_s_p95": float(np.percentile(lat, 95)),
        "parse_failure_rate": float(np.mean([not e.ok for e in episodes])),
        **({"plan_exact_match_at_k": float(np.mean(at_k))} if at_k else {}),
    }


def run_episodes(cfg: EvalConfig, scenes: Iterable[EvalScene], planner=None, progress: bool = True,  # noqa: ANN001
                 total: int | None = None) -> list[EpisodeResult]:
    """Plan every scene of ``scenes`` (with ``cfg``'s threads, top-k and token limit) and compare with the expert.

    ``planner`` defaults to a :class:`~robo_brain.planner.Planner` over ``make_backend('transformers', cfg.model)``.
    """
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    planner = planner or make_planner(cfg)
    return [run_episode(planner, scene, cfg.top_k, cfg.max_new_tokens)
            for scene in tqdm(scenes, desc=f"eval brain ({cfg.split})", disable=not progress, unit="ep",
                              total=total)]


def report(cfg: EvalConfig, episodes: list[EpisodeResult], keep_outputs: int = 5) -> dict:
    """The evaluation report of ``episodes``: :func:`summarize` overall, per family and with / without a
    held-out colour, and the first ``keep_outputs`` wrong answers."""
    out = {"split": cfg.split, "model": cfg.model, "seed_offset": cfg.seed_offset,
           "snap_radius": cfg.snap_radius, "top_k": cfg.top_k, **summarize(episodes)}
    families = sorted({e.family for e in episodes})
    out["per_family"] = {f: summarize([e for e in episodes if e.family == f]) for f in families}
    out["heldout_colour"] = {str(h).lower(): summarize([e for e in episodes if e.heldout == h])
                             for h in (False, True) if any(e.heldout == h for e in episodes)}
    bad = [e for e in episodes if not e.exact][:keep_outputs]
    out["examples_wrong"] = [{"seed": e.seed, "family": e.family, "instruction": e.instruction,
                              "expected": list(e.expected), "error": e.error, "output": e.output}
                             for e in bad]
    return out


def evaluate(cfg: EvalConfig, scenes: SceneSource, planner=None, progress: bool = True,  # noqa: ANN001
             keep_outputs: int = 5) -> dict:
    """Run ``cfg.episodes`` scenes of ``scenes`` and return the metrics (with per-family and held-out-colour
    breakdowns).

    ``planner`` defaults to a :class:`~robo_brain.planner.Planner` over ``make_backend('transformers', cfg.model)``.
    ``cfg.instructions`` is the system layer's to fill (:func:`robo_system.datasets.brain.evaluate_brain`).
    """
    if cfg.instructions:
        raise ValueError("EvalConfig.instructions: the paraphrase file is filled from the simulator's tasks; "
                         "use robo_system.datasets.brain.evaluate_brain")
    seeds = range(cfg.seed_offset, cfg.seed_offset + cfg.episodes)
    episodes = run_episodes(cfg, (scenes(s, cfg.split) for s in seeds), planner, progress, total=cfg.episodes)
    return report(cfg, episodes, keep_outputs)


def make_planner(cfg: EvalConfig):  # noqa: ANN201 - Planner
    """A planner over the ``transformers`` back-end loading ``cfg.model``."""
    from robo_brain.backends import BackendConfig, GenerationSettings, make_backend
    from robo_brain.planner import Planner, PlannerConfig

    backend = make_backend(BackendConfig(backend="transformers", model_path=str(cfg.model)))
    config = PlannerConfig(parse_retries=cfg.parse_retries, snap_radius=cfg.snap_radius,
                           generation=GenerationSettings(max_new_tokens=cfg.max_new_tokens))
    return Planner(backend, config)
