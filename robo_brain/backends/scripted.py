"""``scripted`` back-end: replays model answers from a text file (offline runs, debugging, demos).

The file holds one or more answers in the model output format of
:mod:`robo_common.plan_language`, separated by lines that hold only ``---``. Each call of
:meth:`ScriptedBackend.generate` returns the next answer; the last one repeats. It lets the
rest of the stack (keypoints, plan messages, the cerebellum, corrections) run without a model;
the answers still go through the same parser and keypoint checks as a model's.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from robo_brain.backends import BackendError, BrainBackend, Cancelled, GenerationSettings, check_messages

logger = logging.getLogger(__name__)

SEPARATOR = "---"
MAX_FILE_BYTES = 1_000_000


def read_answers(path: str | Path) -> list[str]:
    """Answers of a scripted file, split at ``---`` lines.

    Raises:
        BackendError: missing, oversized or empty file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise BackendError(f"scripted back-end: no answers file {str(p)!r}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise BackendError(f"scripted back-end: {p} is over {MAX_FILE_BYTES} bytes")
    answers, current = [], []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip() == SEPARATOR:
            answers.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    answers.append("\n".join(current).strip())
    answers = [a for a in answers if a]
    if not answers:
        raise BackendError(f"scripted back-end: {p} holds no answers")
    return answers


class ScriptedBackend(BrainBackend):
    """Returns the answers of a file in turn (the last repeats)."""

    def __init__(self, path: str | Path) -> None:
        """Read the answers file (see the module docstring)."""
        self.answers = read_answers(path)
        self.name = f"scripted:{Path(path).name}"
        self.calls = 0
        self._lock = threading.Lock()

    def generate(self, messages: list[dict], image: np.ndarray | None = None,
                 settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> str:
        """Return the next scripted answer; see :class:`BrainBackend`."""
        check_messages(messages)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        with self._lock:
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
        return answer
