"""Training examples of the embedded brain: format, targets and the on-disk cache (resumable).

One example is the camera image at the initial state of a task (before the robot moves), the
instruction, the decoder prompt and the target text::

    Reasoning: red block, white tray, blue bowl; pick place, 2 steps.
    Plan:
    pick(object="red block") @ grasp=(61, 88)
    place(target="blue bowl") @ place=(30, 40)
    done()

The examples are rendered from the simulator by the system layer
(:mod:`robo_system.datasets.brain`, which knows the simulator; this module does not). The plan is
:func:`robo_sim.expert.expert_plan`'s, formatted with
:func:`robo_common.plan_language.format_plan_text`, so :func:`~robo_common.plan_language.parse_model_output`
reads it back. The cached reasoning line first lists every object of the scene by name, from left
to right as the camera sees it (:func:`robo_sim.scene.left_to_right`), so a model could name what it
sees (which blocks of a colour, their sizes, bowl or tray) before it plans; training drops that
listing unless asked (``robo-stack train brain --scene-listing``): measured, it did not help the
small model (see ``models/brain_embedded/README.md``). Multi-block plans (rearrange) take their
blocks in that left-to-right order. Keypoint pixels are the expert's, except ``grasp``: the pixel of the object's
**top-face centre** (a flat, visible face, so lifting the pixel with the depth image lands on the
object rather than on its front edge or the table behind it).

Cache layout: ``<dir>/<split>_v<CACHE_FORMAT>/<seed>.npz`` with ``rgb`` (uint8 HxWx3) and ``meta`` (JSON text).
Existing files are skipped, so an interrupted generation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robo_brain.backends.transformers_backend import encoder_decoder_prompt
from robo_common.plan_language import format_plan_text
from robo_common.plan_types import KeypointData, PlanData, SubtaskData

logger = logging.getLogger(__name__)

FAMILIES = ("pick_place", "stack", "rearrange", "push")
CACHE_FORMAT = 3
"""Version of the cached examples (2: scene listing, left-to-right rearrange order; 3: round bowls,
:data:`robo_sim.catalog.ROUND_CONTAINERS`); a new version renders into a new folder, so a stale
cache is never read."""
EVAL_SEED_OFFSET = 1_000_000
"""Evaluation seeds start here; training seeds are ``0 .. N-1``, so the two never overlap."""


@dataclass(frozen=True)
class Example:
    """One training / evaluation example.

    Attributes:
        seed: Task seed.
        split: ``seen`` or ``unseen``.
        family: Task family.
        instruction: The task's instruction.
        prompt: Decoder prefix (:func:`encoder_decoder_prompt` of the planner's messages).
        target: Model output to learn (reasoning, plan lines with keypoint pixels).
    """

    seed: int
    split: str
    family: str
    instruction: str
    prompt: str
    target: str


def family_for_seed(seed: int) -> str:
    """Families cycle with the seed, so any seed range is balanced across them."""
    return FAMILIES[seed % len(FAMILIES)]


def short_reasoning(family: str, n_steps: int, scene: Sequence[str] = ()) -> str:
    """The short reasoning line of the target text: the ``scene`` object names (left to right), then
    the family and the number of steps (few tokens: it is generated on every plan)."""
    listing = f"{', '.join(scene)}; " if scene else ""
    return f"{listing}{family.replace('_', ' ')}, {n_steps} steps."


def plan_prompt(instruction: str, width: int, height: int) -> str:
    """The decoder prompt the planner builds for ``instruction`` (same function as the back-end)."""
    from robo_brain.planner import Planner, sanitize_instruction

    messages = Planner(None).plan_messages(sanitize_instruction(instruction), width, height)  # type: ignore[arg-type]
    return encoder_decoder_prompt(messages)


def strip_scene_listing(target: str) -> str:
    """``target`` without the scene listing of its reasoning line (the format before cache format 2)."""
    head, sep, rest = target.partition("\n")
    if head.startswith("Reasoning: ") and "; " in head:
        head = "Reasoning: " + head.split("; ", 1)[1]
    return head + sep + rest


def target_text(plan: PlanData, family: str, scene: Sequence[str] = ()) -> str:
    """Model output of ``plan``: short reasoning (listing ``scene``), ``Plan:``, one line per subtask
    with integer pixels."""
    rounded = [SubtaskData(s.index, s.code, s.skill,
                           [KeypointData(k.name, k.point, float(round(k.u)), float(round(k.v)), k.confidence)
                            for k in s.keypoints]) for s in plan.subtasks]
    n_steps = sum(s.skill != "done" for s in plan.subtasks)
    rounded_plan = PlanData(plan.plan_id, 0, plan.instruction, "", rounded, frame_id=plan.frame_id)
    return format_plan_text(rounded_plan, reasoning=short_reasoning(family, n_steps, scene))


def example_path(cache: Path, split: str, seed: int) -> Path:
    """Cache file of one example."""
    return Path(cache) / f"{split}_v{CACHE_FORMAT}" / f"{seed:07d}.npz"


def save_example(path: Path, ex: Example, rgb: np.ndarray) -> None:
    """Write one example atomically (a partial file is never left under the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, rgb=rgb, meta=np.array(json.dumps(asdict(ex))))
    tmp.replace(path)


def load_example(path: Path) -> tuple[Example, np.ndarray]:
    """Read one cached example: ``(Example, rgb)``."""
    with np.load(path) as data:
        return Example(**json.loads(str(data["meta"]))), data["rgb"]


DEFAULT_RENDER_WORKERS = min(4, os.cpu_count() or 1)
"""Default processes of a render: the CPU cores, at most 4."""


def iter_examples(paths: Sequence[Path]) -> Iterator[tuple[Example, np.ndarray]]:
    """Yield the cached examples at ``paths``."""
    for p in paths:
        yield load_example(p)
