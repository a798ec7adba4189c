"""``robo-stack train cerebellum``, ``eval closed-loop``, ``bench cerebellum``, ``cerebellum node``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from robo_common.cli import command_group
from robo_common.resources import resource_path

LOG = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = resource_path("models", "cerebellum")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the cerebellum commands."""
    train = command_group(sub, "train", "train a model").add_parser(
        "cerebellum", help="behaviour-clone the cerebellum policy from episode bags")
    train.add_argument("--data", type=Path, required=True, help="directory of rosbag2 episodes (searched recursively)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint directory (re-run to resume)")
    train.add_argument("--epochs", type=int, default=14)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    train.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (resumable); 0: no limit")
    train.add_argument("--hidden-size", type=int, default=128)
    train.add_argument("--num-layers", type=int, default=2)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)

    ev = command_group(sub, "eval", "evaluate a model").add_parser(
        "closed-loop", help="closed-loop success in the simulator, plans from a brain (oracle: the expert)")
    ev.add_argument("--brain", choices=["oracle"], default="oracle",
                    help="oracle: the scripted expert's plan (the embedded brain comes with the closed-loop issue)")
    ev.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="cerebellum checkpoint folder")
    ev.add_argument("--episodes", type=int, default=100, help="clean episodes (and per perturbation mode)")
    ev.add_argument("--split", choices=["seen", "unseen"], default="seen")
    ev.add_argument("--perturb", nargs="*", default=[], metavar="MODE",
                    help="also run this many episodes per mode: grasp_offset nudge slip wrong_keypoint")
    ev.add_argument("--seed0", type=int, default=100_000, help="first seed (training used 0..N)")
    ev.add_argument("--workers", type=int, default=2)
    ev.add_argument("--failure-threshold", type=float, default=0.6,
                    help="learned failure probability that, held 3 steps, counts as a failure")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(func=_eval)

    bench = command_group(sub, "bench", "benchmarks").add_parser(
        "cerebellum", help="per-step latency vs a KV-cache transformer, and the node's loop rate")
    bench.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    bench.add_argument("--steps", type=int, default=10_050,
                       help="steps of one episode to time (the step-10 000 window needs 10 050)")
    bench.add_argument("--node-seconds", type=float, default=20.0, help="how long to measure the node (0: skip)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=_bench)

    node = command_group(sub, "cerebellum", "the cerebellum node").add_parser(
        "node", help="run cerebellum_node (same as `ros2 run robo_stack cerebellum_node`)")
    node.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ...")
    node.set_defaults(func=_node)


def _train(args: argparse.Namespace) -> int:
    from robo_cerebellum.config import CerebellumConfig
    from robo_cerebellum.train import TrainConfig, train

    try:
        model_cfg = CerebellumConfig(hidden_size=args.hidden_size, num_layers=args.num_layers)
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                                max_minutes=args.max_minutes, seed=args.seed)
        summary = train(args.data, args.out, model_cfg, train_cfg)
    except (ValueError, FileNotFoundError) as exc:
        LOG.error("%s", exc)
        return 2
    sys.stdout.write(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2) + "\n")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from robo_cerebellum.closed_loop import ClosedLoopConfig, evaluate
    from robo_cerebellum.policy import CerebellumPolicy, CheckpointError

    try:
        CerebellumPolicy.load(args.checkpoint)
        cfg = ClosedLoopConfig(failure_threshold=args.failure_threshold)
        result = evaluate(args.checkpoint, args.episodes, args.split, args.perturb, args.seed0, args.workers, cfg)
    except (CheckpointError, ValueError) as exc:
        LOG.error("%s", exc)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for fam, rate in result["success_rate"].items():
            sys.stdout.write(f"{fam:12s} {rate:6.1%}\n")
        sys.stdout.write(f"{'overall':12s} {result['overall_success']:6.1%} ({result['episodes']} episodes)\n")
        det = result["failure_detection"]
        sys.stdout.write(f"failure detection: precision {det['precision']}, recall {det['recall']}\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from robo_cerebellum.bench import run_benchmark
    from robo_cerebellum.policy import CheckpointError

    try:
        result = run_benchmark(args.checkpoint, args.steps, args.node_seconds)
    except (CheckpointError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 2
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else _bench_text(result))
    return 0


def _bench_text(result: dict) -> str:
    lines = []
    for model, steps in result["step_ms"].items():
        cells = ", ".join(f"step {k}: p50 {v['p50']:.2f} ms p99 {v['p99']:.2f} ms" for k, v in steps.items())
        lines.append(f"{model}: {cells}; flatness {result['flatness'][model]:.2f}")
    if result.get("loop_hz") is not None:
        lines.append(f"node loop {result['loop_hz']:.1f} Hz, period p99 {result['period_p99_ms']:.2f} ms")
    return "\n".join(lines) + "\n"


def _node(args: argparse.Namespace) -> int:
    from robo_cerebellum.node import main

    main(["robo-stack-cerebellum", *args.ros_args])
    return 0
