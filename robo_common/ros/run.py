"""Run a node until it is shut down, the same way for every robo_stack executable."""

from __future__ import annotations

import logging
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node

LOG = logging.getLogger(__name__)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             executor: Callable[[], Executor] | None = None) -> None:
    """Init rclpy, build the node, spin it (in ``executor()`` if given) until Ctrl-C or shutdown.

    An error raised by the executor while a shutdown (SIGINT/SIGTERM) is already under way — e.g.
    a message being taken as the context closes — is part of shutting down, not a crash; any
    other error propagates.
    """
    try:
        with rclpy.init(args=args) as init:
            node = make_node()
            try:
                if executor is None:
                    rclpy.spin(node)
                else:
                    ex = executor()
                    ex.add_node(node)
                    ex.spin()
            except RuntimeError:
                if init.context.ok():
                    raise
                LOG.debug("error while shutting down", exc_info=True)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
