"""The synthetic benchmark: real PNGs, deterministic bytes, and files the ChatIR loader accepts."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.chatir import load_chatir_benchmark
from benchmarks.synthetic import write_synthetic_benchmark
from harness.registry import REGISTRY


def digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_writes_a_loadable_benchmark_quickly(tmp_path: Path) -> None:
    start = time.perf_counter()
    synthetic = write_synthetic_benchmark(tmp_path)
    assert time.perf_counter() - start < 1.0
    benchmark = load_chatir_benchmark(synthetic.dialogue_file, synthetic.search_space_file, synthetic.image_root)
    assert len(benchmark) == 12 and len(benchmark.search_space) == 24
    assert list(benchmark.search_space.paths) == sorted(benchmark.search_space.paths)
    assert benchmark.search_space.paths[0] == "synthetic/000000000001.png"
    assert len({dialogue.target for dialogue in benchmark.dialogues}) == 12
    for dialogue in benchmark.dialogues:
        assert len(dialogue.turns) == 11
        assert all(turn == turn.lower() and "? " in turn for turn in dialogue.turns[1:])
        with Image.open(benchmark.search_space.resolve(dialogue.target)) as image:
            assert (image.format, image.size) == ("PNG", (64, 64))


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    write_synthetic_benchmark(tmp_path / "a", seed=3)
    write_synthetic_benchmark(tmp_path / "b", seed=3)
    write_synthetic_benchmark(tmp_path / "c", seed=4)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "c")


def test_images_differ_and_dialogue_matches_its_image(tmp_path: Path) -> None:
    synthetic = write_synthetic_benchmark(tmp_path, dialogues=3, distractors=5, rounds=4, seed=1)
    image_digests = [digest for name, digest in digests(tmp_path).items() if name.endswith(".png")]
    assert len(set(image_digests)) == 8
    benchmark = synthetic.load()
    assert benchmark.name == "synthetic" and all(len(d.turns) == 5 for d in benchmark.dialogues)
    dialogue = benchmark.dialogues[0]
    shape = dialogue.caption.split()[1]
    with Image.open(benchmark.search_space.resolve(dialogue.target)) as image:
        assert image.getpixel((0, 0)) == (128, 128, 128)
    assert shape in ("circle", "square", "triangle")


def test_registered_as_fixture_and_checks_arguments(tmp_path: Path) -> None:
    assert REGISTRY.resolve("fixture", "synthetic-benchmark") is write_synthetic_benchmark
    with pytest.raises(ValueError, match="at most 240"):
        write_synthetic_benchmark(tmp_path, dialogues=200, distractors=41)
    with pytest.raises(ValueError, match="rounds must be between 0 and 10"):
        write_synthetic_benchmark(tmp_path, rounds=11)
