"""Bench models: a fixture is written once, completely or not at all, and ``random:NAME`` names a registered
full-size fixture."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from harness.bench.models import fixture_model, random_model_source
from harness.registry import REGISTRY


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    written: list[Path] = []

    def write(directory: Path, device: str = "cpu", fail: bool = False) -> Path:
        directory.mkdir(parents=True)
        (directory / "weights.bin").write_bytes(b"w")
        written.append(directory)
        if fail:
            raise KeyboardInterrupt  # a user stopping a long write
        (directory / "config.json").write_text("{}")
        return directory

    monkeypatch.setitem(REGISTRY._kind("fixture"), "random-toy", write)
    return written


def test_a_fixture_is_written_once_and_an_interrupted_write_starts_again(tmp_path: Path, writes: list[Path]) -> None:
    target = tmp_path / "toy"
    with pytest.raises(KeyboardInterrupt):
        fixture_model("random-toy", target, fail=True)
    assert not target.exists()  # only the .partial folder was written
    assert fixture_model("random-toy", target) == target and (target / "config.json").is_file()
    assert fixture_model("random-toy", target) == target and len(writes) == 2
    assert not (tmp_path / "toy.partial").exists()


def test_random_sources_name_registered_fixtures(tmp_path: Path, writes: list[Path]) -> None:
    assert random_model_source("some/hub-id", tmp_path, "cpu") == "some/hub-id"
    assert random_model_source("random:toy", tmp_path, "cpu") == str(tmp_path / "toy")
    with pytest.raises(click.BadParameter, match="random:blip-base"):
        random_model_source("random:nothing", tmp_path, "cpu")
