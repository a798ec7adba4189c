"""Security posture: every command that starts the stack's processes discovers on localhost only by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from robo_system import stack
from robo_system.stack import StackConfig, StackProcesses, localhost_discovery_by_default, udp_transport_by_default


def test_localhost_unless_the_environment_says_how_far() -> None:
    env: dict[str, str] = {}
    assert localhost_discovery_by_default(env) == "LOCALHOST"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    explicit = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    assert localhost_discovery_by_default(explicit) == "SUBNET"
    peers = {"ROS_STATIC_PEERS": "192.168.1.5"}
    localhost_discovery_by_default(peers)
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in peers


def test_fast_dds_over_udp_unless_the_environment_names_its_transports() -> None:
    env: dict[str, str] = {}
    assert udp_transport_by_default(env) == "UDPv4" and env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"
    assert udp_transport_by_default({"FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT"}) == "DEFAULT"


def test_stack_processes_start_their_nodes_with_localhost_discovery(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    monkeypatch.delenv("FASTDDS_BUILTIN_TRANSPORTS", raising=False)
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    started: list[dict] = []

    class FakePopen:
        pid = 1

        def __init__(self, args: list[str], **kwargs: object) -> None:
            started.append(kwargs["env"])  # type: ignore[arg-type]

    monkeypatch.setattr(stack.subprocess, "Popen", FakePopen)  # restored after the test
    procs = StackProcesses(StackConfig(brain="oracle", log_dir=tmp_path))
    procs.start()
    for log in procs._logs.values():
        log.close()
    assert len(started) == 2 and all(env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" for env in started)
    assert all(env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4" for env in started)
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"  # a client started after them matches
