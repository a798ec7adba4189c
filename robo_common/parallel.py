"""Run jobs in worker processes (or inline) with one progress bar: collection and evaluations."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

R = TypeVar("R")


def run_jobs(fn: Callable[[Any], R], jobs: Iterable[Any], workers: int, total: int, desc: str,
             unit: str = "ep", size: Callable[[R], int] = lambda _: 1, progress: bool = True) -> Iterator[R]:
    """Yield ``fn(job)`` for every job as results arrive (any order), advancing a progress bar.

    ``workers > 1`` uses a spawn pool of that many processes (``fn`` and the jobs must pickle);
    ``size(result)`` is how many units of ``total`` one result counts for.
    """
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1:
            results: Iterable[R] = (fn(job) for job in jobs)
            for result in results:
                bar.update(size(result))
                yield result
            return
        with mp.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(fn, jobs):
                bar.update(size(result))
                yield result
