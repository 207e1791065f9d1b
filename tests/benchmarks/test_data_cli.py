"""The ``harness data`` click group, through click's test runner."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from benchmarks.cli import data


def test_validate_published_files_exit_zero_with_quirk_warnings(chatir_dir: Path) -> None:
    result = CliRunner().invoke(data, ["validate", "--data-dir", str(chatir_dir)])
    assert result.exit_code == 0, result.output
    assert "[rotated-questions]" in result.output
    assert '13,547 rounds hold leaked "Answer:" text' in result.output
    assert "140 rounds hold more than one question" in result.output
    assert result.output.rstrip().endswith("OK: 0 error(s), 9 warning(s)")


def test_validate_with_errors_exits_one(chatir_dir: Path, tmp_path: Path) -> None:
    arguments = ["validate", "--data-dir", str(chatir_dir), "--image-root", str(tmp_path), "--benchmark", "flan-blip2",
                 "--quiet"]
    result = CliRunner().invoke(data, arguments)
    assert result.exit_code == 1
    assert result.output.startswith("ERRORS (1)\n  [missing-image]")


def test_validate_rejects_unknown_benchmark(chatir_dir: Path) -> None:
    result = CliRunner().invoke(data, ["validate", "--data-dir", str(chatir_dir), "--benchmark", "flan"])
    assert result.exit_code == 2 and "'flan' is neither a published name" in result.output


def test_fetch_offline_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(data, ["fetch", "chatir", "--to", str(tmp_path), "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: could not download http://127.0.0.1:9/dialogues/VisDial_v1.0_queries_val.json ("
    )
    assert "Traceback" not in result.output


def test_list_shows_known_files() -> None:
    result = CliRunner().invoke(data, ["list"])
    assert result.exit_code == 0
    assert "human-blip2: human (VisDial) questions, BLIP-2 answers" in result.output
    assert "dialogues/Human_BLIP2.json  2,064 dialogues  780aa994c465" in result.output
    assert "ChatIR_Protocol/Search_Space_val_50k.json  50,000 images" in result.output
    assert "github.com/levymsn/ChatIR/tree/c62600c90a2260c8cca44c5fb6b37bc3df53c43f" in result.output
