"""`harness train adafuse` and the adafuse retriever over a tiny BLIP, pre-generated images and a synthetic
benchmark: training writes and resumes checkpoints; the retriever ranks with gate and cosine side values."""

import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.errors import ConfigError, DataError
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.hashing import sha256_file
from harness.protocols import RunContext
from harness.types import DialogueState
from retrievers.adafuse.data import load_training_set
from retrievers.adafuse.model import AdaFuse, AdaFuseConfig, save_checkpoint
from retrievers.adafuse.retriever import build_adafuse

ROUNDS = 2


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_benchmark(tmp_path_factory.mktemp("bench"), dialogues=4, distractors=4, rounds=ROUNDS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    """The same generated images in both layouts: {index}_{round}.jpg and round{r}/{index}.png."""
    root = tmp_path_factory.mktemp("generated")
    flat, by_round = root / "flat", root / "by_round"
    flat.mkdir()
    for index in range(4):
        for round_ in range(ROUNDS + 1):
            image = Image.new("RGB", (32, 32), (index * 60, round_ * 80, 40))
            image.save(flat / f"{index}_{round_}.jpg")
            (by_round / f"round{round_}").mkdir(parents=True, exist_ok=True)
            image.save(by_round / f"round{round_}" / f"{index}.png")
    return flat, by_round


def train_args(synthetic, images: Path, blip: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "adafuse", "--train-dialogues", str(synthetic.dialogue_file), "--train-images", str(images),
            "--image-root", str(synthetic.image_root), "--base", "cocoft", "--base-model", str(blip), "--out", str(out),
            "--epochs", "2", "--batch-size", "4", "--warmup-epochs", "1", "--lr-fusion", "1e-3",
            "--validation-fraction", "0.25", "--device", "cpu", "--cache-dir", str(cache), "--quiet", *extra]


@pytest.fixture(scope="module")
def checkpoint(synthetic, generated, tiny_blip, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adafuse")
    result = CliRunner().invoke(main, train_args(synthetic, generated[1], tiny_blip, root / "run", root / "cache"),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "best epoch" in result.output and "fusion parameters" in result.output
    return root / "run"


def states(synthetic) -> list[DialogueState]:
    benchmark = synthetic.load()
    positions = {path: index for index, path in enumerate(benchmark.search_space.paths)}
    return [DialogueState.at_round(dialogue, round_, positions[dialogue.target], query_mode="entry")
            for dialogue in benchmark.dialogues for round_ in range(ROUNDS + 1)]


def test_train_cli_writes_best_and_last_and_resumes_without_more_epochs(checkpoint, synthetic, generated, tiny_blip):
    for folder in ("best", "last"):
        assert (checkpoint / folder / "model.safetensors").is_file() and (checkpoint / folder / "config.json").is_file()
    record = json.loads((checkpoint / "best" / "config.json").read_text())
    assert record["config"]["embed_dim"] == 16  # the tiny BLIP's projection size
    assert record["base_encoder"]["weights"] and record["training"]["parameter_increase_percent"] > 0
    summary = json.loads((checkpoint / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["validation_examples"] == 3 and summary["train_examples"] == 9
    before = sha256_file(checkpoint / "last" / "model.safetensors")
    again = CliRunner().invoke(main, train_args(synthetic, generated[1], tiny_blip, checkpoint,
                                                 checkpoint.parent / "cache"), catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "already done" in again.output and json.loads((checkpoint / "summary.json").read_text())["epochs"] == 2
    assert sha256_file(checkpoint / "last" / "model.safetensors") == before


def test_training_images_in_either_layout_and_a_missing_one_is_named(synthetic, generated, tmp_path):
    flat = load_training_set(synthetic.dialogue_file, generated[0], synthetic.image_root)
    by_round = load_training_set(synthetic.dialogue_file, generated[1], synthetic.image_root)
    assert (flat.layout, by_round.layout) == ("flat", "round") and len(flat.items) == 4 * (ROUNDS + 1)
    assert by_round.items[4].generated.name == "1.png" and by_round.items[4].generated.parent.name == "round1"
    assert flat.items[4].generated.name == "1_1.jpg"
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "0_0.jpg").write_bytes((generated[0] / "0_0.jpg").read_bytes())
    with pytest.raises(DataError, match="0_1.jpg"):
        load_training_set(synthetic.dialogue_file, partial, synthetic.image_root)


def test_adafuse_retriever_ranks_with_gate_and_cosine_side_values(checkpoint, synthetic, generated, tiny_blip,
                                                                  tmp_path, caplog):
    retriever = build_adafuse(str(checkpoint), base="cocoft", model=str(tiny_blip),
                              queries=str(synthetic.dialogue_file), images=str(generated[0]))
    space = synthetic.load().search_space
    with caplog.at_level(logging.WARNING, logger="harness.adafuse"):
        retriever.prepare(space, RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False))
    assert "another base encoder" not in caplog.text  # trained over this very base
    batch = retriever.rank(states(synthetic))
    count = len(states(synthetic))
    assert len(batch.ranks) == count and all(0 <= rank < len(space) for rank in batch.ranks)
    assert len(batch.side_ranks["text_only"]) == count
    assert len(batch.side_values["gate"]) == count and all(0 < gate < 1 for gate in batch.side_values["gate"])
    assert all(-1 <= cosine <= 1 for cosine in batch.side_values["text_image_cosine"])
    identity = retriever.identity()
    assert identity["retriever"] == "adafuse" and identity["fusion"]["images_per_round"] == 1
    assert identity["fusion"]["sha256"]["model.safetensors"] == sha256_file(checkpoint / "best" / "model.safetensors")
    assert batch == retriever.rank(states(synthetic))  # deterministic (eval mode, no dropout)


def test_a_checkpoint_of_another_size_is_refused_and_of_another_base_warned(checkpoint, synthetic, generated,
                                                                          tiny_blip_other, tmp_path, caplog):
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    space = synthetic.load().search_space
    common = {"base": "cocoft", "model": str(tiny_blip_other), "queries": str(synthetic.dialogue_file),
              "images": str(generated[0])}
    with caplog.at_level(logging.WARNING, logger="harness.adafuse"):
        build_adafuse(str(checkpoint), **common).prepare(space, context)
    assert "another base encoder" in caplog.text
    config = AdaFuseConfig.for_embed_dim(32)
    save_checkpoint(tmp_path / "wide", AdaFuse(config), config, {})
    with pytest.raises(ConfigError, match="32-d"):
        build_adafuse(str(tmp_path / "wide"), **common).prepare(space, context)


def test_harness_run_records_gate_and_degradation_metrics(checkpoint, synthetic, generated, tiny_blip, tmp_path):
    result = CliRunner().invoke(main, [
        "run", "--retriever", "adafuse", "--retriever-model", str(tiny_blip), "--dar-base", "cocoft",
        "--fusion-checkpoint", str(checkpoint), "--dar-queries", str(synthetic.dialogue_file),
        "--dar-images", str(generated[0]), "--benchmark", str(synthetic.dialogue_file),
        "--search-space", str(synthetic.search_space_file), "--image-root", str(synthetic.image_root),
        "--rounds", str(ROUNDS), "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    quartiles = [f"GateByCosineQ{number}" for number in range(1, 5)]
    for name in ("GateMean", "GateCosineCorrelation", "TextImageCosineMean", "Degradation", "RankDrop", *quartiles):
        assert len(metrics[name]) == ROUNDS + 1, name
    assert all(0 < gate < 1 for gate in metrics["GateMean"])
    assert all(-1 <= cosine <= 1 for cosine in metrics["TextImageCosineMean"])
    for round_ in range(ROUNDS + 1):  # 4 dialogues: one per cosine quarter, so the quarters average to GateMean
        gates = [metrics[name][round_] for name in quartiles]
        assert all(0 < gate < 1 for gate in gates)
        assert sum(gates) / 4 == pytest.approx(metrics["GateMean"][round_])
    printed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert {"Hits@10", "Degradation", "RankDrop", "GateMean"} <= printed  # next to Hits@10 in the run's table
    # The explorer shows each round's gate from the trace, beside S_t and the generated image.
    shown = CliRunner().invoke(main, ["view", str(tmp_path / "run"), "--out", str(tmp_path / "view"), "--limit", "1",
                                      "--quiet"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    page = (tmp_path / "view" / "dialogues" / "0.html").read_text(encoding="utf-8")
    trace = json.loads((tmp_path / "run" / "trace.jsonl").read_text().splitlines()[0])["rounds"]
    assert all(f"<td>{entry['retriever']['gate']:.3f}</td>" in page for entry in trace)
    assert page.count('title="prompt: ') == ROUNDS + 1


def test_end_to_end_training_saves_the_text_side_and_the_retriever_loads_it(synthetic, generated, tiny_blip,
                                                                            tmp_path):
    result = CliRunner().invoke(main, train_args(synthetic, generated[0], tiny_blip, tmp_path / "e2e",
                                                  tmp_path / "cache", "--mode", "end-to-end", "--epochs", "1"),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text_side = tmp_path / "e2e" / "best" / "text_encoder.safetensors"
    assert text_side.is_file()
    common = {"base": "cocoft", "model": str(tiny_blip), "queries": str(synthetic.dialogue_file),
              "images": str(generated[0])}
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    space = synthetic.load().search_space
    fine_tuned = build_adafuse(str(tmp_path / "e2e"), **common)
    fine_tuned.prepare(space, context)
    text_side.rename(text_side.with_suffix(".moved"))  # the same fusion weights without the fine-tuned text side
    plain = build_adafuse(str(tmp_path / "e2e"), **common)
    plain.prepare(space, context)
    tuned, base = fine_tuned.base.encoder, plain.base.encoder
    assert tuned.identity()["weights"] != base.identity()["weights"]
    assert tuned.image_identity() == base.image_identity()  # the vision side (and image index) is shared
    assert not torch.equal(tuned.encode_texts(["a red circle"]), base.encode_texts(["a red circle"]))


def test_end_to_end_training_interrupted_mid_epoch_resumes_bit_identical(synthetic, generated, tiny_blip, tmp_path,
                                                                         monkeypatch):
    from retrievers.adafuse import train as adafuse_train

    cache, straight_out, interrupted_out = tmp_path / "cache", tmp_path / "straight", tmp_path / "interrupted"
    common = ("--mode", "end-to-end", "--epochs", "2")  # 9 training examples: 2 batches of 4 per epoch
    straight = CliRunner().invoke(main, train_args(synthetic, generated[0], tiny_blip, straight_out, cache, *common),
                                  catch_exceptions=False)
    assert straight.exit_code == 0, straight.output

    def interrupt_in_epoch_two(epochs: int, batches: int) -> None:
        if (epochs, batches) == (1, 1):
            raise KeyboardInterrupt  # Ctrl-C right after the mid-epoch last/ was written

    real_train = adafuse_train.train_adafuse
    monkeypatch.setattr(adafuse_train, "train_adafuse", lambda *args, **kwargs: real_train(
        *args, **kwargs, on_checkpoint=interrupt_in_epoch_two))
    args = train_args(synthetic, generated[0], tiny_blip, interrupted_out, cache, *common, "--checkpoint-every", "1")
    assert CliRunner().invoke(main, args).exit_code != 0
    state = torch.load(interrupted_out / "last" / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["batches_done"]) == (1, 1)
    monkeypatch.setattr(adafuse_train, "train_adafuse", real_train)
    resumed = CliRunner().invoke(main, args, catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "after epoch 1 and 1 batches of epoch 2" in resumed.output
    for name in ("model.safetensors", "text_encoder.safetensors"):
        assert sha256_file(interrupted_out / "last" / name) == sha256_file(straight_out / "last" / name), name


def test_train_cli_can_choose_on_the_benchmark_when_asked_by_name(synthetic, generated, tiny_blip, tmp_path, caplog):
    selection = ["--select-on-benchmark", str(synthetic.dialogue_file), "--select-images", str(generated[0]),
                 "--select-search-space", str(synthetic.search_space_file)]
    with caplog.at_level(logging.WARNING, logger="harness.adafuse"):
        result = CliRunner().invoke(main, train_args(synthetic, generated[1], tiny_blip, tmp_path / "run",
                                                     tmp_path / "cache", *selection), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "chosen on the benchmark" in result.output and "not held-out" in result.output
    assert any("chosen on the benchmark itself" in record.getMessage() for record in caplog.records)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["selection"] == "benchmark"
    assert all(record["benchmark_hits"] is not None for record in summary["history"])
    alone = CliRunner().invoke(main, train_args(synthetic, generated[1], tiny_blip, tmp_path / "other",
                                                tmp_path / "cache", *selection[:2]))
    assert alone.exit_code == 2 and "go together" in alone.output
