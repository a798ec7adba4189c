"""Model back-ends of the brain behind one interface, selected by name.

* ``transformers``: a local vision-language checkpoint through the Auto classes (chat VLMs
  such as LLaVA / Idefics3 / Qwen2-VL, or a ``VisionEncoderDecoderModel``): :mod:`.transformers_backend`;
  or a brain v2 folder (a LoRA adapter on an installed causal LM, planning from the scene listing):
  :mod:`robo_brain.lm.backend`.
* ``openai``: any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, Ollama,
  a cloud model, or ``robo-stack serve brain``): :mod:`.openai_backend`.
* ``scripted``: replays model answers from a text file, for offline runs and debugging of the
  rest of the stack: :mod:`.scripted`.

Messages are OpenAI-style dicts ``{"role": "system"|"user"|"assistant", "content": str}``; the
image (RGB ``uint8`` ``H x W x 3``) is attached to the first user message by each back-end in
its own way.
"""

from __future__ import annotations

import abc
import logging
import threading
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("transformers", "openai", "scripted")
DTYPES = ("auto", "float32", "float16", "bfloat16")


class BackendError(RuntimeError):
    """A back-end could not load or could not answer (message says which and why)."""


class Cancelled(BackendError):
    """Generation was cancelled (a newer request preempted it)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by all back-ends.

    Attributes:
        max_new_tokens: Most tokens generated per answer.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (used only when ``do_sample``).
        top_p: Nucleus sampling mass (used only when ``do_sample``).
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 8192:
            raise ValueError(f"GenerationSettings.max_new_tokens must be in [1, 8192], got {self.max_new_tokens!r}")
        if not self.temperature > 0:
            raise ValueError(f"GenerationSettings.temperature must be > 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationSettings.top_p must be in (0, 1], got {self.top_p!r}")


@dataclass(frozen=True)
class BackendConfig:
    """Which back-end to build and how.

    Attributes:
        backend: ``transformers``, ``openai`` or ``scripted``.
        model_path: Checkpoint folder (transformers), model name (openai) or answers file (scripted).
        device: Torch device for ``transformers`` (``cpu``, ``cuda``, ``cuda:1``...).
        dtype: ``auto`` (checkpoint's), ``float32``, ``float16`` or ``bfloat16``.
        base_url: Endpoint root for ``openai``, e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: Environment variable holding the API key (``openai``); empty for none.
        timeout_s: Per-request timeout (``openai``).
        retries: Retries after a failed request (``openai``), with exponential backoff.
        trust_remote_code: Allow checkpoint-provided code (``transformers``); off by default.
        threads: CPU threads of torch for ``transformers`` (``torch.set_num_threads``); 0 leaves torch's default.
    """

    backend: str = "transformers"
    model_path: str = ""
    device: str = "cpu"
    dtype: str = "auto"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    retries: int = 2
    trust_remote_code: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"BackendConfig.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"BackendConfig.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.threads < 0:
            raise ValueError(f"BackendConfig.threads must be >= 0 (0: torch's default), got {self.threads}")
        if not self.timeout_s > 0:
            raise ValueError(f"BackendConfig.timeout_s must be > 0, got {self.timeout_s!r}")
        if not 0 <= self.retries <= 10:
            raise ValueError(f"BackendConfig.retries must be in [0, 10], got {self.retries!r}")
        if self.backend != "openai" and not self.model_path:
            raise ValueError(f"BackendConfig.model_path is required for the {self.backend!r} back-end")


class BrainBackend(abc.ABC):
    """A model that answers a chat (with one image) with text."""

    name: str = "backend"
    plans_only: bool = False
    """True for a small fixed-format model that only learned first plans (instruction + image -> plan);
    the planner then corrects by re-planning on the current image (``PlannerConfig.correction``)."""

    @abc.abstractmethod
    def generate(self, messages: list[dict], image: np.ndarray | None = None,
                 settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> str:
        """Return the model's answer to ``messages`` (image attached to the first user message).

        Raises:
            BackendError: the model could not answer; :class:`Cancelled` if ``cancel`` was set.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (default: nothing)."""


def check_image(image: np.ndarray | None) -> np.ndarray | None:
    """Return ``image`` as contiguous RGB uint8 ``H x W x 3``, or raise ``ValueError`` naming the problem."""
    if image is None:
        return None
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 HxWx3, got dtype {arr.dtype} shape {arr.shape}")
    return np.ascontiguousarray(arr)


def check_messages(messages: list[dict]) -> list[dict]:
    """Validate chat messages (roles, text content); raise ``ValueError`` naming the bad one."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"message {i} must be a dict with role system, user or assistant, got {m!r:.80}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} content must be a string")
    if not any(m["role"] == "user" for m in messages):
        raise ValueError("messages need at least one user message")
    return messages


def make_backend(config: BackendConfig) -> BrainBackend:
    """Build the back-end named by ``config.backend`` (loads the model for ``transformers``).

    Raises:
        BackendError: the model or file could not be loaded.
    """
    if config.backend == "transformers":
        from robo_brain.lm.backend import LMPlannerBackend, is_lm_checkpoint

        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        if is_lm_checkpoint(config.model_path):
            return LMPlannerBackend(config.model_path)
        from robo_brain.backends.transformers_backend import TransformersBackend

        return TransformersBackend(config.model_path, device=config.device, dtype=config.dtype,
                                   trust_remote_code=config.trust_remote_code)
    if config.backend == "openai":
        from robo_brain.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config.base_url, config.model_path, api_key_env=config.api_key_env,
                             timeout_s=config.timeout_s, retries=config.retries)
    from robo_brain.backends.scripted import ScriptedBackend

    return ScriptedBackend(config.model_path)
