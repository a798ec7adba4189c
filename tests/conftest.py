"""Test-run isolation for ROS 2: a private DDS domain and localhost-only discovery.

Set before anything imports rclpy, and inherited by every node process a test starts,
so two test runs on one machine (or a test run beside a live robot) never cross-talk.
The domain is reserved with an exclusive file lock for the whole run.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path

import pytest

_LOCK_DIR = Path(tempfile.gettempdir()) / "robo_stack_ros_domains"


def _reserve_domain() -> tuple[int, object]:
    _LOCK_DIR.mkdir(exist_ok=True)
    candidates = list(range(1, 101))
    random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).shuffle(candidates)
    for domain in candidates:
        handle = open(_LOCK_DIR / f"{domain}.lock", "w")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(f"all ROS domain ids 1..100 are locked under {_LOCK_DIR}")


ROS_DOMAIN_ID, _DOMAIN_LOCK = _reserve_domain()
os.environ["ROS_DOMAIN_ID"] = str(ROS_DOMAIN_ID)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture(scope="module")
def world():
    """A simulated cell (default config) shared by the tests of one module."""
    from robo_sim.world import SimWorld

    w = SimWorld()
    yield w
    w.close()
