"""Executors run the evaluation of dialogue chunks. The in-process executor is the default; others (a Ray executor
spreading chunks over GPU workers) implement the same ``map`` and stream finished chunks back in any order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


class Executor(Protocol):
    def map(self, work: Callable[[Chunk], Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        """Apply ``work`` to every chunk, yielding each result as soon as it is done."""


class InProcessExecutor:
    """Runs chunks one after another in this process (models are loaded once, here)."""

    def map(self, work: Callable[[Chunk], Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        for chunk in chunks:
            yield work(chunk)
