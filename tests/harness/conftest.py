import json
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class SmallBenchmark:
    dialogues: Path
    search_space: Path
    count: int


def write_small_benchmark(directory: Path, count: int = 6, space: int = 40, variant: str = "") -> SmallBenchmark:
    """A ChatIR-format file of ``count`` dialogues (ids "0".."count-1") over ``space`` image paths; ``variant``
    changes the captions (and so the file's sha256)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = sorted(f"images/{index:06d}.png" for index in range(space))
    records = [
        {"img": paths[(index * 7) % space], "dialog": [f"caption {index}{variant}"] + [f"q{r}? a{r}" for r in range(1, 11)]}
        for index in range(count)
    ]
    dialogues = directory / "dialogues.json"
    dialogues.write_text(json.dumps(records))
    search_space = directory / "search_space.json"
    search_space.write_text(json.dumps(paths))
    return SmallBenchmark(dialogues, search_space, count)


@pytest.fixture
def small_benchmark(tmp_path: Path) -> SmallBenchmark:
    return write_small_benchmark(tmp_path / "bench")
