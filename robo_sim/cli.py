"""``robo-stack sim ...``: collect expert episodes as rosbags, evaluate the expert, run the bridge node."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sim`` command group."""
    sim = sub.add_parser("sim", help="the simulated Franka Panda cell (pybullet)")
    group = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)

    col = group.add_parser("collect", help="record expert episodes as rosbag2 (one bag per episode)")
    col.add_argument("--episodes", type=int, required=True, help="number of episodes")
    col.add_argument("--split", choices=["seen", "unseen"], default="seen")
    col.add_argument("--out", type=Path, required=True, help="output directory (re-run to resume)")
    col.add_argument("--perturb", nargs="*", default=[], metavar="MODE",
                     help="perturbation modes to cycle through: grasp_offset nudge slip wrong_keypoint")
    col.add_argument("--perturb-fraction", type=float, default=1.0,
                     help="fraction of episodes perturbed when --perturb is given (default 1.0)")
    col.add_argument("--family", default=None, help="only this task family (default: drawn from the seed)")
    col.add_argument("--seed0", type=int, default=0, help="seed of the first episode")
    col.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    col.add_argument("--control-hz", type=float, default=20.0, help="control/state rate recorded (Hz)")
    col.add_argument("--camera-hz", type=float, default=5.0, help="image rate recorded (Hz)")
    col.add_argument("--image-size", type=int, default=128, help="square image size (pixels)")
    col.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    col.add_argument("--progress-label", choices=["half", "full"], default="half",
                     help="the expert's progress label of a segment without a hold (a subtask's last lift or "
                          "retreat): half its share, as every shipped checkpoint was trained on, or full (reaches "
                          "1.0 as the commanded pose arrives; tried at 200 Hz: models/cerebellum_200hz/README.md)")
    col.set_defaults(func=_collect)

    ev = group.add_parser("eval", help="success rate of a policy per task family")
    ev.add_argument("--policy", choices=["expert"], default="expert",
                    help="expert: the scripted expert (learned policies: robo-stack eval closed-loop)")
    ev.add_argument("--episodes", type=int, default=100, help="episodes, spread evenly over the families")
    ev.add_argument("--split", choices=["seen", "unseen"], default="seen")
    ev.add_argument("--family", action="append", default=None, help="restrict to these families (repeatable)")
    ev.add_argument("--perturb", default=None, help="perturbation mode applied to every episode")
    ev.add_argument("--seed0", type=int, default=0)
    ev.add_argument("--workers", type=int, default=2)
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=_eval)

    node = group.add_parser("node", help="run sim_node (same as `ros2 run robo_stack sim_node`)")
    node.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ...")
    node.set_defaults(func=_node)


def _collect(args: argparse.Namespace) -> int:
    from robo_sim.collect import CollectConfig, collect

    try:
        cfg = CollectConfig(
            episodes=args.episodes, split=args.split, seed0=args.seed0, perturb=tuple(args.perturb),
            perturb_fraction=args.perturb_fraction, family=args.family, control_hz=args.control_hz,
            camera_hz=args.camera_hz, image_size=args.image_size, storage=args.storage,
            progress_label=args.progress_label,
        )
        summary = collect(cfg, args.out, workers=args.workers)
    except ValueError as exc:
        LOG.error("%s", exc)
        return 2
    LOG.info("collected into %s: %d written, %d already there, %d failed; expert success %d/%d",
             summary.out, summary.written, summary.skipped_existing, len(summary.failed), summary.successes,
             summary.written)
    for fail in summary.failed:
        LOG.error("episode %s failed: %s", fail["name"], fail["error"])
    return 1 if summary.failed else 0


def _eval(args: argparse.Namespace) -> int:
    from robo_sim.evaluate import evaluate_expert

    try:
        result = evaluate_expert(args.episodes, args.split, families=args.family, seed0=args.seed0,
                                 workers=args.workers, perturb=args.perturb)
    except ValueError as exc:
        LOG.error("%s", exc)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for fam, rate in sorted(result["success_rate"].items()):
            sys.stdout.write(f"{fam:12s} {rate:6.1%}\n")
        sys.stdout.write(f"{'overall':12s} {result['overall_success']:6.1%} ({result['episodes']} episodes)\n")
    return 0


def _node(args: argparse.Namespace) -> int:
    from robo_sim.node import main

    main(["robo-stack-sim", *args.ros_args])
    return 0
