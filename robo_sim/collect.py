"""Collect expert episodes as rosbag2 files: parallel, resumable, with a progress bar.

Each episode is written to ``OUT/.partial/<name>`` and moved to ``OUT/<name>`` only when
complete, so an interrupted run leaves no half bag behind and a re-run with the same
arguments skips the finished episodes. ``OUT/collection.json`` records the arguments;
re-running into the same directory with different ones is refused.

SIGINT and SIGTERM stop a collection the same way: the worker processes are terminated, the
episode in progress is discarded (``.partial`` removed) and every bag left in ``OUT`` is a
complete, readable one; a re-run resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robo_common.parallel import run_jobs
from robo_sim import catalog
from robo_sim.expert import ExpertConfig

LOG = logging.getLogger(__name__)
MANIFEST = "collection.json"
PARTIAL = ".partial"


@dataclass(frozen=True)
class CollectConfig:
    """What to collect.

    Attributes:
        episodes: Number of episodes.
        split: ``seen`` or ``unseen``.
        seed0: Seed of the first episode; episode ``i`` uses ``seed0 + i``.
        perturb: Perturbation modes to cycle through (empty: none).
        perturb_fraction: Fraction of episodes that are perturbed when ``perturb`` is set.
        family: Restrict to one task family (None: drawn from the seed).
        control_hz: Control rate of the expert and of the recorded state/command streams.
        camera_hz: Rate of the recorded colour/depth images (a divisor of ``control_hz``).
        image_size: Square image resolution in pixels.
        storage: ``mcap`` or ``sqlite3``.
        timeout_s: Simulated-time limit per episode.
        progress_label: The expert's progress label (:attr:`robo_sim.expert.ExpertConfig.progress_label`).
    """

    episodes: int
    split: str = "seen"
    seed0: int = 0
    perturb: tuple[str, ...] = ()
    perturb_fraction: float = 1.0
    family: str | None = None
    control_hz: float = 20.0
    camera_hz: float = 5.0
    image_size: int = 128
    storage: str = "mcap"
    timeout_s: float = 60.0
    progress_label: str = "half"

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        ExpertConfig(progress_label=self.progress_label)  # validates it
        if self.split not in ("seen", "unseen"):
            raise ValueError(f"split must be 'seen' or 'unseen', got {self.split!r}")
        bad = [m for m in self.perturb if m not in catalog.PERTURB_MODES]
        if bad:
            raise ValueError(f"unknown perturbation mode(s) {bad}; choose from {catalog.PERTURB_MODES}")
        if not 0.0 <= self.perturb_fraction <= 1.0:
            raise ValueError(f"perturb_fraction must be in [0, 1], got {self.perturb_fraction}")
        ratio = self.control_hz / self.camera_hz if self.camera_hz > 0 else 0
        if self.camera_hz <= 0 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(f"camera_hz ({self.camera_hz}) must divide control_hz ({self.control_hz})")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {self.storage!r}")

    @property
    def render_every(self) -> int:
        """Control steps between two rendered frames."""
        return int(round(self.control_hz / self.camera_hz))

    def episode_spec(self, i: int) -> tuple[int, str | None]:
        """Return ``(seed, perturbation mode or None)`` of episode ``i``."""
        seed = self.seed0 + i
        if not self.perturb:
            return seed, None
        # Spread perturbed episodes evenly: episode i is perturbed when floor((i+1)f) > floor(i f).
        perturbed = int((i + 1) * self.perturb_fraction) > int(i * self.perturb_fraction)
        if not perturbed:
            return seed, None
        index = int(i * self.perturb_fraction)
        return seed, self.perturb[index % len(self.perturb)]

    def episode_name(self, i: int) -> str:
        """Directory name of episode ``i``'s bag."""
        seed, mode = self.episode_spec(i)
        return f"ep_{self.split}_{seed:06d}" + (f"_{mode}" if mode else "")


@dataclass
class CollectSummary:
    """What a collection run did."""

    out: str
    requested: int
    written: int = 0
    skipped_existing: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    successes: int = 0


def record_one(cfg: CollectConfig, i: int, out: Path) -> dict[str, Any]:
    """Run episode ``i`` and write its bag to ``out/<name>``; returns its metadata."""
    from robo_sim.episode import run_episode
    from robo_sim.recording import EpisodeRecorder
    from robo_sim.world import SimWorld, WorldConfig

    seed, mode = cfg.episode_spec(i)
    name = cfg.episode_name(i)
    partial = out / PARTIAL / name
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    world = SimWorld(WorldConfig(control_period=1.0 / cfg.control_hz, image_width=cfg.image_size,
                                 image_height=cfg.image_size))
    recorder = EpisodeRecorder(partial, world.camera_info(), cfg.control_hz, storage=cfg.storage)
    try:
        result = run_episode(
            seed, cfg.split, family=cfg.family, perturb=mode, control_hz=cfg.control_hz,
            render_every=cfg.render_every, timeout_s=cfg.timeout_s, world=world,
            expert=ExpertConfig(progress_label=cfg.progress_label),
            on_start=lambda plan, expert: recorder.start(plan, expert, world), on_step=recorder.on_step,
        )
        meta = recorder.finish(result, {"name": name, "control_hz": cfg.control_hz, "camera_hz": cfg.camera_hz})
    except BaseException:
        recorder.abort()
        raise
    finally:
        world.close()
    final = out / name
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return meta


def _worker(args: tuple[CollectConfig, int, str]) -> tuple[int, dict[str, Any] | None, str | None]:
    cfg, i, out = args
    try:
        return i, record_one(cfg, i, Path(out)), None
    except Exception as exc:  # noqa: BLE001 - reported per episode, the run goes on
        LOG.exception("episode %d failed", i)
        return i, None, f"{type(exc).__name__}: {exc}"


def _check_manifest(cfg: CollectConfig, out: Path) -> None:
    path = out / MANIFEST
    wanted = asdict(cfg)
    wanted["perturb"] = list(cfg.perturb)
    if path.exists():
        have = json.loads(path.read_text())
        have_cfg = {"progress_label": "half",  # collections made before the option had the half label
                    **{k: v for k, v in have.get("config", {}).items() if k != "episodes"}}
        want_cfg = {k: v for k, v in wanted.items() if k != "episodes"}
        if have_cfg != want_cfg:
            raise ValueError(
                f"{out} holds a collection made with other settings ({have_cfg}); "
                f"use another --out or the same settings ({want_cfg})"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": wanted}, indent=2))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as SIGINT does, so clean-up code runs.

    (Python's default for SIGTERM ends the process at once: no ``finally``, and the worker
    processes of a pool are left running as orphans.) Does nothing outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def collect(cfg: CollectConfig, out: Path, workers: int = 2, progress: bool = True) -> CollectSummary:
    """Record ``cfg.episodes`` episodes into ``out`` (resuming), using ``workers`` processes."""
    out = Path(out)
    _check_manifest(cfg, out)
    shutil.rmtree(out / PARTIAL, ignore_errors=True)
    summary = CollectSummary(out=str(out), requested=cfg.episodes)
    todo = []
    for i in range(cfg.episodes):
        if (out / cfg.episode_name(i) / "metadata.yaml").is_file():
            summary.skipped_existing += 1
        else:
            todo.append(i)
    if summary.skipped_existing:
        LOG.info("resuming: %d of %d episodes already in %s", summary.skipped_existing, cfg.episodes, out)
    jobs = [(cfg, i, str(out)) for i in todo]
    try:
        with sigterm_as_interrupt(), contextlib.closing(
                run_jobs(_worker, jobs, workers, len(todo), "collect", progress=progress)) as results:
            for i, meta, err in results:
                if err is not None:
                    summary.failed.append({"episode": i, "name": cfg.episode_name(i), "error": err})
                    continue
                summary.written += 1
                summary.successes += int(bool(meta and meta["success"]))
    except KeyboardInterrupt:
        LOG.warning("collection interrupted: %d episodes written this run; %s holds only complete bags "
                    "(re-run to resume)", summary.written, out)
        raise
    finally:  # the pool's workers are gone (terminated and joined) when run_jobs is closed
        shutil.rmtree(out / PARTIAL, ignore_errors=True)
    return summary
