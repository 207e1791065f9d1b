"""`harness run --questioner plugir` end to end over tiny models and the synthetic benchmark: a live run with every
retriever preset that computes scores, its ranks equal to replaying its reconstructions, outputs independent of the
batch and of a resume, the refusals made before any model loads, the answerer that reads the reconstruction, and
the seam (the view of a text ranks it as the retriever ranks that query; other questioners get nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.errors import ConfigError
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_encoders import write_tiny_blip, write_tiny_clip
from harness.protocols import RunContext
from harness.ranking import ranks_from_scores
from harness.runner import connect_retrieval
from harness.sources import LiveSource
from harness.types import DialogueState
from retrievers.adafuse.model import AdaFuse, AdaFuseConfig, save_checkpoint
from retrievers.dar.retriever import build_dar
from retrievers.dual_encoders.retriever import build_dual_encoder

ROUNDS = 2


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plugir")
    synthetic = write_synthetic_benchmark(root / "bench", dialogues=4, distractors=20, rounds=ROUNDS)
    images = root / "generated"
    images.mkdir()
    for index in range(4):
        for round_ in range(ROUNDS + 1):
            Image.new("RGB", (32, 32), (index * 60, round_ * 80, 40)).save(images / f"{index}_{round_}.png")
    blip = write_tiny_blip(root / "blip")
    fusion = root / "fusion"
    save_checkpoint(fusion, AdaFuse(AdaFuseConfig.for_embed_dim(_embed_dim(blip))),
                    AdaFuseConfig.for_embed_dim(_embed_dim(blip)), {})
    return {"dialogues": synthetic.dialogue_file, "space": synthetic.search_space_file,
            "images": synthetic.image_root, "captions": synthetic.captions_file, "generated": images, "blip": blip,
            "clip": write_tiny_clip(root / "clip"), "fusion": fusion}


def _embed_dim(blip: Path) -> int:
    return json.loads((blip / "config.json").read_text())["image_text_hidden_size"]


RETRIEVERS = {
    "cocoft": lambda world: ["--retriever", "cocoft", "--retriever-model", str(world["blip"])],
    "zs": lambda world: ["--retriever", "zs", "--retriever-model", str(world["blip"])],
    "chatir": lambda world: ["--retriever", "chatir", "--retriever-model", str(world["blip"])],
    "cocoft-large": lambda world: ["--retriever", "cocoft-large", "--retriever-model", str(world["blip"]),
                                   "--retriever-arg", "image_size=64"],
    "clip": lambda world: ["--retriever", "clip", "--retriever-model", str(world["clip"])],
    "dar": lambda world: ["--retriever", "dar", "--dar-base", "cocoft", "--retriever-model", str(world["blip"]),
                          "--dar-variant", "released", "--retriever-arg", "llm=scripted", "--dar-images",
                          str(world["generated"])],
    "adafuse": lambda world: ["--retriever", "adafuse", "--dar-base", "cocoft", "--retriever-model",
                              str(world["blip"]), "--fusion-checkpoint", str(world["fusion"]), "--retriever-arg",
                              "llm=scripted", "--dar-images", str(world["generated"])],
}
PLUGIR = ["--questioner", "plugir", "--questioner-arg", "llm=scripted", "--questioner-arg", "top=12",
          "--questioner-arg", "skip=2", "--questioner-arg", "clusters=3", "--questioner-arg", "questions=2",
          # The scripted text generator writes no question mark: keep its questions (flagged).
          "--questioner-arg", "on_invalid=keep", "--answerer", "scripted"]


def run(world, out: Path, *extra: str, retriever: str = "cocoft") -> str:
    result = CliRunner().invoke(main, [
        "run", *RETRIEVERS[retriever](world), "--benchmark", str(world["dialogues"]), "--search-space",
        str(world["space"]), "--image-root", str(world["images"]), "--candidate-captions", str(world["captions"]),
        "--rounds", str(ROUNDS), "--device", "cpu", "--quiet", "--out", str(out), "--cache-dir",
        str(out.parent / f"cache-{out.name}"), *PLUGIR, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    return result.output


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("retriever", sorted(RETRIEVERS))
def test_a_live_plugir_run_with_every_scoring_retriever(world, tmp_path, retriever):
    run(world, tmp_path / "run", retriever=retriever)
    records = lines(tmp_path / "run" / "ranks.jsonl")
    assert len(records) == 4 and all(len(record["ranks"]) == ROUNDS + 1 for record in records)
    trace = lines(tmp_path / "run" / "trace.jsonl")[0]["rounds"]
    details = trace[1]["question"]["details"]
    assert details["candidate_count"] == 12 and 1 <= len(details["candidates"]) <= 3
    assert len(details["questions"]) == 2 and details["reconstruction"] == records[0]["dialog"][0]
    assert len(details["kl"]) == 2
    assert trace[2]["question"]["details"]["candidate_count"] == int(12 - 12 / 10)
    notes = [entry["notes"]["reconstruction"]["text"] for entry in trace[1:]]
    assert trace[2]["question"]["details"]["reconstruction"] == notes[0]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    questioner = manifest["components"]["identities"]["source"]["questioner"]
    assert questioner["name"] == "plugir" and questioner["candidate_captions"]["images"] == 24
    assert set(questioner["llm"]["steps"]) == {"reconstruct", "paraphrase", "question", "plain_question", "filter"}


def test_the_ranks_are_those_of_the_reconstructions_and_do_not_depend_on_batch_or_resume(world, tmp_path):
    run(world, tmp_path / "live")
    run(world, tmp_path / "batched", "--batch-size", "1")
    for name in ("ranks.jsonl", "trace.jsonl"):
        assert (tmp_path / "batched" / name).read_bytes() == (tmp_path / "live" / name).read_bytes()
    run(world, tmp_path / "resumed", "--limit", "1", "--batch-size", "3")
    output = run(world, tmp_path / "resumed", "--batch-size", "3")
    assert "3 evaluated now, 1 reused" in output
    assert lines(tmp_path / "resumed" / "ranks.jsonl") == lines(tmp_path / "live" / "ranks.jsonl")

    exported = tmp_path / "reconstructions.json"
    result = CliRunner().invoke(main, ["dialogues", "export", str(tmp_path / "live"), "--reformulated", "--out",
                                       str(exported)])
    assert result.exit_code == 0, result.output
    replay = CliRunner().invoke(main, [
        "run", *RETRIEVERS["cocoft"](world), "--benchmark", str(exported), "--search-space", str(world["space"]),
        "--image-root", str(world["images"]), "--rounds", str(ROUNDS), "--query-mode", "entry", "--device", "cpu",
        "--quiet", "--out", str(tmp_path / "replay")], catch_exceptions=False)
    assert replay.exit_code == 0, replay.output
    assert [record["ranks"] for record in lines(tmp_path / "replay" / "ranks.jsonl")] == \
        [record["ranks"] for record in lines(tmp_path / "live" / "ranks.jsonl")]

    # The explorer shows why each question was asked, and each round's c.
    shown = CliRunner().invoke(main, ["view", str(tmp_path / "live"), "--out", str(tmp_path / "view"), "--limit", "1",
                                      "--quiet"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    page = (tmp_path / "view" / "dialogues" / "0.html").read_text(encoding="utf-8")
    assert page.count("why this question (N = 12)") == 1 and "why this question (N = 10)" in page
    assert "candidates shown" in page and "KL " in page and "<i>c:</i>" in page


def test_query_dialogue_ranks_the_dialogue_itself(world, tmp_path):
    run(world, tmp_path / "dialogue", "--questioner-arg", "query=dialogue")
    exported = tmp_path / "dialogues.json"
    assert CliRunner().invoke(main, ["dialogues", "export", str(tmp_path / "dialogue"), "--out",
                                     str(exported)]).exit_code == 0
    replay = CliRunner().invoke(main, [
        "run", *RETRIEVERS["cocoft"](world), "--benchmark", str(exported), "--search-space", str(world["space"]),
        "--image-root", str(world["images"]), "--rounds", str(ROUNDS), "--device", "cpu", "--quiet", "--out",
        str(tmp_path / "replay")], catch_exceptions=False)
    assert replay.exit_code == 0, replay.output
    assert [record["ranks"] for record in lines(tmp_path / "replay" / "ranks.jsonl")] == \
        [record["ranks"] for record in lines(tmp_path / "dialogue" / "ranks.jsonl")]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--retriever", "oracle"], "computes no scores"),
    (["--retriever", "random"], "computes no scores"),
])
def test_a_retriever_without_scores_is_refused_before_any_model_loads(world, tmp_path, arguments, message):
    result = CliRunner().invoke(main, [
        "run", *arguments, "--benchmark", str(world["dialogues"]), "--search-space", str(world["space"]),
        "--candidate-captions", str(world["captions"]), "--device", "cpu", "--quiet", "--out",
        str(tmp_path / "run"), *PLUGIR])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "run").exists()


def test_an_answerer_reading_the_reconstruction_needs_a_questioner_writing_one(world, tmp_path, tiny_blip2):
    result = CliRunner().invoke(main, [
        "run", *RETRIEVERS["cocoft"](world), "--benchmark", str(world["dialogues"]), "--search-space",
        str(world["space"]), "--image-root", str(world["images"]), "--questioner", "scripted", "--answerer", "blip2",
        "--answerer-model", str(tiny_blip2), "--answerer-arg", "see_reconstruction=true", "--device", "cpu",
        "--quiet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "reads the 'reconstruction' note" in result.output


def test_the_blip2_answerer_sees_the_reconstruction_as_plugir_prompts_it(world, tmp_path, tiny_blip2):
    run(world, tmp_path / "run", "--answerer", "blip2", "--answerer-model", str(tiny_blip2), "--answerer-arg",
        "see_reconstruction=true", "--answerer-arg", "on_invalid=keep")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    answerer = manifest["components"]["identities"]["source"]["answerer"]
    assert answerer["template"]["text"].strip() == "Question: $reconstruction. $question Answer:"
    from simulators.common.prompts import render_for_state
    from simulators.hf.bots import build_blip2_answerer

    custom = tmp_path / "answerer.txt"
    custom.write_text("$caption. Question: $question Answer:")
    with pytest.raises(ConfigError, match=r"no \$reconstruction field"):
        build_blip2_answerer(str(tiny_blip2), prompt=str(custom), see_reconstruction=True)
    bot = build_blip2_answerer(str(tiny_blip2), see_reconstruction=True)
    state = DialogueState("0", "x", 0, 1, ("a dog", "is it big? yes"), notes=({}, {"reconstruction": "a big dog"}))
    assert render_for_state(bot.template, state, "is it brown?") == "Question: a big dog. is it brown? Answer:"
    assert bot.reads_notes == ("reconstruction",)


def test_the_view_of_a_text_ranks_it_as_the_retriever_ranks_that_query(world, tmp_path):
    from harness.fixtures.synthetic_benchmark import SyntheticBenchmark

    benchmark = SyntheticBenchmark(world["dialogues"], world["space"], world["images"], world["captions"]).load()
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    texts = ["a large red circle on the left", "a small blue square, is it big? no"]
    targets = [3, 11]
    encoder = build_dual_encoder("cocoft", model=str(world["blip"]))
    encoder.prepare(benchmark.search_space, context)
    view = encoder.retrieval_view()
    # A text's embedding does not depend on the texts beside it (lengths, count, order).
    others = [f"a {'very ' * length}small square number {length}" for length in range(40)]
    alone = view.embed_texts([texts[0]])
    assert torch.equal(view.embed_texts([*others[:17], texts[0], *others[17:]])[17], alone[0])
    assert torch.equal(view.embed_texts([texts[0], *others[:3]])[0], alone[0])
    for text, target in zip(texts, targets):
        state = DialogueState("0", benchmark.search_space.paths[target], target, 0, (text,))
        assert encoder.rank([state]).ranks == ranks_from_scores(view.text_scores([text]), [target]).ranks
    assert view.current_ranking([DialogueState("0", "x", 0, 0, (texts[0],))], 5)[0] == tuple(
        torch.argsort(view.text_scores([texts[0]])[0], descending=True, stable=True)[:5].tolist())

    # DAR: the view scores with the base encoder, as DAR's text-only side ranks its caption S_t.
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps([{"img": dialogue.target, "dialog": [texts[index % 2]] * (ROUNDS + 1)}
                                   for index, dialogue in enumerate(benchmark.dialogues)]))
    dar = build_dar(base="cocoft", model=str(world["blip"]), variant="released", queries=str(queries),
                    query_mode="entry", images=str(world["generated"]), llm=None)
    dar.prepare(benchmark.search_space, context)
    positions = {path: index for index, path in enumerate(benchmark.search_space.paths)}
    states = [DialogueState.at_round(dialogue, 0, positions[dialogue.target]) for dialogue in benchmark.dialogues]
    batch = dar.rank(states)
    dar_view = dar.retrieval_view()
    for index, state in enumerate(states):
        expected = ranks_from_scores(dar_view.text_scores([texts[index % 2]]), [state.target_index]).ranks[0]
        assert batch.side_ranks["text_only"][index] == expected
    fused = dar_view.current_ranking(states, len(benchmark.search_space))
    assert [ranking.index(state.target_index) for ranking, state in zip(fused, states)] == list(batch.ranks)
    dar.rank(states[:2])  # the last batch holds two of the states: the others are ranked on demand, none lost
    assert all(query is not None for query in dar.query_embeddings(states))


def test_a_questioner_that_does_not_ask_for_the_view_gets_none():
    from harness.fixtures.scripted import ScriptedAnswerer, ScriptedQuestioner

    class NoView:
        def retrieval_view(self):
            raise AssertionError("a view was made for a questioner that did not ask for one")

    source = LiveSource(ScriptedQuestioner(["is it red?"]), ScriptedAnswerer())
    assert not source.needs_retrieval and source.query_note is None
    connect_retrieval(source, NoView())  # type: ignore[arg-type]
    assert not hasattr(source.questioner, "bind_retrieval")


@pytest.mark.parametrize("llm", ["hf-seq2seq", "hf-chat"])
def test_plugir_on_local_transformers_models(world, tmp_path, llm, request):
    model = request.getfixturevalue("tiny_flan_t5" if llm == "hf-seq2seq" else "tiny_causal_lm")
    run(world, tmp_path / "run", "--questioner-model", str(model), "--questioner-arg", f"llm={llm}",
        "--questioner-arg", "reconstruct_max_tokens=8", "--questioner-arg", "question_max_tokens=8")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    generator = manifest["components"]["identities"]["source"]["questioner"]["llm"]["generator"]
    assert generator["backend"] == ("hf-seq2seq" if llm == "hf-seq2seq" else "hf-causal-chat")
    assert generator["model"] == str(model)
    costs = [json.loads(line) for line in (tmp_path / "run" / "costs.jsonl").read_text().splitlines()]
    spent = costs[0]["components"]["questioner"]
    assert spent["model_calls"] == spent["cache_misses"] > 0  # every cache miss one generation
    assert 0 < spent["llm_calls_reconstruct"] <= 4 * ROUNDS  # identical prompts of a batch are generated once


def test_plugir_through_an_openai_compatible_server_sends_each_steps_messages_and_decoding(world, tmp_path,
                                                                                          monkeypatch):
    from tests.simulators.openai_compatible.openai_server import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-plugir-test-key-1234")
    with FakeOpenAIServer() as server:
        run(world, tmp_path / "run", "--questioner-arg", "llm=openai", "--questioner-model", "test-model",
            "--base-url", server.base_url, "--questioner-arg", "questions=1")
        requests = list(server.requests)
    by_tokens = {}
    for request in requests:
        by_tokens.setdefault(request.body["max_tokens"], []).append(request)
    reconstructions, questions, filters = by_tokens[512], by_tokens[32], by_tokens[10]
    # One reconstruction per dialogue and round, identical prompts of one batch sent once.
    assert 0 < len(reconstructions) <= 4 * ROUNDS and {r.body["temperature"] for r in reconstructions} == {0.0}
    assert {r.body["temperature"] for r in questions} == {0.5} and {r.body["temperature"] for r in filters} == {0.0}
    assert all("top_p" not in r.body for r in questions + filters + reconstructions)
    # Role-tagged prompts arrive as messages: a system message, the worked example, then the real request.
    assert [m["role"] for m in questions[0].messages] == ["system", "user", "assistant", "user"]
    assert "[Retrieval Candidates]" in questions[0].messages[-1]["content"]
    assert [m["role"] for m in filters[0].messages] == ["system", "user"]
    assert len({r.body["seed"] for r in questions}) == len(questions)  # every draw its own seed
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert "sk-plugir-test-key-1234" not in manifest and server.base_url in manifest
