"""Serve a brain back-end through an OpenAI-compatible HTTP API (stdlib ``ThreadingHTTPServer``).

Endpoints:

* ``POST /v1/chat/completions``: ``{"model", "messages", "max_tokens", "temperature", "top_p"}``;
  message content is a string or a list of ``text`` / ``image_url`` parts. Images must be
  ``data:image/...;base64,`` URLs (the server never fetches a URL); at most one image per request.
  ``temperature`` 0 (the default) decodes greedily.
* ``GET /v1/models``: the served model.
* ``GET /health``: ``{"status": "ok", "model": ...}``.

Bad requests get HTTP 400 with ``{"error": {"message", "type", "code"}}``; requests are answered
one at a time (the model is not thread-safe). Run it with ``robo-stack serve brain --model PATH``.

It binds 127.0.0.1 by default. With an API key (``--api-key``, or the environment variable
``ROBO_STACK_API_KEY``, which unlike the option does not show in ``ps``) every endpoint wants
``Authorization: Bearer <key>`` and answers anything else with HTTP 401. A key is required to bind
anything but a loopback address: the server refuses to start without one (see docs/security.md).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from robo_brain.backends import BackendError, BrainBackend, GenerationSettings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
API_KEY_ENV = "ROBO_STACK_API_KEY"
"""Environment variable read for the API key when ``--api-key`` is not given."""


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or ``localhost``; False for anything else, including
    ``0.0.0.0``, ``::``, ``""`` (every interface) and host names (they may resolve to any interface)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse (``ValueError``) to serve on a non-loopback ``host`` without an API key."""
    if not api_key and not is_loopback(host):
        raise ValueError(f"refusing to serve on {host!r} without an API key: anyone who can reach that address "
                         f"could use the model. Set {API_KEY_ENV} (or --api-key) and send "
                         f"'Authorization: Bearer <key>', or bind 127.0.0.1")


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_data_url(url: str) -> np.ndarray:
    """Decode a ``data:image/...;base64,`` URL to RGB uint8; raise :class:`RequestError` if it is not one."""
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url[:64]:
        raise RequestError("image_url.url must be a data:image/...;base64, URL (remote URLs are not fetched)")
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("image_url data is not valid base64") from None
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise RequestError("image_url data is not a decodable image")
    if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:
        raise RequestError(f"image is {img.shape[1]}x{img.shape[0]}; at most {MAX_IMAGE_PIXELS} pixels")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _message(i: int, m: object) -> tuple[dict, list[np.ndarray]]:
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
        raise RequestError(f"messages[{i}] must be an object with role system, user or assistant")
    content = m.get("content")
    if isinstance(content, str):
        return {"role": m["role"], "content": content}, []
    if not isinstance(content, list):
        raise RequestError(f"messages[{i}].content must be a string or a list of parts")
    texts, images = [], []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            images.append(decode_data_url(part["image_url"].get("url")))
        else:
            raise RequestError(f"messages[{i}].content[{j}] must be a text or image_url part")
    return {"role": m["role"], "content": "\n".join(texts)}, images


def parse_chat_request(body: object) -> tuple[list[dict], np.ndarray | None, GenerationSettings]:
    """Validate a chat-completions request body: ``(messages, image or None, settings)``.

    Raises:
        RequestError: naming the field that is wrong.
    """
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list")
    messages, images = [], []
    for i, m in enumerate(raw):
        msg, imgs = _message(i, m)
        messages.append(msg)
        images += imgs
    if len(images) > 1:
        raise RequestError(f"at most one image per request, got {len(images)}")
    if not any(m["role"] == "user" for m in messages):
        raise RequestError("messages need at least one user message")
    temperature = body.get("temperature", 0.0)
    try:
        settings = GenerationSettings(
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
            do_sample=float(temperature) > 0,
            temperature=float(temperature) if float(temperature) > 0 else 1.0,
            top_p=float(body.get("top_p", 1.0)),
        )
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad generation settings: {exc}") from None
    return messages, (images[0] if images else None), settings


class BrainHTTPServer(ThreadingHTTPServer):
    """HTTP server holding the back-end, its model name and a lock serialising generation."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: BrainBackend, model_name: str,
                 api_key: str | None = None) -> None:
        """Bind to ``address`` and serve ``backend`` as ``model_name`` (to holders of ``api_key``, if given)."""
        check_bind(address[0], api_key)
        super().__init__(address, _Handler)
        self.backend, self.model_name = backend, model_name
        self._api_key = (api_key or "").encode()
        self.lock = threading.Lock()

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the key (always true without a key)."""
        if not self._api_key:
            return True
        scheme, _, token = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._api_key)

    def completion(self, body: object) -> dict:
        """Answer one chat-completions request body (raises :class:`RequestError` / ``BackendError``)."""
        messages, image, settings = parse_chat_request(body)
        t0 = time.perf_counter()
        with self.lock:
            text = self.backend.generate(messages, image, settings)
        logger.info("answered in %.3f s (%d chars)", time.perf_counter() - t0, len(text))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


class _Handler(BaseHTTPRequestHandler):
    server: BrainHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def _check_auth(self) -> bool:
        """Answer 401 (and close the connection: a request body may be left unread) unless authorized."""
        if self.server.authorized(self.headers.get("Authorization")):
            return True
        self.close_connection = True
        data = json.dumps({"error": {"message": "missing or wrong API key (Authorization: Bearer <key>)",
                                     "type": "authentication_error", "code": 401}}).encode()
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="robo_stack"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        logger.warning("refused a request from %s: missing or wrong API key", self.address_string())
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if not self._check_auth():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send(200, {"status": "ok", "model": self.server.model_name})
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "robo_stack"}]})
        else:
            self._error(404, f"no such endpoint: GET {path}", "not_found")

    def _body(self) -> object:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("Content-Length header is required", 411) from None
        if length > MAX_BODY_BYTES:
            raise RequestError(f"request body is {length} bytes; at most {MAX_BODY_BYTES}", 413)
        try:
            return json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if not self._check_auth():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/chat/completions":
            self._error(404, f"no such endpoint: POST {path}", "not_found")
            return
        try:
            self._send(200, self.server.completion(self._body()))
        except RequestError as exc:
            self.close_connection = exc.status in (411, 413)
            self._error(exc.status, str(exc))
        except BackendError as exc:
            logger.error("generation failed: %s", exc)
            self._error(500, str(exc), "server_error")


def make_server(backend: BrainBackend, host: str = "127.0.0.1", port: int = 8000,
                model_name: str | None = None, api_key: str | None = None) -> BrainHTTPServer:
    """Bind a server for ``backend`` (``port`` 0 picks a free port: read ``server.server_address``).

    Raises:
        ValueError: ``host`` is not a loopback address and there is no ``api_key``.
    """
    return BrainHTTPServer((host, port), backend, model_name or backend.name, api_key)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``robo-stack serve brain``."""
    parser.add_argument("--model", required=True, help="local checkpoint folder (transformers back-end)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, loopback only; any other address needs an API key)")
    parser.add_argument("--api-key", default=None,
                        help=f"require 'Authorization: Bearer <key>' (default: ${API_KEY_ENV}; prefer the variable, "
                             "a command-line option shows in ps)")
    parser.add_argument("--name", default=None, help="model name reported by the API (default: folder name)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted; returns the exit code."""
    from pathlib import Path

    from robo_brain.backends.transformers_backend import TransformersBackend

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV, "")
    try:
        check_bind(args.host, api_key)  # before loading the model
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    try:
        backend = TransformersBackend(args.model, device=args.device, dtype=args.dtype)
    except BackendError as exc:
        logger.error("%s", exc)
        return 2
    server = make_server(backend, args.host, args.port, args.name or Path(args.model).name, api_key or None)
    host, port = server.server_address[:2]
    logger.info("serving %s on http://%s:%d/v1 (POST /v1/chat/completions, GET /v1/models, GET /health)%s",
                server.model_name, host, port, ", API key required" if api_key else ", no API key (loopback only)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robo_brain.serve --model PATH [--port N] [--host H]``."""
    parser = argparse.ArgumentParser(prog="robo-stack serve brain", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
