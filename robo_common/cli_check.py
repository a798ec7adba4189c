"""``robo-stack check ros``: prove that the ROS 2 set-up works end to end."""

from __future__ import annotations

import argparse
import logging
import time

from robo_common.cli import command_group

LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand."""
    parser = command_group(sub, "check", "check the installation and the stack").add_parser(
        "ros", help="a Plan round-trips between two processes over DDS")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the other process")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from robo_common.ros.roundtrip import run_roundtrip_check

    start = time.monotonic()
    try:
        plan = run_roundtrip_check(args.timeout)
    except RuntimeError as exc:
        LOG.error("ROS 2 check failed: %s", exc)
        return 1
    n_kp = sum(len(s.keypoints) for s in plan.subtasks)
    LOG.info(
        "ROS 2 check passed: a Plan with %d subtasks and %d keypoints round-tripped between two processes in %.1f s",
        len(plan.subtasks), n_kp, time.monotonic() - start,
    )
    return 0
