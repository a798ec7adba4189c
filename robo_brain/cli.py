"""``robo-stack serve brain`` and ``robo-stack brain ...``: serve a model, run brain_node, write a tiny model.

``train brain`` and ``eval brain`` need the simulator's scenes: the system layer registers them
(:mod:`robo_system.cli`) with this package's arguments (:mod:`robo_brain.embedded.cli`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` group (with ``brain``) and the ``brain`` group."""
    serve = sub.add_parser("serve", help="serve models over HTTP")
    group = serve.add_subparsers(dest="serve_command", metavar="SERVE_COMMAND", required=True)
    brain = group.add_parser("brain", help="a local brain checkpoint behind an OpenAI-compatible API")
    from robo_brain.serve import add_arguments

    add_arguments(brain)
    brain.set_defaults(func=_serve)

    cmd = sub.add_parser("brain", help="the brain (slow planner)")
    bgroup = cmd.add_subparsers(dest="brain_command", metavar="BRAIN_COMMAND", required=True)
    node = bgroup.add_parser("node", help="run brain_node (same as `ros2 run robo_stack brain_node`)")
    node.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ...")
    node.set_defaults(func=_node)
    tiny = bgroup.add_parser("make-tiny", help="write a tiny random checkpoint (smoke tests, debugging)")
    tiny.add_argument("--kind", choices=["llava", "encoder-decoder"], default="llava")
    tiny.add_argument("--out", type=Path, required=True, help="output folder")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_tiny)


def _serve(args: argparse.Namespace) -> int:
    from robo_brain.serve import run

    return run(args)


def _node(args: argparse.Namespace) -> int:
    from robo_brain.node import main

    main(["robo-stack-brain", *args.ros_args])
    return 0


def _tiny(args: argparse.Namespace) -> int:
    from robo_brain.tiny_models import make_tiny

    LOG.info("wrote %s", make_tiny(args.kind, args.out, args.seed))
    return 0
