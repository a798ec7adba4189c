"""The brain server's bind address and API key, and the openai back-end keeping its key out of logs and
errors. Servers bind 127.0.0.1 on an ephemeral port only."""

from __future__ import annotations

import argparse
import json
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from robo_brain.backends import BackendError, BrainBackend
from robo_brain.backends.openai_backend import OpenAIBackend, redact_url
from robo_brain.serve import API_KEY_ENV, add_arguments, check_bind, is_loopback, make_server, run

KEY = "sk-test-FAKE-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Instruction: put the red block in the blue bowl"}]


class EchoBackend(BrainBackend):
    """Answers "ok" (no model)."""

    name = "echo"

    def generate(self, messages, image=None, settings=None, cancel=None) -> str:  # noqa: ANN001
        return "ok"


@pytest.fixture
def keyed_server():
    srv = make_server(EchoBackend(), "127.0.0.1", 0, "echo", api_key=KEY)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    yield f"http://{host}:{port}"
    srv.shutdown()
    srv.server_close()


def _call(url: str, auth: str | None, body: dict | None = None) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth is not None else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_defaults_bind_loopback() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "x"])
    assert args.host == "127.0.0.1" and args.api_key is None
    srv = make_server(EchoBackend(), port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("", False), ("::", False), ("192.168.1.5", False),
                                                ("gpu-box.local", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(ValueError, match="without an API key"):
            check_bind(host, None)
        check_bind(host, KEY)


def test_refuses_a_public_bind_without_a_key(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    with pytest.raises(ValueError, match=API_KEY_ENV):
        make_server(EchoBackend(), "0.0.0.0", 0)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with caplog.at_level(logging.ERROR):  # refused before the (non-existent) model is loaded
        assert run(parser.parse_args(["--model", "/nonexistent", "--host", "0.0.0.0", "--port", "0"])) == 2
    assert "refusing to serve on '0.0.0.0' without an API key" in caplog.text


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with caplog.at_level(logging.ERROR):  # passes the bind check, then fails on the missing model
        assert run(parser.parse_args(["--model", "/nonexistent", "--host", "0.0.0.0", "--port", "0"])) == 2
    assert "refusing" not in caplog.text and KEY not in caplog.text


@pytest.mark.parametrize("path", ["/health", "/v1/models"])
def test_get_needs_the_key(keyed_server: str, path: str) -> None:
    for auth in (None, "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", KEY):
        status, body, headers = _call(keyed_server + path, auth)
        assert status == 401 and body["error"]["type"] == "authentication_error", (auth, body)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert KEY not in json.dumps(body)
    assert _call(keyed_server + path, f"Bearer {KEY}")[0] == 200
    assert _call(keyed_server + path, f"bearer  {KEY} ")[0] == 200


def test_post_needs_the_key_and_the_openai_client_sends_it(keyed_server: str, monkeypatch) -> None:
    body = {"messages": MESSAGES}
    assert _call(keyed_server + "/v1/chat/completions", None, body)[0] == 401
    status, answer, _ = _call(keyed_server + "/v1/chat/completions", f"Bearer {KEY}", body)
    assert status == 200 and answer["choices"][0]["message"]["content"] == "ok"
    monkeypatch.setenv("ROBO_TEST_KEY", KEY)
    assert OpenAIBackend(keyed_server + "/v1", api_key_env="ROBO_TEST_KEY", retries=0).generate(MESSAGES) == "ok"
    with pytest.raises(BackendError, match="HTTP 401"):
        OpenAIBackend(keyed_server + "/v1", api_key_env="", retries=0).generate(MESSAGES)


class _Echoing(BaseHTTPRequestHandler):
    """A hostile or careless endpoint: 503 twice (retries, each logged), then 401 echoing the headers."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 503 if type(self).calls <= 2 else 401
        data = json.dumps({"error": f"bad key, you sent {self.headers.get('Authorization')}"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_openai_backend_never_logs_its_key(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("ROBO_TEST_KEY", KEY)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echoing)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        host, port = srv.server_address[:2]
        backend = OpenAIBackend(f"http://{host}:{port}/v1", "m", api_key_env="ROBO_TEST_KEY", retries=2,
                                backoff_s=0.01)
        with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as err:
            backend.generate(MESSAGES)
    finally:
        srv.shutdown()
        srv.server_close()
    assert _Echoing.calls == 3 and "retry 2/2" in caplog.text, caplog.text
    assert "HTTP 401" in str(err.value) and "Bearer ***" in str(err.value), "the echoed key is replaced"
    for text in (caplog.text, str(err.value), repr(backend), backend.name):
        assert KEY not in text
    assert "key=set" in repr(backend)


def test_credentials_in_a_base_url_are_not_shown() -> None:
    assert redact_url("https://user:sk-secret@api.example.com/v1") == "https://***@api.example.com/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    backend = OpenAIBackend("https://user:sk-secret@api.example.com/v1", api_key_env="")
    assert "sk-secret" not in backend.name + repr(backend) + backend.shown_url
