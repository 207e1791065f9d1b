"""What a user sees: the model libraries' messages go through our logging (hidden unless -v), --quiet leaves no
progress bar, and bars nest on a terminal and write plain lines anywhere else."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_diffusion import write_tiny_sd21
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.library_output import route_library_logs
from harness.progress import progress_bar
from retrievers.dar.diffusion import DiffusionGenerator, DiffusionSettings

ROOT = Path(__file__).resolve().parents[2]
LONG_PROMPT = "a small red square on the left " * 30  # past the 77 tokens of the tiny SD 2.1's CLIP tokenizer


@pytest.fixture(scope="module")
def tiny_sd21(tmp_path_factory) -> Path:
    return write_tiny_sd21(tmp_path_factory.mktemp("sd21") / "pipeline")


@pytest.fixture
def restored_library_logging() -> Iterator[None]:
    import transformers.utils.logging as library_logging

    with warnings.catch_warnings():
        yield
    library_logging.set_verbosity(logging.WARNING)
    library_logging.enable_default_handler()
    library_logging.disable_propagation()


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_reach_our_logging_only_with_verbose(tiny_sd21, caplog, restored_library_logging, verbose):
    route_library_logs(verbose)
    generator = DiffusionGenerator(DiffusionSettings(model=str(tiny_sd21)), progress=False)
    with caplog.at_level(logging.DEBUG):
        assert generator.truncated([LONG_PROMPT]) == [True]  # the tokenizer warns of the length it was given
    library = [record for record in caplog.records if record.name.startswith("transformers")]
    assert bool(library) == verbose
    assert all(record.levelno >= logging.WARNING for record in library)
    if verbose:
        assert "Token indices sequence length is longer" in library[0].getMessage()


def test_a_quiet_dar_run_prints_no_bar_and_no_library_notice(tiny_sd21, tmp_path):
    blip = write_tiny_blip(tmp_path / "blip")
    synthetic = write_synthetic_benchmark(tmp_path / "bench", dialogues=3, distractors=3, rounds=2)
    records = json.loads(synthetic.dialogue_file.read_text())
    for record in records:
        record["dialog"][1] = LONG_PROMPT
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps(records))
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--retriever", "dar",
               "--dar-base", "cocoft", "--retriever-model", str(blip), "--dar-variant", "released", "--dar-queries",
               str(queries), "--retriever-arg", f"diffusion_model={tiny_sd21}", "--retriever-arg", "size=32",
               "--retriever-arg", "steps=2", "--benchmark", str(synthetic.dialogue_file), "--search-space",
               str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--rounds", "2",
               "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--quiet"]
    result = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    for debris in ("Loading", "it/s", "\r", "Token indices", "[transformers]", "accelerate", "torchvision", "%|"):
        assert debris not in result.stderr, debris
    assert "image prompts were cut" in result.stderr  # what the user must know is still said, once
    assert result.stderr.count("image prompts were cut") == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nested_bars_on_a_terminal_take_their_own_lines_and_inner_ones_go(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(3, "outer") as outer, progress_bar(2, "inner") as inner:
        assert (outer.pos, outer.leave) == (0, True)
        assert (abs(inner.pos), inner.leave) == (1, False)
    with progress_bar(1, "next") as again:
        assert again.pos == 0  # closed bars free their lines


def test_bars_on_a_stream_that_is_no_terminal_write_plain_lines(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    with progress_bar(3, "evaluating", "dialogue") as outer:
        for _ in range(3):
            with progress_bar(4, "generating images", "img") as inner:
                inner.update(4)
            outer.update()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert all(line.startswith(("evaluating", "generating images")) for line in lines)
    assert lines[-1].startswith("evaluating: 100%") and "3/3" in lines[-1]
    assert len(lines) <= 2 + 3 * 2  # opening and closing lines only, far below one per update


def test_bars_closing_out_of_order_never_share_a_line(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(1, "a") as a:
        b_context = progress_bar(1, "b")
        b = b_context.__enter__()
        with progress_bar(1, "c") as c:
            b_context.__exit__(None, None, None)
            with progress_bar(1, "d") as d:
                assert sorted(abs(bar.pos) for bar in (a, c, d)) == [0, 1, 2]  # d takes b's freed line
                assert abs(d.pos) == abs(b.pos) == 1
