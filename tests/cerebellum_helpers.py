"""Shared builders of the cerebellum tests."""

from __future__ import annotations

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.executor import PlanExecutor
from robo_cerebellum.monitor import MonitorConfig
from robo_cerebellum.policy import CerebellumPolicy
from robo_cerebellum.safety import SafetyConfig


def tiny_executor() -> PlanExecutor:
    """A plan executor over a tiny untrained policy, default safety and monitor settings."""
    policy = CerebellumPolicy.from_config(CerebellumConfig(hidden_size=32, num_layers=1, head_dim=16,
                                                           visual_dim=16, image_size=32))
    return PlanExecutor(policy, SafetyConfig(), MonitorConfig())
