"""``harness bench ranking``: exact ranking by counting higher scores versus the public code's full argsort.

    harness bench ranking                      # 2,064 queries x 50,000 images x 256 dims on the CPU
    harness bench ranking --device cuda --repeats 5

Both methods need the same score matrix (one matrix product per round), so the figures are given for the ranking
step alone (scores in hand -> target ranks) and end to end (embeddings in hand -> target ranks).
"""

from __future__ import annotations

import click
import torch

from harness.bench.timing import mean_seconds
from harness.devices import resolve_device
from harness.ranking import argsort_ranks, ranks_from_scores, target_ranks


def _argsort_from_scores(scores: torch.Tensor, targets: list[int]) -> list[int]:
    order = torch.argsort(scores, dim=1, descending=True)
    return (order == torch.as_tensor(targets, device=scores.device).unsqueeze(1)).nonzero()[:, 1].tolist()


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
    scores = query_matrix @ image_matrix.T

    ours = target_ranks(query_matrix, image_matrix, targets)
    agree = sum(a == b for a, b in zip(ours, argsort_ranks(query_matrix, image_matrix, targets)))
    matmul = mean_seconds(lambda: query_matrix @ image_matrix.T, device, repeats)
    count_step = mean_seconds(lambda: ranks_from_scores(scores, targets), device, repeats)
    sort_step = mean_seconds(lambda: _argsort_from_scores(scores, targets), device, repeats)
    count_total = mean_seconds(lambda: target_ranks(query_matrix, image_matrix, targets), device, repeats)
    sort_total = mean_seconds(lambda: argsort_ranks(query_matrix, image_matrix, targets), device, repeats)

    click.echo(f"device {device}, torch threads {torch.get_num_threads()}: {queries} queries x {images} images x {dim}")
    click.echo(f"score matrix product (shared by both):  {matmul:8.4f} s")
    click.echo(f"ranking step, count strictly higher:    {count_step:8.4f} s")
    click.echo(f"ranking step, full argsort:             {sort_step:8.4f} s   -> count is {sort_step / count_step:.1f}x faster")
    click.echo(f"end to end per round, ours (chunked):   {count_total:8.4f} s   ({queries / count_total:,.0f} queries/s)")
    click.echo(f"end to end per round, argsort:          {sort_total:8.4f} s   ({queries / sort_total:,.0f} queries/s)"
               f"   -> ours is {sort_total / count_total:.1f}x faster")
    click.echo(f"identical ranks for {agree}/{queries} queries")
