"""The ``robo-stack`` command line: one entry point, subcommands contributed by each package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Modules are
imported lazily by name so that ``robo-stack --help`` stays fast and a package whose
optional dependencies are missing does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

LOG = logging.getLogger("robo_stack")

# Modules that contribute subcommands, in help order.
SUBCOMMAND_MODULES: tuple[str, ...] = ("robo_common.cli_check", "robo_sim.cli", "robo_brain.cli", "robo_cerebellum.cli",
                                     "robo_eval.cli")


_GROUPS: dict[tuple[int, str], argparse._SubParsersAction] = {}


def command_group(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """Return the sub-command group ``name`` (e.g. ``train``), creating it on first use.

    Several packages add commands to one group (``train cerebellum``, ``train brain``).
    """
    key = (id(sub), name)
    if key not in _GROUPS:
        parser = sub.add_parser(name, help=help_text)
        _GROUPS[key] = parser.add_subparsers(dest=f"{name}_command", metavar="WHAT", required=True)
    return _GROUPS[key]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="robo-stack",
        description="robo_stack: a hierarchical fast/slow robot control stack on ROS 2.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
