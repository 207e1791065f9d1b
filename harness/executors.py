"""Executors run the evaluation of dialogue chunks. The in-process executor is the default; the Ray executor
(``harness.ray_executor``) spreads chunks over stateful workers on one machine or a cluster and streams finished
chunks back in chunk order.

A worker is made once per executor slot by ``make_worker`` (where models are loaded), then called once per chunk:

    for records in InProcessExecutor().map(make_worker, chunks):
        store.append(records)

    executor = make_executor("ray", address="auto", workers=4, gpus_per_worker=0.5)   # needs `pip install ray`

An executor that runs workers in other processes (``remote = True``) receives ``make_worker`` by pickling, so the
factory must be a picklable object that builds its components itself (``harness.runner.ChunkWorkerFactory``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from harness.errors import ConfigError

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")

EXECUTORS = ("in-process", "ray")


class WorkerFactory(Protocol, Generic[Chunk, Result]):
    def __call__(self) -> Callable[[Chunk], Result]:
        """Build one worker (load its models once) and return the function that evaluates a chunk."""


class Executor(Protocol):
    def map(self, make_worker: WorkerFactory[Chunk, Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        """Evaluate every chunk, yielding the results in chunk order as they are done."""


class InProcessExecutor:
    """One worker in this process; chunks run one after another, in order."""

    remote = False

    def map(self, make_worker: WorkerFactory[Chunk, Result], chunks: Sequence[Chunk]) -> Iterator[Result]:
        worker = make_worker()
        for chunk in chunks:
            yield worker(chunk)


def make_executor(
    name: str = "in-process",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    device: str = "auto",
) -> Executor:
    """The executor called ``name`` (in-process or ray) for models on ``device`` (the run's ``--device``). Choosing
    ``ray`` without Ray installed raises a ``HarnessError`` that says what to install; Ray is imported only here, on
    demand."""
    if name == "in-process":
        if address is not None or workers is not None or gpus_per_worker:
            raise ConfigError("--ray-address, --workers and --gpus-per-worker apply to --executor ray")
        return InProcessExecutor()
    if name == "ray":
        from harness.ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                           cpus_per_worker=cpus_per_worker, device=device)
    raise ConfigError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
