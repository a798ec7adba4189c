"""The brain v2 back-end: a pretrained causal LM + LoRA adapter that writes plan lines from the scene listing.

A checkpoint folder (``models/brain_lm``) holds what ``robo-stack train brain-lm`` trained: the LoRA
adapter (``adapter_config.json``, ``adapter_model.safetensors``, loaded with ``peft`` on top of the
installed base, :func:`robo_brain.lm.weights.base_path`) and ``brain_lm.json`` (the base's name and the
answer limits). The adapter is merged into the base at load time, so inference runs the plain
transformers model. The constant system prompt is run once at load; each request feeds only its own
turn on top of that cache, then decodes with :func:`robo_brain.lm.decode.decode_lines`.

An adapter trained on corrections (``"corrections": true`` in ``brain_lm.json``) also writes a
correction itself (:meth:`LMPlannerBackend.correct_lines`: a ``Why:`` diagnosis, then the steps still to
do), so ``correction: auto`` resolves to ``prompt`` for it; one trained on plans only re-plans. A
checkpoint can also name a second adapter for corrections (``"correction_adapter": "<subfolder>"``): the
first plans then come from its own adapter and the corrections from the second, each merged into its
own copy of the base (twice the memory, ~0.55 GB more), so teaching corrections cannot change first plans.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_brain.backends import BackendError, BrainBackend, Cancelled, GenerationSettings
from robo_brain.lm.decode import Decision, DecodeCancelled, decode_lines
from robo_brain.lm.prompt import REASONS, REFUSALS, correction_user_text, prompt_parts, reason_of, step_lines
from robo_common.plan_language import DIRECTIONS

logger = logging.getLogger(__name__)

CONFIG_FILE = "brain_lm.json"
NOTHING_TO_REDO = 'cannot(reason="none of the plan\'s objects can be picked, placed or pushed in this image")'
"""A correction's answer when the current listing leaves no step of the plan to redo (the model is not asked)."""


@dataclass
class LMAnswer:
    """What the model wrote: its code lines, the decisions it took and the seconds it spent."""

    lines: list[str]
    decisions: list[Decision]
    seconds: float

    @property
    def refusal(self) -> str:
        """The refusal reason when the model refused (``''`` otherwise)."""
        for reason, line in REFUSALS.items():
            if self.lines and self.lines[0] == line:
                return reason
        return ""

    @property
    def min_probability(self) -> float:
        """The least probable decision (1.0 when there was no choice)."""
        return min((d.probability for d in self.decisions), default=1.0)


def is_lm_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a brain v2 checkpoint folder (holds ``brain_lm.json``)."""
    return (Path(path).expanduser() / CONFIG_FILE).is_file()


class LMPlannerBackend(BrainBackend):
    """Plans from a scene listing with a pretrained LM + LoRA adapter (see the module docstring)."""

    wants_scene = True

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        """Load the adapter at ``model_path`` on its installed base.

        Raises:
            BackendError: the folder, the base or the adapter cannot be loaded.
        """
        path = Path(model_path).expanduser()
        self.path, self.name = path, f"lm:{path.name}"
        t0 = time.perf_counter()
        try:
            self.config = json.loads((path / CONFIG_FILE).read_text())
            self.model, self.tokenizer = load_model(path, self.config["base"])
            second = self.config.get("correction_adapter")
            self.correction_model = load_model(path / second, self.config["base"])[0] if second else self.model
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise BackendError(f"brain v2 back-end: cannot load {str(path)!r}: {type(exc).__name__}: {exc}") from exc
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.max_lines = int(self.config.get("max_lines", 9))
        self.english_words = whole_words(self.tokenizer)
        self.corrects = bool(self.config.get("corrections", False) or self.config.get("correction_adapter"))
        self._lock = threading.Lock()
        self._prefix_cache, self._prefix_len = self._run_prefix(self.model)
        self._correction_cache = (self._prefix_cache if self.correction_model is self.model
                                  else self._run_prefix(self.correction_model)[0])
        self.load_s = time.perf_counter() - t0
        logger.info("loaded brain v2 %s on %s in %.2f s", path, self.config["base"], self.load_s)

    @property
    def plans_only(self) -> bool:
        """Whether the adapter only learned first plans (corrections then re-plan the instruction)."""
        return not self.corrects

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _run_prefix(self, model):  # noqa: ANN001, ANN202 - (DynamicCache, int)
        import torch
        from transformers import DynamicCache

        ids = self._ids(prompt_parts([], "").prefix)
        cache = DynamicCache()
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
        return cache, len(ids)

    def warm_up(self, size: int = 128) -> float:  # noqa: ARG002 - same signature as the transformers back-end
        """One plan on a made-up listing, so the first real request does not pay the lazy start-up."""
        t0 = time.perf_counter()
        self.plan_lines(["red block", "blue bowl"], ["red block"], "put the red block in the blue bowl")
        return time.perf_counter() - t0

    def plan_lines(self, names: Sequence[str], blocks: Sequence[str], instruction: str,
                   cancel: threading.Event | None = None) -> LMAnswer:
        """The model's answer to ``instruction`` on a scene of ``names`` (of which ``blocks`` can be picked).

        Raises:
            Cancelled: ``cancel`` was set.
            BackendError: the model failed.
        """
        blocks = [b for b in names if b in set(blocks)]
        options = skill_grammar(blocks, list(names), self.max_lines)
        return self._decode(prompt_parts(names, instruction).user, options, self.max_lines, cancel)

    def correct_lines(self, names: Sequence[str], blocks: Sequence[str], instruction: str,
                      steps: Sequence[tuple[str, str]], failure: str, problems: Sequence[str],
                      cancel: threading.Event | None = None) -> LMAnswer:
        """The model's correction: a ``Why:`` line, then the steps still to do (:func:`correction_grammar`).

        ``steps``: the plan so far as ``(status, code line)``, status ``done``, ``FAILED`` or ``todo``;
        ``failure``: ``kind: detail``; ``problems``: the expert checks' problem lines.

        Raises:
            Cancelled: ``cancel`` was set.
            BackendError: the model failed.
        """
        blocks = [b for b in names if b in set(blocks)]
        text = correction_user_text(names, instruction, steps, failure, problems)
        options = correction_grammar(blocks, list(names), self.max_lines, [code for _, code in steps])
        if not options(0, [])[0]:
            return LMAnswer([NOTHING_TO_REDO], [], 0.0)
        parts = prompt_parts(names, instruction, text)
        return self._decode(parts.user, options, self.max_lines + 1, cancel, correction=True)

    def _decode(self, user: str, options, max_lines: int,  # noqa: ANN001 - decode.LineOptions
                cancel: threading.Event | None, correction: bool = False) -> LMAnswer:
        import torch

        t0 = time.perf_counter()
        model = self.correction_model if correction else self.model
        with self._lock, torch.inference_mode():
            cache = self._correction_cache if correction else self._prefix_cache
            extra = cache.get_seq_length() - self._prefix_len
            if extra > 0:
                cache.crop(-extra)  # back to the system prompt (transformers 5: a negative count removes)

            def step(ids: list[int]) -> torch.Tensor:
                out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True, logits_to_keep=1)
                return out.logits[0, -1]

            try:
                first = step(self._ids(user))
                lines, decisions = decode_lines(step, first, options, self.tokenizer, max_lines, cancel)
            except DecodeCancelled as exc:
                raise Cancelled(str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - surface as one error type
                raise BackendError(f"{self.name}: decoding failed: {type(exc).__name__}: {exc}") from exc
        return LMAnswer(lines, decisions, time.perf_counter() - t0)

    def generate(self, messages: list[dict], image: np.ndarray | None = None,
                 settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> str:
        """Not a chat model: the planner calls :meth:`plan_lines` with the scene listing instead."""
        raise BackendError(f"{self.name} plans from a scene listing (Planner uses plan_lines), not from a chat")


def skill_grammar(blocks: list[str], names: list[str], max_lines: int = 9):  # noqa: ANN201 - decode.LineOptions
    """The lines allowed next: a refusal only first; after a ``pick`` only a ``place`` on something else
    (the object is held); otherwise a ``pick`` (while a ``place`` and ``done()`` still fit in ``max_lines``),
    a ``push`` or ``done()`` (nothing is held, nothing to place)."""
    every = step_lines(blocks, names)
    places = [line for line in every if line.startswith("place(")]
    # a block can be picked only if there is something else to put it on or in
    free = [line for line in every if not line.startswith("place(")
            and not (line.startswith("pick(") and len(names) < 2)]
    refusals = list(REFUSALS.values())
    final = [*refusals, "done()"]

    def options(i: int, lines: list[str]) -> tuple[list[str], list[str]]:
        if lines and lines[-1].startswith("pick("):
            held = lines[-1].split('"')[1]
            return [p for p in places if p != f'place(target="{held}")'], final
        allowed = free if i + 2 < max_lines else [x for x in free if not x.startswith("pick(")]
        return (refusals + allowed if i == 0 else allowed), final

    return options


def correction_grammar(blocks: list[str], names: list[str], max_lines: int = 9,  # noqa: ANN201 - decode.LineOptions
                       plan_lines: Sequence[str] | None = None):
    """The lines a correction may write, over the objects and targets of the plan so far (``plan_lines``; None:
    every listed name): a correction redoes the plan's steps, it never brings in another object.

    First one ``Why:`` line (:data:`~robo_brain.lm.prompt.REASONS`): "not in the gripper" for a listed block the
    plan picks, "in the gripper" for any block it picks (one held high is not listed), "did not move far
    enough" for a listed block it pushes. Then the step the diagnosis names: a ``pick`` of that block, a
    ``place`` of the held one (not onto itself), a ``push`` of it. Then pick-and-place pairs and pushes of the
    plan's blocks, each block picked at most once, and ``done()``. ``max_lines`` counts the steps, not the
    ``Why:`` line.
    """
    picked = _named(plan_lines, "pick", "object") if plan_lines is not None else list(blocks)
    pushed = _named(plan_lines, "push", "object") if plan_lines is not None else list(blocks)
    targets = _named(plan_lines, "place", "target") if plan_lines is not None else list(names)
    listed = set(names)
    pickable = [b for b in blocks if b in picked]
    pushable = [b for b in blocks if b in pushed]
    places = [t for t in targets if t in listed]

    def place_lines(held: str) -> list[str]:
        return [f'place(target="{t}")' for t in places if t != held]

    def push_lines(obj: str) -> list[str]:
        return [f'push(object="{obj}", direction="{d}")' for d in DIRECTIONS]

    whys = [REASONS["regrasp"].format(obj=b) for b in pickable if place_lines(b)]
    whys += [REASONS["held"].format(obj=b) for b in picked if place_lines(b)]
    whys += [REASONS["repush"].format(obj=b) for b in pushable]
    total = max_lines + 1

    def options(i: int, lines: list[str]) -> tuple[list[str], list[str]]:
        if i == 0:
            return whys, []
        if i == 1:
            kind, obj = reason_of(lines[0]) or ("", "")
            first = {"held": place_lines(obj), "regrasp": [f'pick(object="{obj}")'], "repush": push_lines(obj)}
            return first.get(kind, []), []
        steps = lines[1:]
        if steps[-1].startswith("pick("):
            return place_lines(steps[-1].split('"')[1]), ["done()"]
        done = {line.split('"')[1] for line in steps if line.startswith("pick(")}
        picks = [f'pick(object="{b}")' for b in pickable if b not in done and place_lines(b)] if i + 2 < total else []
        return [*picks, *(line for b in pushable for line in push_lines(b)), "done()"], ["done()"]

    return options


def _named(lines: Sequence[str], skill: str, arg: str) -> list[str]:
    """The ``arg`` names of the ``skill`` lines of ``lines``, in order, once each."""
    return list(dict.fromkeys(m for line in lines if line.startswith(f"{skill}(")
                              for m in re.findall(rf'{arg}="([^"]+)"', line)))


MIN_WHOLE_WORDS = 5000
"""A tokenizer with fewer whole-word tokens than this (a character-level test tokenizer) gives no lexicon."""


def whole_words(tokenizer) -> frozenset[str] | None:  # noqa: ANN001 - a transformers tokenizer
    """The lower-case words that ``tokenizer`` writes as one token after a space (SmolLM2: ~25 000 of its 49 152
    tokens): the brain's lexicon of English for :func:`~robo_brain.grounding.check_english`; None when there are
    fewer than :data:`MIN_WHOLE_WORDS` (no word-level vocabulary to tell a language by)."""
    words = frozenset(t[1:].lower() for t in tokenizer.get_vocab() if t[:1] in ("Ġ", "▁") and t[1:].isalpha())
    return words if len(words) >= MIN_WHOLE_WORDS else None


def load_model(path: Path, base: str):  # noqa: ANN201 - (model, tokenizer)
    """The base named ``base`` with the adapter at ``path`` merged in, and the base's tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from robo_brain.lm.weights import base_path

    base_dir = base_path(base)
    hf_logging.disable_progress_bar()  # a node's log is not a terminal
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)
    if (path / "adapter_config.json").is_file():
        with warnings.catch_warnings():  # peft calls a transformers method deprecated for v6: not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            model = PeftModel.from_pretrained(model, path, local_files_only=True).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    return model.eval(), tokenizer


__all__ = ["CONFIG_FILE", "LMAnswer", "LMPlannerBackend", "correction_grammar", "is_lm_checkpoint", "load_model",
           "skill_grammar"]
