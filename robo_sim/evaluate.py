"""Parallel evaluation of the scripted expert (optionally perturbed) over many seeded episodes."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict

from robo_common.parallel import run_jobs
from robo_common.vocabulary import check_split
from robo_sim.episode import EpisodeResult, run_many
from robo_sim.tasks import FAMILIES

logger = logging.getLogger(__name__)


def _worker(job: tuple[str, str, list[int], str | None]) -> list[dict]:
    family, split, seeds, perturb = job
    return [_summary(r) for r in run_many(seeds, split, family, perturb)]


def _summary(r: EpisodeResult) -> dict:
    return {
        "seed": r.seed,
        "family": r.family,
        "success": r.success,
        "n_steps": r.n_steps,
        "wall_time": r.wall_time,
        "failures": [(f.kind, f.step) for f in r.failures],
        "perturbation": (r.perturbation.kind, r.perturbation.step) if r.perturbation else None,
        "instruction": r.instruction,
    }


def _jobs(
    episodes: int, split: str, families: tuple[str, ...], seed0: int, perturb: str | None, chunk: int
) -> list[tuple[str, str, list[int], str | None]]:
    per = [episodes // len(families) + (i < episodes % len(families)) for i in range(len(families))]
    jobs = []
    for fam, n in zip(families, per, strict=True):
        seeds = list(range(seed0, seed0 + n))
        jobs += [(fam, split, seeds[i : i + chunk], perturb) for i in range(0, n, chunk)]
    return jobs


def evaluate_expert(
    episodes: int,
    split: str,
    families: list[str] | tuple[str, ...] | None = None,
    seed0: int = 0,
    workers: int = 2,
    perturb: str | None = None,
    chunk: int = 10,
    progress: bool = True,
) -> dict:
    """Run ``episodes`` expert episodes spread evenly over ``families`` and report success rates.

    Returns:
        ``{"episodes", "split", "perturb", "success_rate": {family: rate}, "overall_success",
        "failure_kinds": {kind: count}, "failed_seeds": {family: [seeds]}, "wall_time_s",
        "sec_per_episode"}``.
    """
    check_split(split)
    fams = tuple(families or FAMILIES)
    bad = [f for f in fams if f not in FAMILIES]
    if bad or episodes < 1 or workers < 1:
        raise ValueError(
            f"bad arguments: families {bad} (known {FAMILIES}), episodes={episodes}, workers={workers}"
        )
    t0 = time.perf_counter()
    jobs = _jobs(episodes, split, fams, seed0, perturb, chunk)
    rows = [row for part in run_jobs(_worker, jobs, workers, episodes, f"eval expert {split}", size=len,
                                     progress=progress) for row in part]
    return _report(rows, split, perturb, time.perf_counter() - t0)


def _report(rows: list[dict], split: str, perturb: str | None, wall: float) -> dict:
    by_fam: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_fam[r["family"]].append(r)
    kinds = Counter(k for r in rows for k, _ in r["failures"])
    return {
        "episodes": len(rows),
        "split": split,
        "perturb": perturb,
        "success_rate": {f: sum(r["success"] for r in rs) / len(rs) for f, rs in by_fam.items()},
        "overall_success": sum(r["success"] for r in rows) / max(1, len(rows)),
        "failure_kinds": dict(kinds),
        "failed_seeds": {f: [r["seed"] for r in rs if not r["success"]] for f, rs in by_fam.items()},
        "wall_time_s": wall,
        "sec_per_episode": sum(r["wall_time"] for r in rows) / max(1, len(rows)),
    }
