"""``harness bench ranking``: exact ranking by counting higher scores versus the public code's full argsort.

    harness bench ranking                      # 2,064 queries x 50,000 images x 256 dims on the CPU
    harness bench ranking --device cuda --repeats 5
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click
import torch

from harness.devices import resolve_device
from harness.ranking import argsort_ranks, target_ranks


def _time(function: Callable[[], list[int]], device: str, repeats: int) -> tuple[float, list[int]]:
    result = function()  # warm-up (and the result to compare)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, result


@click.command("ranking")
@click.option("--queries", default=2064, show_default=True, help="Queries (one benchmark round).")
@click.option("--images", default=50000, show_default=True, help="Search-space size.")
@click.option("--dim", default=256, show_default=True, help="Embedding width.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--repeats", default=3, show_default=True, help="Timed repetitions after one warm-up.")
@click.option("--seed", default=0, show_default=True)
def ranking(queries: int, images: int, dim: int, device: str, repeats: int, seed: int) -> None:
    """Time one round of ranking (all queries against the whole search space) both ways and check they agree."""
    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    query_matrix = torch.nn.functional.normalize(torch.randn(queries, dim, generator=generator), dim=1).to(device)
    image_matrix = torch.nn.functional.normalize(torch.randn(images, dim, generator=generator), dim=1).to(device)
    targets = torch.randint(images, (queries,), generator=generator).tolist()
    ours, ours_ranks = _time(lambda: target_ranks(query_matrix, image_matrix, targets), device, repeats)
    full, full_ranks = _time(lambda: argsort_ranks(query_matrix, image_matrix, targets), device, repeats)
    agree = sum(a == b for a, b in zip(ours_ranks, full_ranks))
    click.echo(f"device {device}, torch threads {torch.get_num_threads()}: {queries} queries x {images} images x {dim}")
    click.echo(f"count-higher ranking: {ours:.4f} s/round  ({queries / ours:,.0f} queries/s)")
    click.echo(f"full argsort ranking: {full:.4f} s/round  ({queries / full:,.0f} queries/s)")
    click.echo(f"speed-up: {full / ours:.1f}x; identical ranks for {agree}/{queries} queries")
