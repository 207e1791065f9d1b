"""Shared fixtures for the simulator tests: a few PNG images and a small benchmark over them, and a run context (the
tiny bot checkpoints are in tests/conftest.py).

Everything runs offline: the hub is switched off, and every model and tokenizer is built in code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.protocols import RunContext
from harness.types import Benchmark, Dialogue, SearchSpace


@pytest.fixture(scope="session")
def bot_image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five PNG files of different sizes and content (noise, a gradient, solid colours)."""
    root = tmp_path_factory.mktemp("bot-images")
    rng = np.random.default_rng(3)
    for index in range(5):
        height, width = 30 + 11 * index, 70 - 9 * index
        if index % 3 == 0:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        elif index % 3 == 1:
            ramp = np.linspace(0, 255, width).astype(np.uint8)
            pixels = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)
        else:
            pixels = np.full((height, width, 3), (index * 40, 180 - index * 30, 90), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{index}.png")
    return root


@pytest.fixture(scope="session")
def bot_benchmark(bot_image_root: Path) -> Benchmark:
    """Five dialogues (one per image) with 0 to 2 recorded rounds and captions of different lengths."""
    paths = tuple(sorted(path.name for path in bot_image_root.glob("*.png")))
    turns = [
        ("a red bus on a street",),
        ("a dog", "is it big? yes"),
        ("two people sitting at a table with food and cups", "is it indoors? yes", "how many plates? three"),
        ("a blue square on a gray background", "where is it? on the left"),
        ("a picture of a tree",),
    ]
    dialogues = tuple(Dialogue(f"d{index}", path, turns[index]) for index, path in enumerate(paths))
    return Benchmark("bots-test", dialogues, SearchSpace(paths, bot_image_root))


@pytest.fixture
def bot_context(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", cache_dir=tmp_path / "cache", seed=0, progress=False)
