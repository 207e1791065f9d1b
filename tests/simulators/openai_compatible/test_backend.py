"""The OpenAI-compatible generators against a real local HTTP server: request shape, order, bounded concurrency,
retries and backoff (5xx, 408, 409, 429, timeouts, dropped connections), fail-fast authentication and rejected
requests, per-item failures, and a key that never leaks."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.protocols import RunContext, TextGenerator, TurnFailure, VisionGenerator
from simulators.openai_compatible.backend import Backoff, OpenAIChatGenerator, OpenAIVisionGenerator, parse_retry_after
from tests.simulators.openai_compatible.openai_server import FakeOpenAIServer, Fault, reply_for

KEY = "sk-test-Zq9x-DISTINCTIVE-4471"  # easy to grep for wherever it must not appear


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the generator asked to sleep; nothing really sleeps."""
    return []


def chat(server: FakeOpenAIServer, sleeps: list[float], tmp_path: Path, **options: Any) -> OpenAIChatGenerator:
    generator = OpenAIChatGenerator("test-model", base_url=server.base_url, sleep=sleeps.append, **options)
    generator.load(RunContext(device="cpu", cache_dir=tmp_path))
    return generator


def prompts(count: int) -> list[str]:
    return [f"prompt {index}" for index in range(count)]


def test_outputs_come_back_in_prompt_order_with_one_request_each(server, sleeps, tmp_path):
    generator = chat(server, sleeps, tmp_path, system_prompt="Be brief.")
    assert isinstance(generator, TextGenerator)
    outputs = generator.generate(prompts(5), seeds=[10, 11, 12, 13, 14])
    assert outputs == [reply_for(prompt) for prompt in prompts(5)]
    assert len(server.requests) == 5
    for request in server.requests:
        index = int(request.text.split()[-1])
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "test-model"
        assert request.body["temperature"] == 0.0 and request.body["max_tokens"] == 32
        assert request.body["seed"] == 10 + index
        assert request.messages[0] == {"role": "system", "content": "Be brief."}
        assert request.messages[1] == {"role": "user", "content": f"prompt {index}"}
        assert request.headers["authorization"] == f"Bearer {KEY}"
    assert sleeps == []


def test_concurrency_is_bounded_and_used(sleeps, tmp_path):
    with FakeOpenAIServer(latency=0.05) as server:
        generator = chat(server, sleeps, tmp_path, concurrency=3)
        outputs = generator.generate(prompts(9), seeds=range(9))
    assert outputs == [reply_for(prompt) for prompt in prompts(9)]
    assert 2 <= server.max_in_flight <= 3


def test_server_errors_are_retried_with_capped_exponential_backoff(server, sleeps, tmp_path):
    server.inject("prompt 1", Fault(status=500), Fault(status=503), Fault(status=429), Fault(status=408))
    generator = chat(server, sleeps, tmp_path, backoff=Backoff(base=0.5, cap=1.5))
    outputs = generator.generate(prompts(3), seeds=[0, 1, 2])
    assert outputs == [reply_for(prompt) for prompt in prompts(3)]
    assert len(server.requests_for("prompt 1")) == 5
    assert len(server.requests) == 7
    assert len(sleeps) == 4
    assert all(0.0 <= delay <= bound for delay, bound in zip(sleeps, [0.5, 1.0, 1.5, 1.5]))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "3600"}, 20.0)],
)
def test_retry_after_is_honoured_and_capped(server, sleeps, tmp_path, headers, expected):
    server.inject("prompt 0", Fault(status=429, headers=headers))
    generator = chat(server, sleeps, tmp_path, backoff=Backoff(cap=20.0))
    assert generator.generate(prompts(1), seeds=[0]) == [reply_for("prompt 0")]
    assert sleeps == [expected]


def test_retry_after_as_http_date():
    later = formatdate(time.time() + 120, usegmt=True)
    assert parse_retry_after({"retry-after": later}) == pytest.approx(120, abs=2)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_a_slow_response_times_out_and_is_retried(server, sleeps, tmp_path):
    server.inject("prompt 0", Fault(delay=1.0))
    generator = chat(server, sleeps, tmp_path, timeout=0.2)
    assert generator.generate(prompts(2), seeds=[0, 1]) == [reply_for("prompt 0"), reply_for("prompt 1")]
    assert len(server.requests_for("prompt 0")) == 2
    assert len(sleeps) == 1


def test_exhausted_retries_fail_that_item_only(server, sleeps, tmp_path):
    server.inject("prompt 1", *[Fault(status=503, message="overloaded")] * 3)
    generator = chat(server, sleeps, tmp_path, max_retries=2)
    outputs = generator.generate(prompts(3), seeds=[0, 1, 2])
    assert outputs[0] == reply_for("prompt 0") and outputs[2] == reply_for("prompt 2")
    assert outputs[1] == TurnFailure("HTTP 503: overloaded (gave up after 3 attempts)")
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_authentication_failure_stops_the_batch_at_once(server, sleeps, tmp_path, status):
    server.inject("", Fault(status=status, message=f"Incorrect API key provided: {KEY}"))
    generator = chat(server, sleeps, tmp_path, concurrency=1)
    with pytest.raises(HarnessError) as raised:
        generator.generate(prompts(4), seeds=range(4))
    message = str(raised.value)
    assert message == (f"authentication failed for {server.base_url} (HTTP {status}): check the key in $OPENAI_API_KEY")
    assert len(server.requests) == 1  # no retry, and the queued prompts were never sent
    assert sleeps == []


def test_a_conflict_and_a_dropped_connection_are_retried(server, sleeps, tmp_path):
    server.inject("prompt 1", Fault(status=409, message="conflict"), Fault(drop=True))
    generator = chat(server, sleeps, tmp_path)
    assert generator.generate(prompts(2), seeds=[0, 1]) == [reply_for("prompt 0"), reply_for("prompt 1")]
    assert len(server.requests_for("prompt 1")) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_rejected_request_stops_the_batch_with_the_reason(server, sleeps, tmp_path, status):
    # A wrong model name (404) or an option the server refuses (400, 422) fails every request alike.
    server.inject("", Fault(status=status, message="The model   `test-model`\ndoes not exist"))
    generator = chat(server, sleeps, tmp_path, concurrency=1)
    with pytest.raises(HarnessError) as raised:
        generator.generate(prompts(3), seeds=[0, 1, 2])
    assert str(raised.value) == (
        f"{server.base_url} rejected a request for model 'test-model' (HTTP {status}: The model `test-model` does "
        "not exist); check the model name, the base URL and the request parameters (temperature 0, max_tokens 32, "
        "seed)"
    )
    assert len(server.requests) == 1  # no retry, and the queued prompts were never sent
    assert sleeps == []


def test_other_client_errors_fail_that_item_only(server, sleeps, tmp_path):
    server.inject("prompt 1", Fault(status=413, message="image   too\nlarge"))
    generator = chat(server, sleeps, tmp_path)
    outputs = generator.generate(prompts(3), seeds=[0, 1, 2])
    assert outputs == [reply_for("prompt 0"), TurnFailure("HTTP 413: image too large"), reply_for("prompt 2")]
    assert len(server.requests_for("prompt 1")) == 1
    assert sleeps == []


def test_empty_content_is_a_failure(server, sleeps, tmp_path):
    server.inject("prompt 0", Fault(empty=True))
    assert chat(server, sleeps, tmp_path).generate(prompts(1), seeds=[0]) == [TurnFailure("empty response")]


@pytest.mark.parametrize("fault", [Fault(raw=b'{"id": "chatcmpl-1", "choi'),
                                   Fault(raw=b"<html><body>502 proxy error</body></html>", content_type="text/html")],
                         ids=["truncated-json", "html-page"])
def test_a_200_that_is_no_completion_is_retried_then_fails_that_item_only(server, sleeps, tmp_path, fault):
    server.inject("prompt 1", fault, fault)
    generator = chat(server, sleeps, tmp_path, max_retries=1)
    outputs = generator.generate(prompts(3), seeds=[0, 1, 2])
    assert outputs[0] == reply_for("prompt 0") and outputs[2] == reply_for("prompt 2")
    assert isinstance(outputs[1], TurnFailure) and "not a" in outputs[1].reason and "gave up after 2" in outputs[1].reason
    assert len(server.requests_for("prompt 1")) == 2 and len(sleeps) == 1


def test_a_server_echoing_the_key_gets_it_scrubbed_from_the_generated_text(server, sleeps, tmp_path):
    server.inject("prompt 0", Fault(reply=f"your key is {KEY}, thanks"))
    assert chat(server, sleeps, tmp_path).generate(prompts(1), seeds=[0]) == ["your key is <redacted>, thanks"]


def test_the_key_never_leaks(server, sleeps, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.inject("prompt 0", Fault(status=429, message=f"rate limited for key {KEY}"))
    server.inject("prompt 1", Fault(status=413, message=f"too large for key {KEY}"))
    generator = chat(server, sleeps, tmp_path)
    outputs = generator.generate(prompts(2), seeds=[0, 1])
    assert outputs[0] == reply_for("prompt 0")
    assert outputs[1] == TurnFailure("HTTP 413: too large for key <redacted>")
    server.inject("", Fault(status=400, message=f"bad request with key {KEY}"))
    with pytest.raises(HarnessError, match="bad request with key <redacted>") as rejected:
        generator.generate(prompts(1), seeds=[0])
    server.inject("", Fault(status=401, message=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(HarnessError) as raised:
        generator.generate(prompts(1), seeds=[0])

    assert all(request.headers["authorization"] == f"Bearer {KEY}" for request in server.requests)  # it is sent
    assert KEY not in json.dumps(generator.identity())
    assert KEY not in repr(generator)
    assert KEY not in str(raised.value) and KEY not in str(rejected.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert any("retry 1 of 6" in record.getMessage() for record in caplog.records)
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text


def test_a_missing_key_is_an_error_naming_the_variable_unless_the_server_is_local(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    context = RunContext(device="cpu", cache_dir=tmp_path)
    with pytest.raises(HarnessError, match=r"set \$MY_KEY"):
        OpenAIChatGenerator("gpt-4o-mini", api_key_env="MY_KEY").load(context)
    local = OpenAIChatGenerator("served-model", base_url=server.base_url, api_key_env="MY_KEY")
    local.load(context)
    assert local.generate(["hello"], seeds=[0]) == [reply_for("hello")]
    assert server.requests[0].headers["authorization"] == "Bearer unused"


def test_identity_holds_what_changes_outputs_only():
    generator = OpenAIChatGenerator("gpt-4o-mini", temperature=0.5, concurrency=2, timeout=5.0, max_retries=1)
    assert generator.identity() == {
        "backend": "openai-chat", "model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1",
        "temperature": 0.5, "max_tokens": 32, "system_prompt": None,
    }
    assert generator.sampling and not OpenAIChatGenerator("m").sampling
    assert OpenAIChatGenerator("m", base_url="http://host:8000/v1/").identity()["base_url"] == "http://host:8000/v1"


@pytest.mark.parametrize("option", [{"concurrency": 0}, {"max_tokens": 0}, {"max_retries": -1}, {"timeout": 0}])
def test_bad_options_are_config_errors(option):
    with pytest.raises(ConfigError):
        OpenAIChatGenerator("m", **option)


def test_the_vision_generator_sends_the_image_as_a_data_url(server, sleeps, tmp_path):
    generator = OpenAIVisionGenerator("vision-model", base_url=server.base_url, sleep=sleeps.append)
    assert isinstance(generator, VisionGenerator)
    generator.load(RunContext(device="cpu", cache_dir=tmp_path))
    images = [Image.new("RGB", (24, 16), (200, 30, 30)), Image.new("RGB", (8, 8), (0, 0, 250))]
    outputs = generator.generate(["what color?", "which shape?"], images, seeds=[0, 1])
    assert outputs == [reply_for("what color?"), reply_for("which shape?")]
    assert generator.identity()["backend"] == "openai-vision"
    for request in server.requests:
        expected = images[0] if request.text == "what color?" else images[1]
        (url,) = request.image_urls
        prefix = "data:image/jpeg;base64,"
        assert url.startswith(prefix)
        sent = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))
        assert sent.format == "JPEG" and sent.size == expected.size
        assert all(abs(a - b) <= 8 for a, b in zip(sent.convert("RGB").getpixel((4, 4)), expected.getpixel((4, 4))))
        assert request.messages[0]["content"][1] == {"type": "text", "text": request.text}


def test_a_role_tagged_prompt_goes_as_its_messages_and_each_step_decodes_its_own_way(server, sleeps, tmp_path):
    from harness.messages import Conversation, Message

    generator = chat(server, sleeps, tmp_path)
    conversation = Conversation((Message("system", "Rewrite."), Message("user", "a dog"), Message("assistant", "a pup"),
                                 Message("user", "a cat")))
    paraphrase = generator.with_decoding(temperature=0.7, max_new_tokens=64, top_p=0.8)
    paraphrase.load(RunContext(device="cpu", cache_dir=tmp_path))
    assert paraphrase.generate([conversation], seeds=[3]) == [reply_for("a cat")]
    request = server.requests[-1]
    assert request.messages == conversation.as_dicts()
    assert (request.body["temperature"], request.body["max_tokens"], request.body["top_p"]) == (0.7, 64, 0.8)
    assert paraphrase.identity()["top_p"] == 0.8 and "top_p" not in generator.identity()
    assert generator.identity()["temperature"] == 0.0  # the original keeps its decoding
    generator.generate(["plain"], seeds=[0])
    assert "top_p" not in server.requests[-1].body
    assert generator.usage()["api_calls"] == 2  # copies count into the original's usage
