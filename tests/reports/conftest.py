"""Real run directories with exactly chosen ranks, made by the real runner and the oracle retriever's rank file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.config import RunSpec
from harness.protocols import TurnFailure
from harness.registry import REGISTRY
from harness.runner import run_evaluation
from harness.sources import ReplaySource
from harness.types import RankBatch
from retrievers.reference import build_oracle
from tests.harness.conftest import SmallBenchmark, write_small_benchmark

SPACE = 60
ROUNDS = 10


BenchmarkFiles = SmallBenchmark


def write_benchmark(directory: Path, count: int, variant: str = "") -> BenchmarkFiles:
    """A ChatIR-format file of ``count`` dialogues over the reports' search space of ``SPACE`` images."""
    return write_small_benchmark(directory, count, space=SPACE, variant=variant)


class FailingSource(ReplaySource):
    """Replays the benchmark but fails the chosen dialogues at round 3, like a live bot whose API call failed."""

    def __init__(self, dialogues, failing: Sequence[str]) -> None:
        super().__init__(dialogues)
        self.failing = set(failing)

    def next_turns(self, states):
        turns = super().next_turns(states)
        return [
            TurnFailure("scripted failure") if state.dialogue_id in self.failing and state.round == 2 else turn
            for state, turn in zip(states, turns)
        ]


class FusedOracle:
    """An oracle that also reports ``text_only`` side ranks from a second rank file, like a fused retriever."""

    def __init__(self, rank_file: str, text_rank_file: str) -> None:
        self.main = build_oracle(rank_file=rank_file)
        self.text = build_oracle(rank_file=text_rank_file)

    def identity(self):
        return {"name": "reports-test-fused"}

    def prepare(self, search_space, context):
        self.main.prepare(search_space, context)
        self.text.prepare(search_space, context)

    def rank(self, states):
        return RankBatch(self.main.rank(states).ranks, {"text_only": self.text.rank(states).ranks})


def _write_rank_file(path: Path, ranks: np.ndarray) -> Path:
    path.write_text("".join(json.dumps({"dialogue_id": str(i), "ranks": [int(r) for r in row]}) + "\n"
                            for i, row in enumerate(ranks)))
    return path


@dataclass
class RunFactory:
    root: Path
    benchmark: BenchmarkFiles

    def make(
        self,
        name: str,
        ranks: np.ndarray | Sequence[Sequence[int]],
        *,
        benchmark: BenchmarkFiles | None = None,
        failing: Sequence[str] = (),
        text_only: np.ndarray | None = None,
        limit: int | None = None,
        query_mode: str = "join",
    ) -> Path:
        """Run the oracle through the real runner so that dialogue i gets ``ranks[i]``; returns the run directory."""
        benchmark = benchmark or self.benchmark
        matrix = np.asarray(ranks, dtype=np.int64)
        assert matrix.shape == (benchmark.count, ROUNDS + 1), matrix.shape
        rank_file = _write_rank_file(self.root / f"{name}.ranks.jsonl", matrix)
        retriever, arguments = "oracle", {"rank_file": str(rank_file)}
        if text_only is not None:
            text_file = _write_rank_file(self.root / f"{name}.text.jsonl", np.asarray(text_only))
            retriever, arguments = "reports-test-fused", {"rank_file": str(rank_file), "text_rank_file": str(text_file)}
        spec = RunSpec(
            retriever=retriever,
            retriever_args=arguments,
            benchmark=str(benchmark.dialogues),
            search_space=benchmark.search_space,
            out=self.root / "runs" / name,
            device="cpu",
            progress=False,
            limit=limit,
            query_mode=query_mode,
        )
        source = None
        if failing:
            from harness.runner import load_benchmark

            source = FailingSource(load_benchmark(spec).dialogues, failing)
        run_evaluation(spec, source=source)
        return spec.out


def register_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test-only fused retriever; the monkeypatch removes it again afterwards."""
    monkeypatch.setitem(REGISTRY._kind("retriever"), "reports-test-fused", FusedOracle)


@pytest.fixture
def run_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunFactory:
    register_fused(monkeypatch)
    return RunFactory(tmp_path, write_benchmark(tmp_path / "bench", 40))


def ranks_from(count: int = 40, seed: int = 0, good: float = 0.5) -> np.ndarray:
    """Ranks where a fraction ``good`` of the dialogues reach the top 10 at a random round and stay there; the
    others never do. Accumulated Hits@10 at the last round is then about ``100 * good``."""
    rng = np.random.default_rng(seed)
    first_hit = np.where(rng.random(count) < good, rng.integers(0, ROUNDS + 1, count), ROUNDS + 1)
    rounds = np.arange(ROUNDS + 1)[None, :]
    hit = rounds >= first_hit[:, None]
    shape = (count, ROUNDS + 1)
    return np.where(hit, rng.integers(0, 10, shape), rng.integers(10, SPACE, shape))
