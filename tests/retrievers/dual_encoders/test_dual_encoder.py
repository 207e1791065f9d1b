"""The Retriever contract for the dual-encoder retriever, with tiny seeded BLIP and CLIP models and real PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.errors import ConfigError, DataError, HarnessError
from harness.protocols import Retriever, RunContext
from harness.registry import REGISTRY
from harness.types import QUERY_TRUNCATED, Dialogue, DialogueState, SearchSpace
from retrievers.dual_encoders.encoders import DualEncoder
from retrievers.dual_encoders.retriever import (
    PRESETS,
    DualEncoderRetriever,
    build_dual_encoder,
    chatir,
    clip,
    cocoft,
    zs,
)

TURNS = ("a red square", "is it bright? yes", "any people? no", "is it outdoors? maybe")


def states_for(search_space: SearchSpace) -> list[DialogueState]:
    """Every image as a target, at two rounds each."""
    states = []
    for index, path in enumerate(search_space.paths):
        dialogue = Dialogue(str(index), path, TURNS[: 1 + index % 3] + (f"picture number {index}",))
        states += [DialogueState.at_round(dialogue, round_, index) for round_ in (0, len(dialogue.turns) - 1)]
    return states


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the images every dual encoder encodes."""
    calls: list[int] = []
    original = DualEncoder.encode_images

    def counting(self: DualEncoder, pixel_values: torch.Tensor) -> torch.Tensor:
        calls.append(pixel_values.shape[0])
        return original(self, pixel_values)

    monkeypatch.setattr(DualEncoder, "encode_images", counting)
    return calls


@pytest.mark.parametrize("preset", ["cocoft", "clip"])
def test_ranks_cover_the_search_space_and_are_deterministic(
    preset: str, tiny_blip: Path, tiny_clip: Path, search_space: SearchSpace, context: RunContext, tmp_path: Path
) -> None:
    model = tiny_blip if preset == "cocoft" else tiny_clip
    retriever, _ = REGISTRY.build("retriever", preset, model=str(model), batch_size=3)
    assert isinstance(retriever, Retriever)
    retriever.prepare(search_space, context)
    states = states_for(search_space)
    ranks = retriever.rank(states).ranks
    assert len(ranks) == len(states)
    assert all(0 <= rank < len(search_space) for rank in ranks)
    assert len(set(ranks)) > 1

    again = build_dual_encoder(preset, model=str(model), batch_size=64)
    again.prepare(search_space, RunContext("cpu", tmp_path / "other-cache", progress=False))
    assert again.rank(states).ranks == ranks
    assert again.identity() == retriever.identity()


def test_batch_equals_one_by_one(tiny_blip: Path, search_space: SearchSpace, context: RunContext) -> None:
    retriever = cocoft(model=str(tiny_blip), batch_size=4)
    retriever.prepare(search_space, context)
    states = states_for(search_space)
    assert retriever.rank(states).ranks == tuple(retriever.rank([state]).ranks[0] for state in states)
    assert retriever.rank([]).ranks == ()


def test_image_index_is_cached_and_keyed_by_weights(
    tiny_blip: Path,
    tiny_blip_other: Path,
    original_checkpoint: Path,
    search_space: SearchSpace,
    context: RunContext,
    encode_calls: list[int],
) -> None:
    first = cocoft(model=str(tiny_blip), batch_size=3)
    first.prepare(search_space, context)
    assert sum(encode_calls) == len(search_space)
    assert max(encode_calls) == 3  # batched, never one at a time

    encode_calls.clear()
    second = cocoft(model=str(tiny_blip))
    second.prepare(search_space, context)
    assert encode_calls == []
    states = states_for(search_space)
    assert second.rank(states).ranks == first.rank(states).ranks

    # The same weights from an original-format checkpoint (the chatir path) share the index too.
    converted = chatir(model=str(original_checkpoint), tokenizer=str(tiny_blip))
    converted.prepare(search_space, context)
    assert encode_calls == []
    assert converted.rank(states).ranks == first.rank(states).ranks

    other = cocoft(model=str(tiny_blip_other))
    other.prepare(search_space, context)
    assert sum(encode_calls) == len(search_space)
    assert len(list((context.cache_dir / "embeddings").iterdir())) == 2
    assert other.identity()["encoder"]["weights"] != first.identity()["encoder"]["weights"]


def test_identity_needs_prepare_and_holds_the_settings(
    tiny_blip: Path, search_space: SearchSpace, context: RunContext
) -> None:
    retriever = cocoft(model=str(tiny_blip), max_text_tokens=32, image_size=256)
    with pytest.raises(RuntimeError, match="prepare"):
        retriever.identity()
    with pytest.raises(RuntimeError, match="prepare"):
        retriever.rank(states_for(search_space))
    retriever.prepare(search_space, context)
    identity = retriever.identity()
    assert identity["preset"] == "cocoft"
    assert identity["encoder"]["max_text_tokens"] == 32
    assert identity["encoder"]["preprocessing"]["size"] == 256
    assert len(identity["encoder"]["weights"]) == 64


def test_chatir_without_weights_says_where_they_are() -> None:
    with pytest.raises(HarnessError, match=r"chatir_weights\.ckpt.*--retriever-model"):
        chatir()
    with pytest.raises(HarnessError, match="chatir_weights"):
        REGISTRY.build("retriever", "chatir")


def test_presets_build_without_loading_anything() -> None:
    for factory, name in ((zs, "zs"), (cocoft, "cocoft"), (clip, "clip")):
        retriever = factory()
        assert isinstance(retriever, DualEncoderRetriever) and retriever.encoder is None
        assert retriever.settings.model == PRESETS[name].default_model
    assert zs().settings.model.endswith("model_base.pth")
    assert clip().settings.max_text_tokens == 77 and cocoft().settings.max_text_tokens == 200
    assert REGISTRY.describe("retriever", "zs") == "retrievers.dual_encoders.retriever:zs"
    large, _ = REGISTRY.build("retriever", "cocoft-large")  # PlugIR's retriever, at its processor's 384 px
    assert large.settings.model == "Salesforce/blip-itm-large-coco" and large.settings.max_text_tokens == 200
    assert large.settings.preprocessing.identity() == {**cocoft().settings.preprocessing.identity(), "size": 384}


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dtype"):
        cocoft(dtype="float8")
    with pytest.raises(ConfigError, match="batch_size"):
        cocoft(batch_size=0)
    with pytest.raises(ConfigError, match="preset"):
        build_dual_encoder("large")


def test_offline_hub_default_fails_with_a_way_out(search_space: SearchSpace, context: RunContext) -> None:
    with pytest.raises(HarnessError, match="--retriever-model"):
        cocoft().prepare(search_space, context)


def test_unreadable_image_is_a_data_error(tiny_blip: Path, tmp_path: Path, context: RunContext) -> None:
    (tmp_path / "ok.png").write_bytes((Path(__file__).parent / "conftest.py").read_bytes())
    space = SearchSpace(("ok.png",), tmp_path)
    with pytest.raises(DataError, match="ok.png"):
        cocoft(model=str(tiny_blip)).prepare(space, context)
    with pytest.raises(ConfigError, match="image-root"):
        cocoft(model=str(tiny_blip)).prepare(SearchSpace(("a.png",)), context)


def test_a_token_limit_beyond_the_text_model_is_capped_and_cut_queries_are_flagged(
    tiny_clip: Path, search_space: SearchSpace, context: RunContext, caplog: pytest.LogCaptureFixture
) -> None:
    # DAR asks 256 tokens of every base; CLIP's text model has 77 positions and refused longer inputs.
    retriever = build_dual_encoder("clip", model=str(tiny_clip), max_text_tokens=256)
    retriever.prepare(search_space, context)
    assert retriever.identity()["query"]["max_text_tokens"] == 77
    long = Dialogue("0", search_space.paths[0], ("a " * 200 + "dog",))
    short = Dialogue("1", search_space.paths[1], ("a dog",))
    with caplog.at_level("DEBUG", logger="harness.encoders"):
        batch = retriever.rank([DialogueState.at_round(long, 0, 0), DialogueState.at_round(short, 0, 1)])
        retriever.rank([DialogueState.at_round(long, 0, 0)])
    assert batch.side_values[QUERY_TRUNCATED] == (1.0, 0.0)
    assert sum("are cut to their first 77" in record.getMessage() for record in caplog.records) == 1  # once


def test_a_run_counts_its_cut_queries_in_the_manifest_and_per_round(tiny_blip: Path, tmp_path: Path) -> None:
    import json

    from harness.config import RunSpec
    from harness.registry import REGISTRY
    from harness.runner import run_evaluation

    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(tmp_path / "benchmark", dialogues=4)
    spec = RunSpec(retriever="zs", retriever_args={"model": str(tiny_blip), "max_text_tokens": 16},
                   benchmark=str(synthetic.dialogue_file), search_space=synthetic.search_space_file,
                   image_root=synthetic.image_root, out=tmp_path / "run", device="cpu", progress=False,
                   cache_dir=tmp_path / "cache")
    result = run_evaluation(spec)
    cut = result.metrics["TruncatedQueries"]
    assert cut[0] < 100.0 and cut[-1] == 100.0  # captions fit in 16 tokens, whole dialogues do not
    diagnostics = json.loads((tmp_path / "run" / "manifest.json").read_text())["diagnostics"]
    assert diagnostics["queries"] == 4 * 11 and 0 < diagnostics["queries_truncated"] < diagnostics["queries"]


def test_the_trace_lists_each_rounds_best_images_under_the_tie_rule(tiny_blip, tmp_path):
    import json

    from click.testing import CliRunner

    from harness.cli import main
    from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark

    synthetic = write_synthetic_benchmark(tmp_path / "bench", dialogues=6, distractors=10, rounds=2)
    result = CliRunner().invoke(main, [
        "run", "--retriever", "cocoft", "--retriever-model", str(tiny_blip), "--benchmark", str(synthetic.dialogue_file),
        "--search-space", str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--rounds", "2",
        "--keep-top", "5", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    space = json.loads(synthetic.search_space_file.read_text())
    records = {json.loads(line)["dialogue_id"]: json.loads(line)
               for line in (tmp_path / "run" / "ranks.jsonl").read_text().splitlines()}
    for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines():
        trace = json.loads(line)
        record = records[trace["dialogue_id"]]
        target = space.index(record["target"])
        for entry, rank in zip(trace["rounds"], record["ranks"]):
            assert len(entry["top"]) == 5 == len(set(entry["top"]))
            assert (target in entry["top"]) == (rank < 5)
            if rank < 5:
                assert entry["top"].index(target) == rank  # the same stable tie rule as the rank itself
