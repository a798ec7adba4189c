"""Offline replay: score a model on bags, deterministic and faster than real time, without DDS.

Each bag is read with ``rosbags``, aligned on its command clock and fed to the model in timestamp
order; one bad bag (missing, empty, truncated, corrupt, missing topic, unknown type) is reported
with its error and skipped, never aborting the others. ``realtime_factor`` is the recorded
duration of the scored bags over the wall time spent on them (reading, decoding and the model).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from robo_common import constants as C
from robo_eval.bagread import BagError, TopicMap, find_bags, read_recording
from robo_eval.brain import BrainModel, BrainScore, aggregate_brain
from robo_eval.episode import CEREBELLUM_TOPICS, OPTIONAL_TOPICS, build_episode
from robo_eval.metrics import EpisodeScore, aggregate, score_episode
from robo_eval.models import StepModel

LOG = logging.getLogger(__name__)

BRAIN_TOPICS = (C.TOPIC_COLOR_IMAGE, C.TOPIC_DEPTH_IMAGE, C.TOPIC_EE_TARGET, C.TOPIC_EE_POSE)
"""Topics the brain replay needs (the command clock and the first camera frame)."""


@dataclass
class EvalResult:
    """Scores of the bags that could be scored and the errors of those that could not."""

    model: str
    scores: list[EpisodeScore] = field(default_factory=list)
    brain_scores: list[BrainScore] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """The aggregate report (JSON-ready)."""
        agg = aggregate_brain(self.brain_scores) if self.brain_scores else aggregate(self.scores)
        per_bag = [s.summary() for s in (self.brain_scores or self.scores)]
        return {"model": self.model, **agg, "bags_failed": len(self.failed), "failed": self.failed,
                "per_bag": per_bag}


def score_bag(path: Path, model: StepModel | BrainModel,
              topic_map: TopicMap | None = None) -> EpisodeScore | BrainScore:
    """Read, align and score one bag.

    Raises:
        BagError: the bag cannot be scored (the message says why).
    """
    t0 = time.perf_counter()
    is_brain = isinstance(model, BrainModel)
    required = BRAIN_TOPICS if is_brain else CEREBELLUM_TOPICS
    rec = read_recording(path, [*CEREBELLUM_TOPICS, *OPTIONAL_TOPICS], required=required, topic_map=topic_map)
    ep = build_episode(rec, need_status=not is_brain)
    if is_brain:
        score = model.run(ep)
        score.wall_s = time.perf_counter() - t0
        return score
    pred = model.run(ep)
    return score_episode(ep, pred, time.perf_counter() - t0)


def evaluate_bags(paths: list[str | Path], model: StepModel | BrainModel, topic_map: TopicMap | None = None,
                  progress: bool = True) -> EvalResult:
    """Score every bag under ``paths`` (see :func:`~robo_eval.bagread.find_bags`), with a progress bar."""
    result = EvalResult(model.name)
    bags = find_bags(paths)
    for path in tqdm(bags, desc=f"eval {model.name}", unit="bag", disable=not progress):
        try:
            score = score_bag(path, model, topic_map)
        except BagError as exc:
            LOG.error("skipping bag: %s", exc)
            result.failed.append({"bag": str(path), "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one bad bag never aborts the others
            LOG.exception("skipping bag %s: the model failed on it", path)
            result.failed.append({"bag": str(path), "error": f"{path}: {type(exc).__name__}: {exc}"})
            continue
        (result.brain_scores if isinstance(score, BrainScore) else result.scores).append(score)
    return result
