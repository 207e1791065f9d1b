"""Live runs through `harness run` with real bots (tiny Flan-T5 questioner, tiny BLIP-2 answerer, greedy and
sampled) and the scripted ones, over a tiny BLIP retriever: the same command from scratch (fresh run directory and
cache, other batches) gives byte-identical ranks.jsonl, and `harness dialogues export` replayed with the same
retriever reproduces the live ranks exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_encoders import write_tiny_blip


@pytest.mark.parametrize("bots", ["scripted", "tiny flan + tiny blip2", "tiny flan sampled + tiny blip2"])
def test_live_runs_are_deterministic_from_scratch_and_replay_to_identical_ranks(
    tmp_path: Path, bots: str, request: pytest.FixtureRequest, one_torch_thread: None
) -> None:
    synthetic = write_synthetic_benchmark(tmp_path / "bench", dialogues=5, distractors=5, rounds=3)
    model_dir = write_tiny_blip(tmp_path / "tiny-blip")
    retriever = ["--retriever", "cocoft", "--retriever-model", str(model_dir), "--search-space",
                 str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--rounds", "3",
                 "--device", "cpu", "--quiet"]
    if bots == "scripted":
        bot_args = ["--questioner", "scripted", "--answerer", "scripted"]
    else:
        bot_args = ["--questioner", "flan", "--questioner-model", str(request.getfixturevalue("tiny_flan_t5")),
                    "--answerer", "blip2", "--answerer-model", str(request.getfixturevalue("tiny_blip2")),
                    # Random weights write no questions: keep them (flagged) rather than redraw every turn.
                    "--questioner-arg", "on_invalid=keep", "--answerer-arg", "on_invalid=keep"]
        if "sampled" in bots:
            bot_args += ["--questioner-arg", "temperature=1.0"]
    runner = CliRunner()

    def live(name: str, *extra: str) -> None:
        # A fresh run directory and a fresh cache each time: nothing is resumed or read from an earlier run.
        result = runner.invoke(main, ["run", *retriever, *bot_args, "--benchmark", str(synthetic.dialogue_file),
                                      "--out", str(tmp_path / name), "--cache-dir", str(tmp_path / f"cache-{name}"),
                                      *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "FAILED" not in result.output

    live("live")
    live("live-again", "--batch-size", "2")  # other batches too: no output may depend on its batch
    assert (tmp_path / "live-again" / "ranks.jsonl").read_bytes() == (tmp_path / "live" / "ranks.jsonl").read_bytes()

    exported = tmp_path / "exported.json"
    assert runner.invoke(main, ["dialogues", "export", str(tmp_path / "live"), "--out", str(exported)]).exit_code == 0
    replay = runner.invoke(main, ["run", *retriever, "--benchmark", str(exported), "--out", str(tmp_path / "replay")],
                           catch_exceptions=False)
    assert replay.exit_code == 0, replay.output

    def ranks(run: str) -> list[tuple[str, list[int]]]:
        return [(json.loads(line)["dialogue_id"], json.loads(line)["ranks"])
                for line in (tmp_path / run / "ranks.jsonl").read_text().splitlines()]

    assert ranks("replay") == ranks("live")
    live_dialogs = [json.loads(line)["dialog"] for line in (tmp_path / "live" / "ranks.jsonl").read_text().splitlines()]
    assert [record["dialog"] for record in json.loads(exported.read_text())] == live_dialogs
    assert all(len(dialog) == 4 for dialog in live_dialogs)
