"""The registered ``openai`` questioner and answerer, end to end against a local server: prompts rendered from the
packaged templates, outputs cleaned, responses cached so a repeated round makes no request; and `harness run` with
both against the server: the key is in no file or log, and a rejected request stops the run with its reason."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.fixtures.synthetic_benchmark import SyntheticBenchmark, write_synthetic_benchmark
from harness.protocols import RunContext
from harness.registry import REGISTRY
from harness.types import Benchmark, Dialogue, DialogueState, SearchSpace
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.cleaning import clean_answer, clean_question
from simulators.common.prompts import load_template, render_for_state
from tests.simulators.openai_compatible.openai_server import FakeOpenAIServer, Fault, reply_for

KEY = "sk-test-bots-DISTINCTIVE-9931"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def benchmark(tmp_path: Path) -> Benchmark:
    """Three dialogues over three small PNG images, one at round 1 (a question already asked)."""
    root = tmp_path / "images"
    root.mkdir()
    paths = ("red.png", "green.png", "blue.png")
    for path, color in zip(paths, [(220, 20, 20), (20, 220, 20), (20, 20, 220)]):
        Image.new("RGB", (16, 12), color).save(root / path)
    dialogues = (
        Dialogue("d0", "red.png", ("a red square", "is it bright? yes")),
        Dialogue("d1", "green.png", ("a green square", "is it dark? no")),
        Dialogue("d2", "blue.png", ("a blue square", "any text? no")),
    )
    return Benchmark("tiny", dialogues, SearchSpace(paths, image_root=root))


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", cache_dir=tmp_path / "cache", seed=3)


def states_of(benchmark: Benchmark) -> list[DialogueState]:
    rounds = (0, 1, 0)
    return [DialogueState.at_round(dialogue, round_, target_index=index)
            for index, (dialogue, round_) in enumerate(zip(benchmark.dialogues, rounds))]


def test_the_openai_questioner_asks_once_then_reads_its_cache(server, benchmark, context):
    questioner, record = REGISTRY.build("questioner", "openai", base_url=server.base_url, concurrency=2)
    assert isinstance(questioner, LLMQuestioner)
    questioner.prepare(benchmark, context)
    states = states_of(benchmark)
    questions = questioner.ask(states)

    template = load_template("questioner")
    prompts = [render_for_state(template, state) for state in states]
    assert questions == [clean_question(reply_for(prompt)) for prompt in prompts]
    assert sorted(request.text for request in server.requests) == sorted(prompts)
    assert "Q: is it dark? A: no" in prompts[1]
    assert {request.body["model"] for request in server.requests} == {"gpt-4o-mini"}
    assert {request.body["max_tokens"] for request in server.requests} == {32}

    assert questioner.ask(states) == questions
    again, _ = REGISTRY.build("questioner", "openai", base_url=server.base_url)
    again.prepare(benchmark, context)
    assert again.ask(states) == questions
    assert len(server.requests) == 3  # the repeated asks were all served from the response cache
    assert KEY not in json.dumps([questioner.identity(), record.to_dict()])


def test_the_openai_answerer_sees_the_target_image_and_caches(server, benchmark, context):
    answerer, record = REGISTRY.build("answerer", "openai", base_url=server.base_url, model="vision-model")
    assert isinstance(answerer, VisionAnswerer)
    answerer.prepare(benchmark, context)
    states = states_of(benchmark)
    questions = ["what color is it?", "is it round?", "is it big?"]
    answers = answerer.answer(states, questions)

    template = load_template("answerer_chat")
    prompts = [render_for_state(template, state, question) for state, question in zip(states, questions)]
    assert answers == [clean_answer(reply_for(prompt), question) for prompt, question in zip(prompts, questions)]
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.body["model"] == "vision-model" and request.body["max_tokens"] == 16
        (url,) = request.image_urls
        assert url.startswith("data:image/jpeg;base64,")

    assert answerer.answer(states, questions) == answers
    assert len(server.requests) == 3
    assert record.resolved_arguments["prompt"] == "answerer_chat"
    assert KEY not in json.dumps([answerer.identity(), record.to_dict()])


@pytest.fixture
def synthetic(tmp_path: Path) -> SyntheticBenchmark:
    return write_synthetic_benchmark(tmp_path / "bench", dialogues=3, distractors=2, rounds=2)


def run_openai_cli(synthetic: SyntheticBenchmark, base_url: str, out: Path, *extra: str) -> tuple[int, str]:
    """``harness run`` with the openai questioner and answerer against ``base_url`` (the retriever ranks randomly)."""
    result = CliRunner().invoke(main, [
        "-v", "run", "--retriever", "random", "--questioner", "openai", "--answerer", "openai", "--base-url", base_url,
        "--benchmark", str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file),
        "--image-root", str(synthetic.image_root), "--rounds", "2", "--out", str(out), "--quiet", "--device", "cpu",
        "--cache-dir", str(out.parent / "cache"), *extra,
    ], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_cli_run_never_writes_or_logs_the_key(server, synthetic, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # Servers echo keys in their messages; this one does on a retried 429, whose message is logged.
    server.inject("", Fault(status=429, message=f"rate limit for {KEY}", headers={"Retry-After": "0"}))
    code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "run")
    assert code == 0, output
    assert all(request.headers["authorization"] == f"Bearer {KEY}" for request in server.requests)  # it is sent
    assert any("retry 1 of 6" in record.getMessage() for record in caplog.records)
    written = [path for path in (tmp_path / "run").iterdir() if path.is_file()]
    assert {"manifest.json", "ranks.jsonl", "metrics.json"} <= {path.name for path in written}
    for text in [output, caplog.text, *(path.read_text() for path in written)]:
        assert KEY not in text


@pytest.mark.parametrize("role", ["questioner", "answerer"])
def test_a_wrong_model_name_stops_the_run_with_the_server_reason(synthetic, tmp_path, monkeypatch, role):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(models={"served-model"}) as server:
        right = "--answerer-model" if role == "questioner" else "--questioner-model"
        code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "run", f"--{role}-model", "no-such-model",
                                      right, "served-model")
    assert code == 2
    assert (f"error: {server.base_url} rejected a request for model 'no-such-model' (HTTP 404: The model "
            "`no-such-model` does not exist.); check the model name") in output
    assert "dialogues FAILED" not in output and KEY not in output
    assert not (tmp_path / "run" / "ranks.jsonl").read_text()  # nothing recorded: a rerun retries every dialogue


def test_a_rejected_parameter_stops_the_run_with_the_server_reason(server, synthetic, tmp_path):
    server.inject("", Fault(status=422, message="temperature: must be at most 2"))
    code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "run", "--questioner-arg", "temperature=5")
    assert code == 2
    assert "(HTTP 422: temperature: must be at most 2); check the model name, the base URL and the request " \
           "parameters (temperature 5, max_tokens 32, seed)" in output
    assert len({(request.text, request.body["seed"]) for request in server.requests}) == len(server.requests)  # no retry


def test_costs_count_every_request_and_a_spending_limit_stops_and_resumes_to_the_same_run(server, synthetic,
                                                                                          tmp_path):
    code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "whole")
    assert code == 0, output
    whole_requests = len(server.requests)  # fewer than dialogues x rounds x bots: equal prompts are asked once
    [costs] = [json.loads(line) for line in (tmp_path / "whole" / "costs.jsonl").read_text().splitlines()]
    components = costs["components"]
    assert components["questioner"]["api_calls"] + components["answerer"]["api_calls"] == whole_requests
    assert costs["totals"]["prompt_tokens"] == costs["totals"]["completion_tokens"] == whole_requests  # server usage
    assert components["questioner"]["cache_misses"] == components["questioner"]["api_calls"]  # no retry here
    assert costs["stopped"] is None and costs["dialogues_evaluated"] == 3 and "spent (1 invocation" in output

    server.requests.clear()
    code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "limited", "--batch-size", "1",
                                  "--max-api-calls", "5", "--cache-dir", str(tmp_path / "cache-limited"))
    first = len(server.requests)
    assert code == 0 and f"STOPPED: {first} API calls reached --max-api-calls 5" in output
    assert 5 <= first <= 5 + 2  # at most one round's requests (one dialogue: a question and an answer) past it
    stored = len((tmp_path / "limited" / "ranks.jsonl").read_text().splitlines())
    assert 1 <= stored < 3
    code, output = run_openai_cli(synthetic, server.base_url, tmp_path / "limited", "--batch-size", "1",
                                  "--cache-dir", str(tmp_path / "cache-limited"))
    assert code == 0 and "STOPPED" not in output
    assert len(server.requests) == whole_requests  # what the stopped chunk asked was cached, never asked again
    assert (tmp_path / "limited" / "ranks.jsonl").read_text() == (tmp_path / "whole" / "ranks.jsonl").read_text()
    entries = [json.loads(line) for line in (tmp_path / "limited" / "costs.jsonl").read_text().splitlines()]
    assert [entry["totals"]["api_calls"] for entry in entries] == [first, whole_requests - first]
    assert entries[0]["stopped"] and entries[1]["stopped"] is None
    result = CliRunner().invoke(main, ["metrics", str(tmp_path / "limited")], catch_exceptions=False)
    assert "spent (2 invocations" in result.output and f"{whole_requests} api calls" in result.output
