"""``harness bench encoder``: BLIP base dual-encoder throughput, text queries/s at dialogue length and images/s at
224 px.

    harness bench encoder --device cuda --dtype bfloat16                    # random:blip-base, no download
    harness bench encoder --model Salesforce/blip-itm-base-coco --device cuda

Without ``--model`` it times the full-size BLIP base architecture with random weights (fixture ``random-blip-base``,
written once into ``--work-dir``), loaded through the same path as a user's checkpoint, with the in-code word-piece
tokenizer, so the text figures include real tokenisation.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.bench.models import quiet_transformers, random_model_source
from harness.bench.timing import items_per_second
from harness.config import default_cache_dir
from harness.devices import resolve_device
from harness.errors import HarnessError

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

RANDOM_BLIP_BASE = "random:blip-base"
DIALOGUE_WORDS = 500  # the first alphabetic words of the tokenizer's vocabulary that bench texts are made of


@click.command("encoder")
@click.option("--model", default=None, help="Weights to load (checkpoint, directory or hub id) instead of random ones.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"]))
@click.option("--text-batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--image-batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--text-tokens",
    default=200,
    show_default=True,
    type=click.IntRange(min=8),
    help="Query length in tokens (ChatIR truncates dialogues at 200).",
)
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--iterations", default=5, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a --model URL is downloaded to (default $HARNESS_CACHE or ~/.cache/itir-harness).",
)
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Where {RANDOM_BLIP_BASE} is written once and reused (default: a temporary folder).")
def encoder(
    model: str | None,
    device: str,
    dtype: str,
    text_batch_size: int,
    image_batch_size: int,
    text_tokens: int,
    warmup: int,
    iterations: int,
    cache_dir: Path | None,
    work_dir: Path | None,
) -> None:
    """Measure BLIP base dual-encoder throughput: text queries/s and images/s."""
    import torch

    try:
        resolved = resolve_device(device)
        with tempfile.TemporaryDirectory(prefix="harness-bench-encoder-") as temporary:
            blip = bench_encoder(model, resolved, dtype, text_tokens, cache_dir or default_cache_dir(),
                                 work_dir or Path(temporary))
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    texts = dialogue_texts(blip.tokenizer, text_batch_size, text_tokens)
    lengths = blip.tokenizer(texts, truncation=True, max_length=text_tokens)["input_ids"]
    pixels = torch.randn(image_batch_size, 3, 224, 224)
    text_rate = items_per_second(lambda: blip.encode_texts(texts), text_batch_size, resolved, iterations, warmup)
    image_rate = items_per_second(lambda: blip.encode_images(pixels), image_batch_size, resolved, iterations, warmup)
    source = model or "random BLIP base weights"
    click.echo(f"encoder: BlipForImageTextRetrieval ({source}) on {resolved}, {dtype}")
    click.echo(
        f"text:   {text_rate:,.1f} queries/s (batch {text_batch_size}, "
        f"{sum(map(len, lengths)) / len(lengths):.0f} tokens per query, tokenisation included)"
    )
    click.echo(f"images: {image_rate:,.1f} images/s (batch {image_batch_size}, 224 px, preprocessing excluded)")


def bench_encoder(model: str | None, device: str, dtype: str, text_tokens: int, cache_dir: Path,
                  work_dir: Path) -> DualEncoder:
    """The BLIP encoder to time: ``model`` (a checkpoint, directory, hub id or ``random:blip-base``, the default,
    written into ``work_dir``) loaded as a retriever loads it."""
    from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
    from retrievers.dual_encoders.preprocess import BLIP_224

    source = random_model_source(model or RANDOM_BLIP_BASE, work_dir, device)
    with quiet_transformers():
        return load_encoder(EncoderSettings("blip", source, BLIP_224, text_tokens, dtype=dtype), device, cache_dir,
                            progress=False)


def dialogue_texts(tokenizer: Any, count: int, tokens: int) -> list[str]:
    """``count`` distinct dialogue-like texts of about ``tokens`` word pieces: question-answer turns made of the
    whole words of ``tokenizer``'s vocabulary (so that the texts tokenise into words, not characters)."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    words = [token for token, _ in vocabulary if token.isascii() and token.isalpha() and len(token) > 1]
    words = words[:DIALOGUE_WORDS]
    texts = []
    for index in range(count):
        stream = itertools.islice(itertools.cycle(words), index, None)
        turns = [" ".join(itertools.islice(stream, 6)) + "? " + next(stream) for _ in range(tokens // 8)]
        texts.append(", ".join(turns))
    return texts
