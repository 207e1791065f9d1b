"""`harness train chatir` over a tiny BLIP and a synthetic benchmark: prefix pairs, the masked symmetric InfoNCE,
a run that resumes bit-identically after a kill mid-epoch, weights the chatir retriever loads, and a trained text
side that ranks held-out dialogues better than the untrained base."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.protocols import RunContext
from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
from retrievers.dual_encoders.preprocess import BLIP_224
from retrievers.dual_encoders.train_chatir import ChatIRSettings, prefix_pairs, train_chatir
from retrievers.training import contrastive_loss


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_benchmark(tmp_path_factory.mktemp("bench"), dialogues=12, distractors=0, rounds=3)


def encoder_of(model: Path, tmp_path: Path):
    return load_encoder(EncoderSettings("blip", str(model), BLIP_224, 64), "cpu", tmp_path, progress=False)


def test_every_prefix_of_every_dialogue_is_a_pair(synthetic):
    dialogues = synthetic.load().dialogues
    pairs = prefix_pairs(dialogues, synthetic.image_root)
    assert len(pairs) == 12 * 4 and len(pairs.targets) == 12
    first = dialogues[0]
    assert pairs.texts[:4] == tuple(", ".join(first.turns[: length + 1]) for length in range(4))
    assert len(set(pairs.target_index[:4].tolist())) == 1
    assert pairs.targets.paths[int(pairs.target_index[0])] == first.target
    assert len(prefix_pairs(dialogues, synthetic.image_root, rounds=1)) == 12 * 2
    assert prefix_pairs(dialogues, synthetic.image_root).fingerprint == pairs.fingerprint


def test_a_targets_other_copies_in_the_batch_are_no_negatives():
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    targets = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    scale = torch.tensor(0.0)  # logits = cosine
    same_target = contrastive_loss(queries, targets, torch.tensor([0, 0, 1]), scale)
    # By hand: rows 0 and 1 share a target, so each sees only its own copy and the other target.
    logits = queries @ targets.T
    masked = logits.clone()
    masked[0, 1] = masked[1, 0] = float("-inf")
    labels = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(masked, labels) + torch.nn.functional.cross_entropy(masked.T, labels)) / 2
    assert torch.allclose(same_target, expected)
    assert not torch.allclose(same_target, contrastive_loss(queries, targets, torch.tensor([0, 1, 2]), scale))


def test_training_resumes_bit_identically_and_its_weights_load_as_the_chatir_retriever(synthetic, tiny_blip,
                                                                                      tmp_path, one_torch_thread,
                                                                                      caplog):
    dialogues = synthetic.load().dialogues
    pairs = prefix_pairs(dialogues, synthetic.image_root)
    settings = ChatIRSettings(epochs=2, batch_size=8, lr=1e-3, warmup_epochs=0.5, validation_fraction=0.25)
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    whole = train_chatir(settings, pairs, encoder_of(tiny_blip, tmp_path), tmp_path / "whole", context)

    class Killed(Exception):
        pass

    def kill(epochs: int, batches: int) -> None:
        if (epochs, batches) == (1, 2):
            raise Killed

    with pytest.raises(Killed):
        train_chatir(settings, pairs, encoder_of(tiny_blip, tmp_path), tmp_path / "resumed", context,
                     checkpoint_every=1, on_checkpoint=kill)
    resumed = train_chatir(settings, pairs, encoder_of(tiny_blip, tmp_path), tmp_path / "resumed", context,
                           checkpoint_every=1)
    assert (resumed.resumed_from_epoch, resumed.resumed_at_batch) == (2, 2)
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch
    for name in ("best", "last"):
        assert (tmp_path / "resumed" / name / "model.safetensors").read_bytes() == \
            (tmp_path / "whole" / name / "model.safetensors").read_bytes()
    training = json.loads((tmp_path / "whole" / "best" / "training.json").read_text())
    assert training["format"] == "chatir-training" and training["epoch"] == whole.best_epoch
    with caplog.at_level(logging.WARNING, logger="harness.encoders"):
        load_encoder(EncoderSettings("blip", str(tmp_path / "whole"), BLIP_224, 32), "cpu", tmp_path, progress=False)
    assert "was trained with max_text_tokens 64; this run uses 32" in caplog.text

    run = CliRunner().invoke(main, [
        "run", "--retriever", "chatir", "--retriever-model", str(tmp_path / "whole"), "--benchmark",
        str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file), "--image-root",
        str(synthetic.image_root), "--rounds", "3", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")],
        catch_exceptions=False)
    assert run.exit_code == 0, run.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["components"]["built"][0]["arguments"]["model"] == str(tmp_path / "whole")


def test_the_image_side_can_train_too_and_the_command_line_says_where_the_weights_are(synthetic, tiny_blip, tmp_path,
                                                                                     one_torch_thread):
    result = CliRunner().invoke(main, [
        "train", "chatir", "--train-dialogues", str(synthetic.dialogue_file), "--image-root", str(synthetic.image_root),
        "--base-model", str(tiny_blip), "--out", str(tmp_path / "out"), "--image-side", "trained", "--epochs", "1",
        "--batch-size", "8", "--warmup-epochs", "0.5", "--max-text-tokens", "64", "--device", "cpu", "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output and "--retriever chatir --retriever-model" in result.output
    base = encoder_of(tiny_blip, tmp_path).model.state_dict()
    trained = encoder_of(tmp_path / "out", tmp_path).model.state_dict()
    changed = {name.split(".")[0] for name in base if not torch.equal(base[name], trained[name])}
    assert {"text_encoder", "vision_model"} <= changed


def test_the_training_bench_reports_pairs_per_second_for_both_image_sides(tiny_blip, tmp_path, one_torch_thread):
    result = CliRunner().invoke(main, ["bench", "chatir", "--model", str(tiny_blip), "--device", "cpu",
                                       "--batch-size", "4", "--steps", "1", "--warmup", "0", "--text-tokens", "16",
                                       "--cache-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "pairs/s" in line]
    assert len(lines) == 2 and "frozen" in lines[0] and "trained" in lines[1]
    assert all("one VisDial-train epoch (1,356,157 pairs)" in line for line in lines)
