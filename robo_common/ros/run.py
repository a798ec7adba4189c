"""Run a node until it is shut down, the same way for every robo_stack executable."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

LOG = logging.getLogger(__name__)


def events_executor() -> Executor:
    """rclpy's C++ events executor where this rclpy has one (Jazzy and later), else a single-threaded one.

    For nodes with high-rate subscriptions: on this machine the default executor spends ~0.5 ms of
    CPU per message in Python bookkeeping while holding the GIL (400 messages/s: 20 % of a core); the
    events executor about half of that. Spin it with :func:`spin_until_shutdown`, not ``spin()``.
    """
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:  # rclpy before Jazzy
        return SingleThreadedExecutor()
    return EventsExecutor()


def spin_until_shutdown(executor: Executor, period_s: float = 0.1) -> None:
    """``spin_once`` with a timeout until the context shuts down.

    ``EventsExecutor.spin()`` (and ``spin_once()`` without a timeout) busy-loops at 100 % CPU and runs
    no callbacks on the rclpy of this project while another Python thread exists (measured, Kilted
    wheels); a bounded wait does not.
    """
    while executor.context.ok():
        executor.spin_once(timeout_sec=period_s)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             executor: Callable[[], Executor] | None = None) -> None:
    """Init rclpy, build the node, spin it (in ``executor()`` if given) until Ctrl-C or shutdown.

    Once the node is built, everything it allocated while starting (a model, message classes) is
    moved out of the garbage collector's view (``gc.freeze``): a full collection over the ~365 000
    objects of a loaded cerebellum took ~200 ms here, holding the GIL, and would stall the control
    loop whenever the collector chose to run one; after the freeze it takes microseconds.

    An error raised by the executor while a shutdown (SIGINT/SIGTERM) is already under way — e.g.
    a message being taken as the context closes — is part of shutting down, not a crash; any
    other error propagates.
    """
    try:
        with rclpy.init(args=args) as init:
            node = make_node()
            gc.collect()
            gc.freeze()
            try:
                if executor is None:
                    rclpy.spin(node)
                else:
                    ex = executor()
                    ex.add_node(node)
                    spin_until_shutdown(ex)
            except RuntimeError:
                if init.context.ok():
                    raise
                LOG.debug("error while shutting down", exc_info=True)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
