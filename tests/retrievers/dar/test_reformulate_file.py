"""`harness data reformulate`: DAR's R1 over a dialogue file without a search space, one caption per round, through
the response cache a DAR run reads (the run then makes no LLM call); resumable; invalid captions write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.dialogue_files import read_chatir_dialogues
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.sidecar import sidecar_path

ROUNDS = 2


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("reformulate")
    synthetic = write_synthetic_benchmark(root / "bench", dialogues=3, distractors=3, rounds=ROUNDS)
    images = root / "images"
    images.mkdir()
    for index in range(3):
        for round_ in range(ROUNDS + 1):
            Image.new("RGB", (32, 32), (index * 70, round_ * 90, 9)).save(images / f"{index}_{round_}.png")
    return synthetic, write_tiny_blip(root / "blip"), images


def reformulate(synthetic, out: Path, cache: Path, *extra: str):
    return CliRunner().invoke(main, ["data", "reformulate", "--benchmark", str(synthetic.dialogue_file), "--llm",
                                     "scripted", "--out", str(out), "--cache-dir", str(cache), "--device", "cpu",
                                     "--batch-size", "2", "--quiet", *extra], catch_exceptions=False)


def test_one_caption_per_round_and_a_later_dar_run_makes_no_llm_call(setting, tmp_path):
    synthetic, blip, images = setting
    out, cache = tmp_path / "S.json", tmp_path / "cache"
    result = reformulate(synthetic, out, cache)  # no --search-space: reformulation ranks nothing
    assert result.exit_code == 0, result.output
    source = read_chatir_dialogues(synthetic.dialogue_file, expected_turns=None)
    written = read_chatir_dialogues(out, expected_turns=None)
    assert [dialogue.target for dialogue in written] == [dialogue.target for dialogue in source]
    assert all(len(dialogue.turns) == ROUNDS + 1 for dialogue in written)
    manifest = json.loads(sidecar_path(out).read_text())
    assert manifest["reformulator"]["generator"]["backend"] == "scripted" and manifest["dialogues"] == 3
    again = reformulate(synthetic, tmp_path / "again.json", cache)  # resumed / repeated: all from the cache
    assert again.exit_code == 0 and (tmp_path / "again.json").read_bytes() == out.read_bytes()

    run = CliRunner().invoke(main, [
        "run", "--retriever", "dar", "--dar-base", "cocoft", "--retriever-model", str(blip), "--dar-variant",
        "released", "--retriever-arg", "llm=scripted", "--dar-images", str(images), "--benchmark",
        str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file), "--image-root",
        str(synthetic.image_root), "--rounds", str(ROUNDS), "--device", "cpu", "--quiet", "--out",
        str(tmp_path / "run"), "--cache-dir", str(cache)], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    costs = json.loads((tmp_path / "run" / "costs.jsonl").read_text().splitlines()[0])
    assert costs["components"]["retriever"]["llm_calls"] == 0 and costs["components"]["retriever"]["cache_hits"] > 0
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    by_id = {dialogue.dialogue_id: dialogue for dialogue in written}
    for record in trace:
        assert [entry["retriever"]["caption"] for entry in record["rounds"]] == list(by_id[record["dialogue_id"]].turns)


def test_invalid_captions_write_nothing_and_say_where(setting, tmp_path):
    synthetic, _, _ = setting
    one_line = tmp_path / "one_line.txt"
    one_line.write_text("Rewrite: $caption $dialogue")  # the scripted LLM answers a one-line prompt with nothing
    result = CliRunner().invoke(main, ["data", "reformulate", "--benchmark", str(synthetic.dialogue_file), "--llm",
                                       "scripted", "--retriever-arg", f"caption_prompt={one_line}", "--out",
                                       str(tmp_path / "S.json"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert result.exit_code == 1 and "captions stayed invalid after their redraws (first: dialogue 0, round 0" in result.output
    assert not (tmp_path / "S.json").exists()


def test_a_known_benchmark_needs_its_data_dir(tmp_path):
    result = CliRunner().invoke(main, ["data", "reformulate", "--benchmark", "visdial-val", "--out",
                                       str(tmp_path / "S.json")])
    assert result.exit_code == 1 and "needs --data-dir" in result.output
