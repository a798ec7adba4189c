"""Helpers for the ``cli`` modules that contribute ``robo-stack`` subcommands.

Each package's ``cli.py`` exposes registration functions taking the top-level subparsers; the
``robo-stack`` entry point itself (:mod:`robo_cli.main`) sits above every package and lists them.
"""

from __future__ import annotations

import argparse

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
