"""Arguments and entry points of ``robo-stack train brain`` and ``robo-stack eval brain``.

The commands are registered by the system layer (:mod:`robo_system.cli`), which passes in the
simulator's examples and scenes; this module never imports the simulator.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from robo_brain.embedded.dataset import DEFAULT_RENDER_WORKERS, EVAL_SEED_OFFSET

if TYPE_CHECKING:
    from robo_brain.embedded.train import ExampleSource

LOG = logging.getLogger(__name__)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``train brain`` (defaults are :class:`~robo_brain.embedded.train.TrainConfig`'s)."""
    p.add_argument("--out", required=True, help="checkpoint folder (resumed when it holds trainer_state.pt)")
    p.add_argument("--cache", default="data/brain_embedded/cache", help="example cache (rendered on demand)")
    p.add_argument("--examples", type=int, default=14000, help="seen-split seeds 0..N-1 (validation included)")
    p.add_argument("--val-every", type=int, default=101,
                   help="hold out every K-th seed for validation (not a multiple of the 4 families)")
    p.add_argument("--epochs", type=float, default=1.2)
    p.add_argument("--max-steps", type=int, default=2600, help="cap on optimizer steps (0: from --epochs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=60)
    p.add_argument("--rename-prob", type=float, default=0.25,
                   help="share of examples naming one object by a stand-in colour word (copying)")
    p.add_argument("--paraphrase-prob", type=float, default=0.0,
                   help="share of examples whose instruction is re-said with a training-only template")
    p.add_argument("--hue-prob", type=float, default=0.0,
                   help="share of examples whose image hues are rotated and colour words renamed to match")
    p.add_argument("--noise-prob", type=float, default=0.0,
                   help="share of examples whose instruction's phrasing words are replaced, dropped or padded "
                        "with nonce words")
    p.add_argument("--kind-mask-prob", type=float, default=0.0,
                   help="share of examples whose instruction says 'container' for 'bowl' / 'tray' (the kind is "
                        "read from the image)")
    p.add_argument("--task-verbs", action="store_true",
                   help="keep the task verbs (sort, stack, push) out of the word noise, like the content words")
    p.add_argument("--scene-listing", action="store_true",
                   help="keep the scene listing in the targets' reasoning line (default: family and step count only)")
    p.add_argument("--coord-sigma", type=float, default=1.0,
                   help="soft-label width (px) of the coordinate-token loss (0: hard labels)")
    p.add_argument("--ground-weight", type=float, default=0.5,
                   help="weight of the cross-attention grounding loss at keypoints (0: off)")
    p.add_argument("--ground-sigma", type=float, default=6.0, help="its target width around the keypoint (px)")
    p.add_argument("--eval-interval", type=int, default=150, help="steps between validation + checkpoint")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (resumable) after this wall time")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--render-workers", type=int, default=DEFAULT_RENDER_WORKERS,
                   help="processes rendering missing cache examples (default: CPU cores, at most 4)")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="", help="start from this checkpoint's weights (continued training)")
    p.add_argument("--export", default="", help="also write the final checkpoint (no trainer state) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``eval brain``."""
    p.add_argument("--model", default="models/brain_embedded", help="checkpoint folder (transformers back-end)")
    p.add_argument("--split", choices=["seen", "unseen"], default="unseen")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed-offset", type=int, default=EVAL_SEED_OFFSET, help="first seed (disjoint from training)")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--snap-radius", type=int, default=0,
                   help="snap grasp pixels onto the nearest object's top face within this radius (0: off)")
    p.add_argument("--top-k", type=int, default=1,
                   help="also decode this many beams per scene and report plan_exact_match_at_k (diagnostic)")
    p.add_argument("--instructions", default="", metavar="FILE",
                   help="a JSONL file of paraphrase templates (tests/data/paraphrases.md): each entry is filled "
                        "from and planned on scene(s) of its family from --seed-offset on, scored like the "
                        "templated evaluation (--episodes is not used)")
    p.add_argument("--per-instruction", type=int, default=1,
                   help="with --instructions: scenes each entry is planned on")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace, source: ExampleSource) -> int:
    """Build the :class:`TrainConfig` from ``args`` and train on ``source``'s examples."""
    from robo_brain.embedded.train import TrainConfig, train

    cfg = TrainConfig(out=args.out, cache=args.cache, examples=args.examples, val_every=args.val_every,
                      epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                      warmup_steps=args.warmup_steps, rename_prob=args.rename_prob,
                      paraphrase_prob=args.paraphrase_prob, hue_prob=args.hue_prob, noise_prob=args.noise_prob,
                      scene_listing=args.scene_listing, task_verbs=args.task_verbs,
                      kind_mask_prob=args.kind_mask_prob,
                      coord_sigma=args.coord_sigma, ground_weight=args.ground_weight,
                      ground_sigma=args.ground_sigma, eval_interval=args.eval_interval,
                      max_minutes=args.max_minutes, threads=args.threads,
                      render_workers=args.render_workers, bf16=not args.no_bf16, seed=args.seed,
                      export=args.export, init=args.init)
    out = train(cfg, source, progress=not args.no_progress)
    print(f"checkpoint: {out}")
    return 0


def run_eval(args: argparse.Namespace, evaluate: Callable[..., dict]) -> int:
    """Evaluate with ``evaluate(cfg, progress=...)`` (the system layer's, on rendered scenes) and print the
    report (JSON with ``--json``, else the headline metrics)."""
    from robo_brain.embedded.evaluate import EvalConfig

    cfg = EvalConfig(model=args.model, split=args.split, episodes=args.episodes, seed_offset=args.seed_offset,
                     max_new_tokens=args.max_new_tokens, threads=args.threads,
                     snap_radius=args.snap_radius, top_k=args.top_k, instructions=args.instructions,
                     scenes_per_instruction=args.per_instruction)
    report = evaluate(cfg, progress=not args.no_progress)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if not isinstance(value, dict | list):
            print(f"{key:32s} {value}")
    rows = {**report["per_family"], **report.get("per_variant", {})}
    for fam, row in rows.items():
        print(f"{fam:16s} exact {row['plan_exact_match']:.3f}  f1 {row['subtask_f1']:.3f}  "
              f"kp_cm {row['keypoint_error_cm_median']}  n {row['episodes']}")
    base = report.get("templated_same_scenes")
    if base:
        fams = "  ".join(f"{f} {r['plan_exact_match']:.3f}" for f, r in {**base["per_family"],
                                                                         **base["per_variant"]}.items())
        print(f"{'templated, same scenes':24s} exact {base['plan_exact_match']:.3f}  ({fams})")
    return 0
