from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from retrievers.dual_encoders.bench import encoder
from retrievers.dual_encoders.cli import convert

# One timed iteration, no warm-up, over two texts and two images on the CPU.
ONE_SMALL_STEP = ["--device", "cpu", "--text-batch-size", "2", "--image-batch-size", "2", "--warmup", "0",
                  "--iterations", "1"]


def test_convert_writes_a_loadable_directory(original_checkpoint: Path, tiny_blip: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    result = CliRunner().invoke(convert, [str(original_checkpoint), "--out", str(out), "--tokenizer", str(tiny_blip)])
    assert result.exit_code == 0, result.output
    assert f"--retriever-model {out}" in result.output and "4 queue" in result.output
    assert (out / "conversion.json").is_file()


def test_convert_errors_are_click_errors(tiny_blip: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(convert, [str(bad), "--out", str(tmp_path / "out"), "--tokenizer", str(tiny_blip)])
    assert result.exit_code == 1 and "Error:" in result.output and "bad.pth" in result.output


def test_encoder_benchmark_on_a_tiny_model(tiny_blip: Path) -> None:
    arguments = ["--model", str(tiny_blip), *ONE_SMALL_STEP, "--text-tokens", "40"]
    result = CliRunner().invoke(encoder, arguments)
    assert result.exit_code == 0, result.output
    assert "queries/s" in result.output and "images/s" in result.output and "40 tokens per query" in result.output


@pytest.mark.slow
def test_encoder_benchmark_full_size_random_weights() -> None:
    arguments = ONE_SMALL_STEP
    result = CliRunner().invoke(encoder, arguments)
    assert result.exit_code == 0, result.output
    assert "random BLIP base weights" in result.output and "200 tokens per query" in result.output
