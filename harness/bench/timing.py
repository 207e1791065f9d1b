"""Timing helpers every bench uses: wall time of GPU work is only read after the device has finished it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def synchronise(device: str) -> None:
    """Wait for the work queued on a CUDA ``device``; nothing to wait for on the CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed(function: Callable[[], Result], device: str) -> tuple[float, Result]:
    """Seconds one call of ``function`` takes on ``device``, and what it returned."""
    synchronise(device)
    start = time.perf_counter()
    result = function()
    synchronise(device)
    return time.perf_counter() - start, result


def mean_seconds(function: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> float:
    """Mean seconds per call over ``repeats`` calls, after ``warmup`` untimed ones."""
    def run() -> None:
        for _ in range(repeats):
            function()  # each result is dropped before the next call, as a real loop would

    for _ in range(warmup):
        function()
    seconds, _ = timed(run, device)
    return seconds / repeats


def items_per_second(step: Callable[[], object], items: int, device: str, iterations: int, warmup: int) -> float:
    """Throughput of ``step``, which handles ``items`` per call."""
    return items / mean_seconds(step, device, iterations, warmup)
