"""Executors run the evaluation of dialogue chunks. The in-process executor is the default; others (a Ray executor
spreading chunks over GPU workers) implement the same ``map`` and stream finished chunks back in any order.

A worker is made once per executor slot by ``make_worker`` (where models are loaded), then called once per chunk:

    for records in InProcessExecutor().map(make_worker, chunks):
        store.append(records)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


class WorkerFactory(Protocol, Generic[Chunk, Result]):
    def __call__(self) -> Callable[[Chunk], Result]:
        """Build one worker (load its models once) and return the function that evaluates a chunk."""


class Executor(Protocol):
    def map(self, make_worker: WorkerFactory[Chunk, Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        """Evaluate every chunk, yielding each result as soon as it is done."""


class InProcessExecutor:
    """One worker in this process; chunks run one after another."""

    def map(self, make_worker: WorkerFactory[Chunk, Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        worker = make_worker()
        for chunk in chunks:
            yield worker(chunk)
