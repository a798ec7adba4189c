"""Helpers for tests that start robo_stack nodes as processes and talk to them over DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.node import Node

REPO_ROOT = Path(__file__).resolve().parent.parent


class NodeProcess:
    """A node started as ``python -m MODULE --ros-args ...``; stderr/stdout go to a log file."""

    def __init__(self, module: str, params: dict[str, object] | None = None, log_dir: Path | None = None,
                 extra_args: list[str] | None = None) -> None:
        args = [sys.executable, "-m", module, "--ros-args"]
        for key, value in (params or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        args += extra_args or []
        self.log_path = (log_dir or Path("/tmp")) / f"{module.replace('.', '_')}_{os.getpid()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                     env=os.environ.copy())

    def log(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, then wait (kill after ``timeout``); returns the exit code."""
        if self.alive():
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def spin_until(node: Node, condition: Callable[[], bool], timeout: float) -> bool:
    """Spin ``node`` until ``condition()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        rclpy.spin_once(node, timeout_sec=0.02)
    return condition()
