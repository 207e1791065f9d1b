"""From public-format data to every retriever's weights, end to end on tiny models (slow): a synthetic VisDial v1.0
file -> `data convert visdial` -> `train chatir` -> replay with the trained weights -> `data reformulate` -> `dar
generate --export-images` -> `train adafuse` -> `run --retriever adafuse` -> `report`, each step's outputs checked,
and the trained ChatIR weights ranking held-out dialogues better than the untrained base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_diffusion import write_tiny_sd21
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.turns import split_turn

DIALOGUES = 96
ROUNDS = 10
# Mean rank of held-out dialogues (the training targets, asked in the reverse order) at rounds 2 to 10: the trained
# weights must beat the untrained base by this many positions (out of 96), with these seeds.
MARGIN = 3.0


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_from_a_visdial_file_to_trained_chatir_and_adafuse_runs(tmp_path, one_torch_thread):
    synthetic = write_synthetic_benchmark(tmp_path / "coco", dialogues=DIALOGUES, distractors=0, rounds=ROUNDS, seed=3)
    blip = write_tiny_blip(tmp_path / "blip")
    chatir_records = json.loads(synthetic.dialogue_file.read_text())
    questions, answers, dialogs = [], [], []
    for record in chatir_records:
        rounds = []
        for turn in record["dialog"][1:]:
            question, answer = split_turn(turn)
            for strings, text in ((questions, question.removesuffix("?")), (answers, answer)):
                if text not in strings:
                    strings.append(text)
            rounds.append({"question": questions.index(question.removesuffix("?")), "answer": answers.index(answer)})
        dialogs.append({"image_id": int(Path(record["img"]).stem), "caption": record["dialog"][0], "dialog": rounds})
    visdial = tmp_path / "visdial_1.0_train.json"
    visdial.write_text(json.dumps({"split": "train", "data": {"questions": questions, "answers": answers,
                                                               "dialogs": dialogs}}))
    cache = tmp_path / "cache"

    # 1. convert: ChatIR's format, text and paths as the synthetic benchmark wrote them
    train = tmp_path / "visdial_train.json"
    cli("data", "convert", "visdial", str(visdial), "--image-root", str(synthetic.image_root), "--image-pattern",
        "synthetic/{image_id:012d}.png", "--out", str(train), "--quiet")
    assert json.loads(train.read_text()) == chatir_records

    # 2. train chatir
    chatir = tmp_path / "chatir"
    output = cli("train", "chatir", "--train-dialogues", str(train), "--image-root", str(synthetic.image_root),
                 "--base-model", str(blip), "--out", str(chatir), "--epochs", "20", "--batch-size", "32", "--lr", "1e-3",
                 "--warmup-epochs", "1", "--max-text-tokens", "64", "--device", "cpu", "--cache-dir", str(cache),
                 "--quiet")
    assert "best epoch" in output and (chatir / "best" / "config.json").is_file()

    # 3. replay held-out dialogues (the same targets, their rounds in reverse order) with base and trained weights
    held_out = tmp_path / "held_out.json"
    held_out.write_text(json.dumps([{"img": record["img"], "dialog": [record["dialog"][0], *record["dialog"][:0:-1]]}
                                    for record in chatir_records]))
    common = ["--benchmark", str(held_out), "--search-space", str(synthetic.search_space_file), "--image-root",
              str(synthetic.image_root), "--rounds", str(ROUNDS), "--device", "cpu", "--quiet", "--cache-dir", str(cache)]
    cli("run", "--retriever", "chatir", "--retriever-model", str(blip), "--out", str(tmp_path / "base"), *common)
    cli("run", "--retriever", "chatir", "--retriever-model", str(chatir), "--out", str(tmp_path / "trained"), *common)

    def mean_rank(run: str) -> float:
        ranks = [rank for record in records(tmp_path / run / "ranks.jsonl") for rank in record["ranks"][2:]]
        return sum(ranks) / len(ranks)

    assert mean_rank("base") - mean_rank("trained") >= MARGIN, (mean_rank("base"), mean_rank("trained"))

    # 4. reformulate (DAR's R1; the scripted LLM) and 5. draw and export one image per (dialogue, round)
    summarised = tmp_path / "visdial_train_S.json"
    cli("data", "reformulate", "--benchmark", str(train), "--llm", "scripted", "--out", str(summarised),
        "--cache-dir", str(cache), "--device", "cpu", "--quiet", "--rounds", "2")
    assert all(len(record["dialog"]) == 3 for record in json.loads(summarised.read_text()))
    images = tmp_path / "train_images"
    sd21 = write_tiny_sd21(tmp_path / "sd21")
    cli("dar", "generate", "--benchmark", str(train), "--dar-queries", str(summarised), "--dar-variant", "released",
        "--retriever-arg", "base=cocoft", "--retriever-arg", f"model={blip}", "--retriever-arg",
        f"diffusion_model={sd21}", "--retriever-arg", "size=32", "--retriever-arg", "steps=2", "--rounds", "2",
        "--device", "cpu", "--cache-dir", str(cache), "--export-images", str(images))
    assert len(list(images.glob("*.png"))) == DIALOGUES * 3

    # 6. train adafuse over the trained chatir base, 7. run it, 8. report it beside the trained chatir replay
    adafuse = tmp_path / "adafuse"
    cli("train", "adafuse", "--train-dialogues", str(summarised), "--train-images", str(images), "--image-root",
        str(synthetic.image_root), "--base", "chatir", "--base-model", str(chatir / "best"), "--max-text-tokens",
        "64", "--out", str(adafuse), "--epochs", "2", "--batch-size", "16", "--warmup-epochs", "1", "--device", "cpu",
        "--cache-dir", str(cache), "--quiet")
    assert (adafuse / "best" / "model.safetensors").is_file()
    replayed = ["--benchmark", str(train), "--search-space", str(synthetic.search_space_file), "--image-root",
                str(synthetic.image_root), "--rounds", "2", "--device", "cpu", "--quiet", "--cache-dir", str(cache)]
    cli("run", "--retriever", "adafuse", "--fusion-checkpoint", str(adafuse), "--dar-base", "chatir",
        "--retriever-model", str(chatir), "--dar-queries", str(summarised), "--dar-images", str(images),
        "--out", str(tmp_path / "run-adafuse"), *replayed)
    cli("run", "--retriever", "chatir", "--retriever-model", str(chatir), "--out", str(tmp_path / "run-chatir"),
        *replayed)
    fused = records(tmp_path / "run-adafuse" / "ranks.jsonl")
    assert len(fused) == DIALOGUES and all(len(record["side_values"]["gate"]) == 3 for record in fused)
    cli("report", str(tmp_path / "run-chatir"), str(tmp_path / "run-adafuse"), "--out", str(tmp_path / "report"),
        "--permutations", "200", "--bootstrap", "100")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "run-chatir" in report and "run-adafuse" in report
