"""``harness bench ranking``: exact ranking by counting higher (and earlier tied) scores versus a stable argsort.

    harness bench ranking                      # 2,064 queries x 50,000 images x 256 dims on the CPU
    harness bench ranking --device cuda --repeats 5

Both methods need the same float32 score matrix (one matrix product per chunk of queries), so the figures are given
for the ranking step alone (scores in hand -> target ranks; timed on one chunk, scaled to the round) and end to end
(embeddings in hand -> target ranks). Both go chunk by chunk, so memory stays at a chunk's scores whatever the
search-space size, and both rank the same products, so they must agree on every query.
"""

from __future__ import annotations

import click
import torch

from harness.bench.timing import mean_seconds
from harness.devices import resolve_device
from harness.ranking import argsort_from_scores, argsort_ranks, capped_chunk, rank_targets, ranks_from_scores


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
    # The ranking step alone is timed on one chunk of queries and scaled to the round: a whole round's score
    # matrix (queries x images floats) does not fit in memory for large search spaces.
    chunk = min(capped_chunk(images), queries)  # the chunk a run over this search space uses
    scores = query_matrix[:chunk] @ image_matrix.T
    scale = queries / chunk

    ours = rank_targets(query_matrix, image_matrix, targets)
    agree = sum(a == b for a, b in zip(ours.ranks, argsort_ranks(query_matrix, image_matrix, targets)))
    matmul = scale * mean_seconds(lambda: query_matrix[:chunk] @ image_matrix.T, device, repeats)
    count_step = scale * mean_seconds(lambda: ranks_from_scores(scores, targets[:chunk]), device, repeats)
    sort_step = scale * mean_seconds(lambda: argsort_from_scores(scores, targets[:chunk]), device, repeats)
    count_total = mean_seconds(lambda: rank_targets(query_matrix, image_matrix, targets), device, repeats)
    sort_total = mean_seconds(lambda: argsort_ranks(query_matrix, image_matrix, targets), device, repeats)

    click.echo(f"device {device}, torch threads {torch.get_num_threads()}: {queries} queries x {images} images x {dim}")
    click.echo(f"score matrix product (shared by both):  {matmul:8.4f} s")
    click.echo(f"ranking step, count (stable tie rule):  {count_step:8.4f} s")
    click.echo(f"ranking step, stable argsort:           {sort_step:8.4f} s   -> count is {sort_step / count_step:.1f}x faster")
    click.echo(f"end to end per round, ours (chunked):   {count_total:8.4f} s   ({queries / count_total:,.0f} queries/s)")
    click.echo(f"end to end per round, argsort:          {sort_total:8.4f} s   ({queries / sort_total:,.0f} queries/s)"
               f"   -> ours is {sort_total / count_total:.1f}x faster")
    click.echo(f"identical ranks for {agree}/{queries} queries; targets tied with another image: {sum(ours.tied)}")
