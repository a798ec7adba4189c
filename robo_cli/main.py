"""The ``robo-stack`` command line: one entry point, subcommands contributed by each package.

Each package's ``cli`` module exposes registration functions ``register*(subparsers)``, which add
parsers and set ``func`` to a callable taking the parsed arguments and returning an exit code.
Modules are imported by name so that a package whose optional dependencies are missing does not
break the others. This package is the top layer: a package's ``cli`` imports only its own layer
and the ones below it (the shared :func:`robo_common.cli.command_group` comes from the bottom).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

LOG = logging.getLogger("robo_stack")

# Registration functions (``module:function``) that contribute subcommands, in help order. A
# package's commands may be split over several functions so that the help keeps one order across
# packages (``train brain`` before ``train cerebellum``, ``eval closed-loop`` before ``eval bag``).
REGISTRATIONS: tuple[str, ...] = (
    "robo_common.cli_check:register",
    "robo_system.cli:register_faults",
    "robo_system.cli:register_demo",
    "robo_sim.cli:register",
    "robo_brain.cli:register",
    "robo_system.cli:register_brain",
    "robo_system.cli:register_brain_lm",
    "robo_cerebellum.cli:register_train",
    "robo_system.cli:register_closed_loop",
    "robo_cerebellum.cli:register_node",
    "robo_eval.cli:register",
)


def _registration(spec: str) -> Callable[[argparse._SubParsersAction], None]:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="robo-stack",
        description="robo_stack: a hierarchical fast/slow robot control stack on ROS 2.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for spec in REGISTRATIONS:
        _registration(spec)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        LOG.warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
