"""``transformers`` back-end: a local vision-language checkpoint loaded with the Auto classes.

Two kinds of checkpoint folder load through :class:`TransformersBackend`, told apart by the
config's ``model_type``:

* **chat VLMs** (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...): ``AutoProcessor`` and
  ``AutoModelForImageTextToText`` (``AutoModelForCausalLM`` for a text-only checkpoint, which
  then ignores the image), prompted with the processor's chat template.
* **``vision-encoder-decoder``** (the project's embedded ViT + GPT-2 model): the image goes
  through the encoder and the prompt is the decoder's prefix, after ``decoder_start_token_id``.
  The prefix is :func:`encoder_decoder_prompt` of the messages (train with the same function).
  Tokenizer and image processor are saved in the same folder.

Nothing is downloaded: ``local_files_only=True`` always.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from robo_brain.backends import (
    BackendError,
    BrainBackend,
    Cancelled,
    GenerationSettings,
    check_image,
    check_messages,
)

logger = logging.getLogger(__name__)

ENCODER_DECODER_TYPES = ("vision-encoder-decoder",)


def encoder_decoder_prompt(messages: list[dict]) -> str:
    """Decoder prefix of an encoder-decoder checkpoint: the first user message's text and a newline.

    A small fixed-format model has no room for the system prompt or retry turns, so they are
    left out; the planner's first user message states the task (instruction or failure).
    """
    first = next(m for m in messages if m["role"] == "user")
    return first["content"].strip() + "\n"


def _torch_dtype(dtype: str):
    import torch

    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _stopping(cancel: threading.Event | None):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs) -> bool:  # noqa: ANN001, D102
            return bool(cancel is not None and cancel.is_set())

    return StoppingCriteriaList([_Cancel()])


def _gen_kwargs(settings: GenerationSettings, cancel: threading.Event | None) -> dict:
    kw: dict = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.do_sample,
                "stopping_criteria": _stopping(cancel)}
    if settings.do_sample:
        kw.update(temperature=settings.temperature, top_p=settings.top_p)
    return kw


class TransformersBackend(BrainBackend):
    """A local checkpoint folder answering chats with an image (see the module docstring)."""

    def __init__(self, model_path: str | Path, device: str = "cpu", dtype: str = "auto",
                 trust_remote_code: bool = False) -> None:
        """Load the checkpoint at ``model_path`` onto ``device``.

        Raises:
            BackendError: the folder is missing or holds no loadable model / processor.
        """
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise BackendError(f"transformers back-end: no config.json in {str(path)!r} (a local checkpoint "
                               "folder is required; nothing is downloaded)")
        self.path, self.device = path, device
        self.name = f"transformers:{path.name}"
        t0 = time.perf_counter()
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
            self.kind = "encoder-decoder" if config.model_type in ENCODER_DECODER_TYPES else "chat"
            self.plans_only = self.kind == "encoder-decoder"  # its prompt is the first user message only
            load = self._load_encoder_decoder if self.kind == "encoder-decoder" else self._load_chat
            load(dtype, trust_remote_code)
            self.model.to(device).eval()
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear error
            raise BackendError(f"transformers back-end: cannot load {str(path)!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.load_s = time.perf_counter() - t0
        logger.info("loaded %s (%s, %s) in %.2f s", path, type(self.model).__name__, self.kind, self.load_s)

    # ------------------------------------------------------------------ loading
    def _load_chat(self, dtype: str, trust: bool) -> None:
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True, trust_remote_code=trust)
        kw = {"local_files_only": True, "trust_remote_code": trust, "dtype": _torch_dtype(dtype)}
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(self.path, **kw)
            self.vision = True
        except ValueError as exc:
            logger.warning("%s is not an image-text-to-text model (%s); loading it as a text-only causal LM, "
                           "which ignores the image", self.path, exc)
            self.model = AutoModelForCausalLM.from_pretrained(self.path, **kw)
            self.vision = False
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)

    def _load_encoder_decoder(self, dtype: str, trust: bool) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

        self.model = VisionEncoderDecoderModel.from_pretrained(self.path, local_files_only=True,
                                                               dtype=_torch_dtype(dtype))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.vision = True
        if self.model.config.decoder_start_token_id is None:
            raise BackendError(f"{self.path}: VisionEncoderDecoder config needs decoder_start_token_id")

    # ------------------------------------------------------------------ generation
    def warm_up(self, size: int = 128) -> float:
        """Run one short generation on a blank image, so the first real request does not pay for the
        framework's lazy initialisation (the demo's first plan: 1.36 s without it, 0.32 s with it).
        Returns the seconds it took; a failure is logged, not raised (the model is loaded either way)."""
        t0 = time.perf_counter()
        try:
            self.generate([{"role": "user", "content": "Instruction: warm up"}], np.zeros((size, size, 3), np.uint8),
                          GenerationSettings(max_new_tokens=4))
        except Exception as exc:  # noqa: BLE001 - a warm-up failure must not stop the node
            logger.warning("%s: warm-up generation failed (%s); the first request will be slower", self.name, exc)
        return time.perf_counter() - t0

    def generate(self, messages: list[dict], image: np.ndarray | None = None,
                 settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> str:
        """Answer ``messages`` (image attached to the first user message); see :class:`BrainBackend`."""
        settings = settings or GenerationSettings()
        messages = check_messages(messages)
        image = check_image(image)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before generation")
        try:
            import torch

            with torch.inference_mode():
                if self.kind == "encoder-decoder":
                    text = self._generate_encoder_decoder(messages, image, settings, cancel)
                else:
                    text = self._generate_chat(messages, image, settings, cancel)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - surface as one error type
            raise BackendError(f"{self.name}: generation failed: {type(exc).__name__}: {exc}") from exc
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled during generation")
        return text

    def _chat_text(self, messages: list[dict], with_image: bool) -> str:
        first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        convo = []
        for i, m in enumerate(messages):
            parts = [{"type": "text", "text": m["content"]}]
            if with_image and i == first_user:
                parts.insert(0, {"type": "image"})
            convo.append({"role": m["role"], "content": parts})
        if getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None):
            try:
                return self.processor.apply_chat_template(convo, add_generation_prompt=True, tokenize=False)
            except (ValueError, TypeError) as exc:
                logger.debug("processor chat template failed (%s); trying the tokenizer's", exc)
                flat = [{"role": m["role"], "content": m["content"]} for m in messages]
                return self.tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)
        logger.debug("%s has no chat template; using a plain 'role: text' prompt", self.path)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def _generate_chat(self, messages: list[dict], image: np.ndarray | None, settings: GenerationSettings,
                       cancel: threading.Event | None) -> str:
        with_image = image is not None and self.vision
        text = self._chat_text(messages, with_image)
        if with_image:
            inputs = self.processor(images=[image], text=[text], return_tensors="pt")
        else:
            inputs = self.tokenizer([text], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        out = self.model.generate(**inputs, **_gen_kwargs(settings, cancel),
                                  pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        new = out[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def _generate_encoder_decoder(self, messages: list[dict], image: np.ndarray | None,
                                  settings: GenerationSettings, cancel: threading.Event | None) -> str:
        import torch

        if image is None:
            raise BackendError(f"{self.name}: an encoder-decoder checkpoint needs an image")
        cfg = self.model.config
        prefix = self.tokenizer(encoder_decoder_prompt(messages), add_special_tokens=False)["input_ids"]
        ids = torch.tensor([[cfg.decoder_start_token_id, *prefix]], device=self.device)
        limit = getattr(cfg.decoder, "n_positions", None) or getattr(cfg.decoder, "max_position_embeddings", 0)
        max_new = settings.max_new_tokens
        if limit:
            if ids.shape[1] >= limit:
                raise BackendError(f"{self.name}: prompt is {ids.shape[1]} tokens; the decoder holds {limit}")
            max_new = min(max_new, limit - ids.shape[1])
        pixels = self.processor(images=[image], return_tensors="pt")["pixel_values"]
        kw = _gen_kwargs(settings, cancel) | {"max_new_tokens": max_new}
        out = self.model.generate(pixel_values=pixels.to(self.device, self.model.dtype), decoder_input_ids=ids,
                                  pad_token_id=cfg.pad_token_id, eos_token_id=cfg.eos_token_id, **kw)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
