"""Run a node until it is shut down, the same way for every robo_stack executable."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

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


def spin_until_shutdown(executor: Executor, stop: threading.Event | None = None, period_s: float = 0.1) -> None:
    """``spin_once`` with a timeout until the context shuts down or ``stop`` is set.

    ``EventsExecutor.spin()`` (and ``spin_once()`` without a timeout) busy-loops at 100 % CPU and runs
    no callbacks on the rclpy of this project while another Python thread exists (measured, Kilted
    wheels); a bounded wait does not.
    """
    while executor.context.ok() and not (stop is not None and stop.is_set()):
        executor.spin_once(timeout_sec=period_s)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             executor: Callable[[], Executor] | None = None) -> None:
    """Init rclpy, build the node, spin it (in ``executor()`` if given) until Ctrl-C or shutdown.

    Once the node is built, everything it allocated while starting (a model, message classes) is
    moved out of the garbage collector's view (``gc.freeze``): a full collection over the ~365 000
    objects of a loaded cerebellum took ~200 ms here, holding the GIL, and would stall the control
    loop whenever the collector chose to run one; after the freeze it takes microseconds.

    With ``executor``, SIGINT and SIGTERM only ask the spin loop to stop, which it does between two
    callbacks; then the executor, the node and rclpy shut down in that order. (rclpy's own handlers
    invalidate the context at once: a callback running at that moment, e.g. the simulator's 200 Hz
    state publisher, fails to publish, and the events executor logs that as a fatal callback error.)
    An error raised by the executor while a shutdown is already under way is part of shutting down,
    not a crash; any other error propagates.
    """
    stop = threading.Event()
    options = {}
    if executor is not None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        options["signal_handler_options"] = SignalHandlerOptions.NO
    try:
        with rclpy.init(args=args, **options) as init:
            node = make_node()
            gc.collect()
            gc.freeze()
            ex = executor() if executor is not None else None
            try:
                if ex is None:
                    rclpy.spin(node)
                else:
                    ex.add_node(node)
                    spin_until_shutdown(ex, stop)
            except RuntimeError:
                if init.context.ok() and not stop.is_set():
                    raise
                LOG.debug("error while shutting down", exc_info=True)
            finally:
                if ex is not None:
                    ex.shutdown()  # no callback may run into a destroyed node (a closed simulator)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
