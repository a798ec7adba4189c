"""``robo-stack train cerebellum`` and ``robo-stack cerebellum node``.

The closed-loop evaluations (``eval closed-loop``, ``eval correction``) and ``bench cerebellum``
need the simulator: they are the system layer's commands (:mod:`robo_system.cli`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from robo_common.cli import command_group

LOG = logging.getLogger(__name__)


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``train cerebellum``."""
    train = command_group(sub, "train", "train a model").add_parser(
        "cerebellum", help="behaviour-clone the cerebellum policy from episode bags")
    train.add_argument("--data", type=Path, required=True, help="directory of rosbag2 episodes (searched recursively)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint directory (re-run to resume)")
    train.add_argument("--epochs", type=int, default=14)
    train.add_argument("--batch-size", type=int, default=4, help="episodes per batch")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    train.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (resumable); 0: no limit")
    train.add_argument("--hidden-size", type=int, default=128)
    train.add_argument("--num-layers", type=int, default=2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--drift-noise", type=float, default=0.01,
                       help="std (m) of the slowly wandering offset added to the observed position (0: off)")
    train.add_argument("--gripper-weight", type=float, default=2.0, help="weight of the gripper loss term")
    train.add_argument("--rotation-weight", type=float, default=1.0,
                       help="weight of the rotation loss term (angle + angle^2 / 0.02 rad per step)")
    train.add_argument("--target-lead", type=float, default=0.0, metavar="S",
                       help="learn to command the demonstration's target this long (s) ahead of the step seen (0.05 "
                            "for 200 Hz recordings: the lead of a 20 Hz command); 0: the same step's")
    train.add_argument("--state-delay", type=float, default=0.0, metavar="S",
                       help="train on robot states that each arrive up to this long (s) late, the newest arrived "
                            "seen (DDS's state age and jitter; models/cerebellum_200hz used 0.015); 0: off")
    train.add_argument("--width-drift", type=float, default=0.0, metavar="W",
                       help="std of a slowly wandering offset added to the observed finger width (0-1) in the drift "
                            "episodes, so the policy cannot copy the width it sees into its gripper command "
                            "(0.15 for 200 Hz recordings); 0: off")
    train.add_argument("--progress-lead", action="store_true",
                       help="label progress at the commanded target (--target-lead ahead, as the pose): a subtask's "
                            "end then spans the lead, not one step")
    train.add_argument("--progress-done", type=float, default=0.95, metavar="P",
                       help="progress head value that ends a subtask at run time (kept in the checkpoint's config; "
                            "models/cerebellum_200hz uses 0.85, chosen on training seeds: at 200 Hz the head peaks "
                            "at 0.92-0.93 at a subtask's end)")
    train.add_argument("--time-input", action="store_true",
                       help="also feed the time spent in the subtask (off: the policy acts on state, not a clock)")
    train.set_defaults(func=_train)


def register_node(sub: argparse._SubParsersAction) -> None:
    """Add ``cerebellum node``."""
    node = command_group(sub, "cerebellum", "the cerebellum node").add_parser(
        "node", help="run cerebellum_node (same as `ros2 run robo_stack cerebellum_node`)")
    node.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ...")
    node.set_defaults(func=_node)


def _train(args: argparse.Namespace) -> int:
    from robo_cerebellum.config import CerebellumConfig
    from robo_cerebellum.train import TrainConfig, train

    try:
        model_cfg = CerebellumConfig(hidden_size=args.hidden_size, num_layers=args.num_layers,
                                     time_input=args.time_input, target_lead_s=args.target_lead,
                                     progress_done=args.progress_done)
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                                max_minutes=args.max_minutes, seed=args.seed, drift_noise_m=args.drift_noise,
                                gripper_weight=args.gripper_weight, rotation_weight=args.rotation_weight,
                                state_delay_s=args.state_delay, width_drift=args.width_drift,
                                progress_lead=args.progress_lead)
        summary = train(args.data, args.out, model_cfg, train_cfg)
    except (ValueError, FileNotFoundError) as exc:
        LOG.error("%s", exc)
        return 2
    sys.stdout.write(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2) + "\n")
    return 0


def _node(args: argparse.Namespace) -> int:
    from robo_cerebellum.node import main

    main(["robo-stack-cerebellum", *args.ros_args])
    return 0
