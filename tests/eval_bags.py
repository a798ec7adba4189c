"""Shared fixtures and helpers of the rosbag-evaluation tests: tiny episode bags and a bag rewriter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from robo_common import bags

TINY_POLICY = dict(hidden_size=32, num_layers=1, head_dim=16, state_size=8, visual_dim=16, image_size=32,
                   chunk_size=16)


@pytest.fixture(scope="session")
def eval_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three simulated pick-and-place episode bags (the last one perturbed with a labelled slip)."""
    from robo_sim.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("eval_bags")
    cfg = CollectConfig(episodes=3, split="seen", seed0=40, perturb=("slip",), perturb_fraction=0.34,
                        family="pick_place", image_size=64)
    assert collect(cfg, out, workers=1, progress=False).written == 3
    found = sorted(p.parent for p in out.rglob("metadata.yaml"))
    assert len(found) == 3
    return found


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised (untrained) tiny cerebellum checkpoint."""
    from robo_cerebellum.config import CerebellumConfig
    from robo_cerebellum.policy import CerebellumPolicy

    out = tmp_path_factory.mktemp("tiny_cerebellum")
    CerebellumPolicy.from_config(CerebellumConfig(**TINY_POLICY), seed=0).save(out)
    return out


def rewrite_bag(src: Path, dst: Path, rename: dict[str, str] | None = None, frames: dict[str, str] | None = None,
                storage: str = "mcap", drop: tuple[str, ...] = (),
                edit: Callable[[str, Any], Any] | None = None) -> Path:
    """Copy a bag, renaming topics and pose frame ids, dropping topics, optionally editing messages."""
    rename, frames = rename or {}, frames or {}
    store = bags.typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(dst, version=9, storage_plugin=plugin)
    writer.open()
    conns: dict[int, Any] = {}
    with Reader(src) as reader:
        for c in reader.connections:
            if c.topic not in drop:
                conns[c.id] = writer.add_connection(rename.get(c.topic, c.topic), c.msgtype, typestore=store)
        for c, stamp, raw in reader.messages():
            if c.id not in conns:
                continue
            if frames or edit:
                msg = store.deserialize_cdr(raw, c.msgtype)
                head = getattr(msg, "header", None)
                if head is not None and head.frame_id in frames:
                    head.frame_id = frames[head.frame_id]
                if edit is not None:
                    msg = edit(c.topic, msg)
                raw = store.serialize_cdr(msg, c.msgtype)
            writer.write(conns[c.id], stamp, raw)
    writer.close()
    return dst
