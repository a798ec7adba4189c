"""``openai`` back-end: any OpenAI-compatible ``/v1/chat/completions`` endpoint, with the image inline.

The image is sent as a base64 PNG data URL in an ``image_url`` content part of the first user
message, so it works with vLLM, SGLang, Ollama, cloud models and ``robo-stack serve brain``.
Stdlib only (``urllib.request``). Connection errors, timeouts, HTTP 429 and 5xx are retried
with exponential backoff; other HTTP errors fail at once with the server's message.

The API key is read from an environment variable (never a ROS parameter) and goes only into the
``Authorization`` header: log lines and error messages name the endpoint without any user:password
part, and a server message that echoes the key has it replaced by ``***`` (tested).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import cv2
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

RETRY_STATUS = (408, 429, 500, 502, 503, 504)


def image_data_url(image: np.ndarray) -> str:
    """Encode an RGB uint8 image as a ``data:image/png;base64,...`` URL."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def openai_messages(messages: list[dict], image: np.ndarray | None) -> list[dict]:
    """Chat messages with the image as an ``image_url`` part of the first user message."""
    out: list[dict] = []
    attached = image is None
    for m in messages:
        if not attached and m["role"] == "user":
            parts = [{"type": "image_url", "image_url": {"url": image_data_url(image)}},
                     {"type": "text", "text": m["content"]}]
            out.append({"role": "user", "content": parts})
            attached = True
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part (for logs and error messages)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _answer_text(body: dict) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"endpoint answered without choices[0].message.content: {json.dumps(body)[:300]}") from None
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise BackendError(f"endpoint answered with non-text content: {content!r:.200}")
    return content


class OpenAIBackend(BrainBackend):
    """A remote (or local) model behind an OpenAI-compatible chat-completions API."""

    def __init__(self, base_url: str, model: str = "", api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 60.0,
                 retries: int = 2, backoff_s: float = 0.5) -> None:
        """Set up the endpoint; nothing is sent until :meth:`generate`.

        Args:
            base_url: Root of the API, e.g. ``http://127.0.0.1:8000/v1``.
            model: Model name sent in requests (servers with one model may ignore it).
            api_key_env: Environment variable with the API key; unset or empty sends no key.
            timeout_s: Timeout of one request.
            retries: Retries after a retryable failure.
            backoff_s: First backoff; doubles after each retry.
        """
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout_s, self.retries, self.backoff_s = model, timeout_s, retries, backoff_s
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.shown_url = redact_url(self.url)
        self.name = f"openai:{model or redact_url(base_url)}"

    def __repr__(self) -> str:
        """The endpoint and model, never the key."""
        return f"OpenAIBackend({self.shown_url!r}, model={self.model!r}, key={'set' if self.api_key else 'none'})"

    def _scrub(self, text: str) -> str:
        """``text`` with the API key (if a server echoed it) replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key else text

    def _request(self, payload: dict) -> dict:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) checked above
            return json.loads(resp.read().decode())

    def _post(self, payload: dict, cancel: threading.Event | None) -> dict:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled before the request")
            try:
                return self._request(payload)
            except urllib.error.HTTPError as exc:
                detail = self._scrub(exc.read().decode(errors="replace")[:500])
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    raise BackendError(f"{self.shown_url}: HTTP {exc.code}: {detail}") from None
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    raise BackendError(f"{self.shown_url}: no answer after {self.retries + 1} attempts: "
                                       f"{self._scrub(str(exc))}") from None
                reason = self._scrub(str(exc))
            except json.JSONDecodeError as exc:
                raise BackendError(f"{self.shown_url}: answer is not JSON: {exc}") from None
            logger.warning("%s: %s; retry %d/%d in %.1f s", self.shown_url, reason, attempt + 1, self.retries, delay)
            time.sleep(delay)
            delay *= 2
        raise BackendError(f"{self.shown_url}: no answer")  # unreachable

    def generate(self, messages: list[dict], image: np.ndarray | None = None,
                 settings: GenerationSettings | None = None, cancel: threading.Event | None = None) -> str:
        """Send one chat-completions request (with retries); see :class:`BrainBackend`."""
        settings = settings or GenerationSettings()
        payload = {
            "model": self.model or "default",
            "messages": openai_messages(check_messages(messages), check_image(image)),
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature if settings.do_sample else 0.0,
        }
        if settings.do_sample:
            payload["top_p"] = settings.top_p
        body = self._post(payload, cancel)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled during the request")
        try:
            return _answer_text(body)
        except BackendError as exc:
            raise BackendError(self._scrub(str(exc))) from None
