"""Shared fixtures for the retriever tests: tiny seeded models, a small search space of real PNG files.

Everything runs offline: the hub is switched off before transformers is used, and every model is built in code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.fixtures.tiny_encoders import write_tiny_blip, write_tiny_clip
from harness.protocols import RunContext
from harness.types import SearchSpace


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_blip(tmp_path_factory.mktemp("tiny-blip"), seed=0)


@pytest.fixture(scope="session")
def tiny_blip_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_blip(tmp_path_factory.mktemp("tiny-blip-seed1"), seed=1)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=0)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven PNG files of different sizes and content (noise, gradients, solid colours)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    for index in range(7):
        height, width = 40 + 13 * index, 90 - 7 * index
        if index % 3 == 0:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        elif index % 3 == 1:
            ramp = np.linspace(0, 255, width, dtype=np.float64)
            pixels = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1).astype(np.uint8)
            pixels[..., index % 3] = 255 - pixels[..., index % 3]
        else:
            pixels = np.full((height, width, 3), (index * 30, 200 - index * 20, 90), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{index:03d}.png")
    return root


@pytest.fixture(scope="session")
def search_space(image_root: Path) -> SearchSpace:
    return SearchSpace(tuple(sorted(path.name for path in image_root.glob("*.png"))), image_root)


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", cache_dir=tmp_path / "cache", seed=0, progress=False)
