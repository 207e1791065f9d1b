"""``harness bench encoder``: BLIP base dual-encoder throughput, text queries/s at dialogue length and images/s at
224 px; ``harness bench chatir``: `train chatir` throughput (pairs/s), image side frozen and trained.

    harness bench encoder --device cuda --dtype bfloat16                    # random:blip-base, no download
    harness bench encoder --model Salesforce/blip-itm-base-coco --device cuda
    harness bench chatir --device cuda                                      # pairs/s and a VisDial-train epoch

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


@click.command("chatir")
@click.option("--model", default=None, help="BLIP weights to train (default: random:blip-base, the full-size base).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--steps", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--text-tokens", default=100, show_default=True, type=click.IntRange(min=8),
              help="Prefix length in word pieces (VisDial prefixes run from a caption to about 200).")
@click.option("--image-side", "image_sides", multiple=True, type=click.Choice(["frozen", "trained"]),
              default=("frozen", "trained"), show_default=True, help="Which image sides to time.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Where {RANDOM_BLIP_BASE} is written once and reused (default: a temporary folder).")
def chatir(model: str | None, device: str, batch_size: int, steps: int, warmup: int, text_tokens: int,
           image_sides: tuple[str, ...], cache_dir: Path | None, work_dir: Path | None) -> None:
    """Measure `harness train chatir` throughput (pairs/s) with the image side frozen and trained, and project one
    epoch over VisDial train (every prefix of 123,287 dialogues)."""
    try:
        resolved = resolve_device(device)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    with tempfile.TemporaryDirectory(prefix="harness-bench-chatir-") as temporary:
        for side in image_sides:
            rate = measure_chatir_training(model, resolved, batch_size, steps, warmup, text_tokens, side,
                                           cache_dir or default_cache_dir(), work_dir or Path(temporary),
                                           Path(temporary))
            click.echo(f"image side {side:>7}: {rate:,.1f} pairs/s (BLIP base, batch {batch_size}, {text_tokens} tokens "
                       f"per prefix, float32, {resolved}); one VisDial-train epoch ({VISDIAL_TRAIN_PAIRS:,} pairs) ~ "
                       f"{VISDIAL_TRAIN_PAIRS / rate / 3600:.1f} h")


VISDIAL_TRAIN_PAIRS = 123_287 * 11  # VisDial v1.0 train: every dialogue's prefixes, caption alone to 10 rounds


def measure_chatir_training(model: str | None, device: str, batch_size: int, steps: int, warmup: int,
                            text_tokens: int, image_side: str, cache_dir: Path, work_dir: Path,
                            scratch: Path) -> float:
    """Training pairs/s of ``ChatIRTrainer.step`` on dialogue-like prefixes; each pair has its own target image (a
    224 px PNG in ``scratch``), so no batch has duplicates to mask."""
    import torch
    from PIL import Image

    from harness.protocols import RunContext
    from harness.types import SearchSpace
    from retrievers.dual_encoders.retriever import image_index
    from retrievers.dual_encoders.train_chatir import ChatIRSettings, ChatIRTrainer, PrefixPairs

    encoder = bench_encoder(model, device, "float32", text_tokens, cache_dir, work_dir)
    count = batch_size * (steps + warmup)
    images = scratch / f"images-{image_side}"
    images.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        pixels = torch.randint(0, 256, (224, 224, 3), generator=generator, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{index}.png")
    space = SearchSpace(tuple(f"{index}.png" for index in range(count)), images)
    pairs = PrefixPairs(tuple(str(index) for index in range(count)), tuple(dialogue_texts(encoder.tokenizer, count,
                                                                                         text_tokens)),
                        torch.arange(count), space)
    settings = ChatIRSettings(image_side=image_side, batch_size=batch_size, epochs=1, warmup_epochs=0.0, device=device)
    matrix = None
    if image_side == "frozen":
        context = RunContext(device=device, cache_dir=scratch / "cache", progress=False)
        matrix = torch.from_numpy(image_index(encoder, space, context, 64, "embedding bench targets")).to(device)
    trainer = ChatIRTrainer(settings, pairs, encoder, matrix, steps + warmup)  # type: ignore[arg-type]
    batches = iter([torch.arange(start * batch_size, (start + 1) * batch_size) for start in range(warmup + steps)])
    return items_per_second(lambda: trainer.step(next(batches)), batch_size, device, steps, warmup)
