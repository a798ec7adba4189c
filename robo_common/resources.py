"""Find files shipped with the package (models, config) in a source checkout or a ROS install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from robo_common.constants import PACKAGE_NAME

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def resource_path(*parts: str) -> Path:
    """Return ``<root>/<parts...>`` for the first root that has it.

    Roots, in order: the source checkout (editable/pip install), then ``share/robo_stack`` of every
    prefix in ``AMENT_PREFIX_PATH`` (a colcon install), then of this interpreter's prefix. When
    none has it, the source-checkout path is returned (callers report it as missing).
    """
    candidates = [SOURCE_ROOT.joinpath(*parts)]
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            candidates.append(Path(prefix, "share", PACKAGE_NAME, *parts))
    for cand in candidates:
        if cand.exists():
            return cand
    return candidates[0]
