"""The task vocabulary the simulator, the brain and the evaluations share: object colours and data splits.

The ``seen`` split (training) never uses the held-out colours for blocks or containers; the
``unseen`` split (evaluation) adds them. The brain's training augments colour words with these
lists, the simulator builds its scenes from them.
"""

from __future__ import annotations

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.90, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "orange": (1.00, 0.50, 0.05, 1.0),
    "purple": (0.55, 0.15, 0.75, 1.0),
    "pink": (1.00, 0.45, 0.70, 1.0),
    "cyan": (0.10, 0.80, 0.85, 1.0),
    "white": (0.92, 0.92, 0.92, 1.0),
}
"""RGBA of every object colour."""

SPLITS = ("seen", "unseen")
"""Data splits: ``seen`` (training) and ``unseen`` (held-out colours, templates and scene sizes)."""

SEEN_BLOCK_COLORS = ("red", "green", "blue", "yellow", "orange", "pink")
HELDOUT_BLOCK_COLORS = ("purple", "cyan")
"""Block colours never used for blocks in the ``seen`` split."""
SEEN_CONTAINER_COLORS = ("red", "green", "blue", "yellow", "white", "pink")
HELDOUT_CONTAINER_COLORS = ("orange", "purple")
"""Container colours never used for containers in the ``seen`` split."""


def check_split(split: str) -> None:
    """Raise ValueError unless ``split`` is ``seen`` or ``unseen``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
