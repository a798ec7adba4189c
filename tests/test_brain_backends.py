"""Back-ends: tiny real checkpoints (LLaVA, ViT+GPT-2) through the transformers back-end, and the
OpenAI-compatible server + client end to end over loopback."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from robo_brain.backends import BackendConfig, BackendError, Cancelled, GenerationSettings, make_backend
from robo_brain.backends.openai_backend import OpenAIBackend, image_data_url
from robo_brain.backends.scripted import ScriptedBackend
from robo_brain.backends.transformers_backend import TransformersBackend, encoder_decoder_prompt
from robo_brain.serve import decode_data_url, make_server
from robo_brain.tiny_models import make_tiny

MESSAGES = [{"role": "system", "content": "You plan robot tasks."},
            {"role": "user", "content": "Instruction: put the red block in the blue bowl"}]
IMAGE = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
GREEDY = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module", params=["llava", "encoder-decoder"])
def tiny(request, tmp_path_factory: pytest.TempPathFactory) -> TransformersBackend:
    path = make_tiny(request.param, tmp_path_factory.mktemp(request.param) / "ckpt", seed=0)
    return TransformersBackend(path)


def test_tiny_checkpoint_loads_by_path_and_generates(tiny: TransformersBackend) -> None:
    assert tiny.kind == ("encoder-decoder" if "encoder" in str(tiny.path) else "chat")
    first = tiny.generate(MESSAGES, IMAGE, GREEDY)
    assert isinstance(first, str) and first, "greedy decoding of a random model still yields tokens"
    assert tiny.generate(MESSAGES, IMAGE, GREEDY) == first, "greedy decoding is deterministic"
    other = tiny.generate(MESSAGES, 255 - IMAGE, GREEDY)
    assert isinstance(other, str)
    sampled = tiny.generate(MESSAGES, IMAGE, GenerationSettings(max_new_tokens=12, do_sample=True, temperature=1.5))
    assert isinstance(sampled, str)


def test_cancel_and_bad_inputs(tiny: TransformersBackend) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        tiny.generate(MESSAGES, IMAGE, GREEDY, cancel)
    with pytest.raises(ValueError, match="RGB uint8"):
        tiny.generate(MESSAGES, IMAGE.astype(np.float32), GREEDY)
    with pytest.raises(ValueError, match="role"):
        tiny.generate([{"role": "robot", "content": "x"}], IMAGE, GREEDY)


def test_encoder_decoder_prompt_is_the_first_user_message() -> None:
    convo = [*MESSAGES, {"role": "assistant", "content": "bad"}, {"role": "user", "content": "retry"}]
    assert encoder_decoder_prompt(convo) == "Instruction: put the red block in the blue bowl\n"


def test_load_errors_are_clear(tmp_path) -> None:
    with pytest.raises(BackendError, match="no config.json"):
        TransformersBackend(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(BackendError, match="cannot load"):
        TransformersBackend(tmp_path)
    with pytest.raises(ValueError, match="backend must be one of"):
        BackendConfig(backend="magic", model_path="x")
    with pytest.raises(ValueError, match="model_path is required"):
        BackendConfig(backend="transformers")


def test_scripted_backend_replays_answers(tmp_path) -> None:
    path = tmp_path / "answers.txt"
    path.write_text("Plan:\nopen_gripper()\n---\nPlan:\nclose_gripper()\n")
    backend = make_backend(BackendConfig(backend="scripted", model_path=str(path)))
    assert isinstance(backend, ScriptedBackend)
    got = [backend.generate(MESSAGES) for _ in range(3)]
    assert got == ["Plan:\nopen_gripper()", "Plan:\nclose_gripper()", "Plan:\nclose_gripper()"]
    path.write_text("---\n")
    with pytest.raises(BackendError, match="no answers"):
        ScriptedBackend(path)


# ---------------------------------------------------------------- server + openai client
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    backend = TransformersBackend(make_tiny("llava", tmp_path_factory.mktemp("served") / "tiny-llava"))
    srv = make_server(backend, "127.0.0.1", 0, "tiny-llava")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    yield backend, f"http://{host}:{port}"
    srv.shutdown()
    srv.server_close()


def _http(url: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_openai_client_against_the_server_end_to_end(server) -> None:
    backend, url = server
    client = OpenAIBackend(url + "/v1", "tiny-llava", api_key_env="", timeout_s=10, retries=0)
    remote = client.generate(MESSAGES, IMAGE, GREEDY)
    local = backend.generate(MESSAGES, decode_data_url(image_data_url(IMAGE)), GREEDY)
    assert remote == local, "the server answers exactly what the local model answers (PNG is lossless)"
    assert _http(url + "/health") == (200, {"status": "ok", "model": "tiny-llava"})
    status, models = _http(url + "/v1/models")
    assert status == 200 and models["data"][0]["id"] == "tiny-llava"


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "not valid JSON"),
    (b'{"messages": []}', "non-empty list"),
    (b'{"messages": [{"role": "robot", "content": "x"}]}', "role system, user or assistant"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]}',
     "remote URLs are not fetched"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": '
     b'{"url": "data:image/png;base64,AAAA"}}]}]}', "not a decodable image"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}', "max_new_tokens"),
    (b'{"messages": [{"role": "system", "content": "x"}]}', "at least one user message"),
])
def test_server_rejects_bad_requests_with_400(server, body: bytes, needle: str) -> None:
    _, url = server
    status, payload = _http(url + "/v1/chat/completions", body)
    assert status == 400 and needle in payload["error"]["message"], payload
    assert _http(url + "/v1/nothing") [0] == 404


def test_openai_client_errors_and_retries() -> None:
    client = OpenAIBackend("http://127.0.0.1:9/v1", api_key_env="", timeout_s=0.5, retries=1, backoff_s=0.01)
    with pytest.raises(BackendError, match="no answer after 2 attempts"):
        client.generate(MESSAGES, IMAGE, GREEDY)
    with pytest.raises(ValueError, match="http"):
        OpenAIBackend("ftp://x")
