"""Command-line verbs of the retrievers package, mounted lazily by the harness CLI.

    harness convert model_base_retrieval_coco.pth --out runs/blip-cocoft [--tokenizer DIR] [--image-size 224]
    harness bench encoder --device cuda --dtype float16 [--model Salesforce/blip-itm-base-coco]

``convert`` writes an original BLIP/LAVIS/ChatIR checkpoint as a transformers directory (loadable with
``--retriever-model DIR``). ``encoder`` measures BLIP base throughput (text queries/s at dialogue length, images/s at
224 px) with random weights of the full-size architecture unless ``--model`` names real ones.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.errors import HarnessError

if TYPE_CHECKING:
    from retrievers.encoders import DualEncoder

BLIP_BASE_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 16,
    "layer_norm_eps": 1e-6,
}
BLIP_BASE_TEXT = {
    "vocab_size": 30524,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 512,
}
BLIP_BASE_PROJECTION = 256


@click.command("convert")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the transformers model, tokenizer and conversion.json into.",
)
@click.option(
    "--tokenizer", default=None, help="Tokenizer directory or hub id [default: Salesforce/blip-itm-base-coco]."
)
@click.option(
    "--image-size",
    default=224,
    show_default=True,
    type=click.IntRange(min=1),
    help="Resolution to run at; the position grid is resized to it.",
)
def convert(checkpoint: Path, out_dir: Path, tokenizer: str | None, image_size: int) -> None:
    """Convert an original BLIP / LAVIS / ChatIR checkpoint into a transformers directory."""
    from retrievers.convert import DEFAULT_TOKENIZER, convert_checkpoint

    try:
        written = convert_checkpoint(checkpoint, out_dir, tokenizer or DEFAULT_TOKENIZER, image_size)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    record = json.loads((written / "conversion.json").read_text())
    dropped = ", ".join(f"{count} {group}" for group, count in record["dropped"].items()) or "nothing"
    click.echo(
        f"wrote {written} ({record['image_size']} px; dropped {dropped}); use it with --retriever-model {written}"
    )


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
) -> None:
    """Measure BLIP base dual-encoder throughput: text queries/s and images/s."""
    import torch

    from harness.config import default_cache_dir
    from harness.devices import resolve_device

    try:
        resolved = resolve_device(device)
        blip = _benchmark_encoder(model, resolved, dtype, text_tokens, cache_dir or default_cache_dir())
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    texts = _dialogue_texts(text_batch_size, text_tokens)
    lengths = blip.tokenizer(texts, truncation=True, max_length=text_tokens)["input_ids"]
    pixels = torch.randn(image_batch_size, 3, 224, 224)
    text_rate = _throughput(lambda: blip.encode_texts(texts), text_batch_size, warmup, iterations, resolved)
    image_rate = _throughput(lambda: blip.encode_images(pixels), image_batch_size, warmup, iterations, resolved)
    source = model or "random BLIP base weights"
    click.echo(f"encoder: BlipForImageTextRetrieval ({source}) on {resolved}, {dtype}")
    click.echo(
        f"text:   {text_rate:,.1f} queries/s (batch {text_batch_size}, "
        f"{sum(map(len, lengths)) / len(lengths):.0f} tokens per query, tokenisation included)"
    )
    click.echo(f"images: {image_rate:,.1f} images/s (batch {image_batch_size}, 224 px, preprocessing excluded)")


def _benchmark_encoder(model: str | None, device: str, dtype: str, text_tokens: int, cache_dir: Path) -> DualEncoder:
    """The encoder to time: ``model`` loaded as a retriever would, or BLIP base with random weights."""
    from transformers import BlipForImageTextRetrieval

    from retrievers.encoders import BlipDualEncoder
    from retrievers.loading import EncoderSettings, load_encoder
    from retrievers.preprocess import BLIP_224
    from retrievers.tiny import build_bert_tokenizer

    if model is not None:
        settings = EncoderSettings("blip", model, BLIP_224, text_tokens, dtype=dtype)
        return load_encoder(settings, device, cache_dir)
    # The in-code word-piece vocabulary tokenises like BERT's (its ids all fit BLIP's 30,524-row embedding), so
    # the timing includes real tokenisation without needing the hub.
    return BlipDualEncoder(
        BlipForImageTextRetrieval(blip_base_config()), build_bert_tokenizer(), BLIP_224, text_tokens, dtype, device
    )


def blip_base_config() -> Any:
    from transformers import BlipConfig

    return BlipConfig(
        vision_config=BLIP_BASE_VISION, text_config=BLIP_BASE_TEXT, image_text_hidden_size=BLIP_BASE_PROJECTION
    )


def write_random_blip_base(directory: Path, device: str = "cpu") -> Path:
    """BLIP base (ViT-B/16, BERT base, 256-d projections) with random weights and the in-code tokenizer, saved as a
    transformers directory that any BLIP preset loads (``harness bench stages --random-full-size``)."""
    import torch
    from transformers import BlipForImageTextRetrieval

    from retrievers.tiny import build_bert_tokenizer

    with torch.device(device if device.startswith("cuda") else "cpu"):
        model = BlipForImageTextRetrieval(blip_base_config())
    model.save_pretrained(directory)
    build_bert_tokenizer().save_pretrained(directory)
    return Path(directory)


def _dialogue_texts(count: int, tokens: int) -> list[str]:
    """``count`` distinct dialogue-like texts of about ``tokens`` word pieces: a caption then question-answer turns."""
    from retrievers.tiny import COMMON_WORDS

    texts = []
    for index in range(count):
        words = itertools.islice(itertools.cycle(COMMON_WORDS), index, None)
        turns = [" ".join(itertools.islice(words, 6)) + "? " + next(words) for _ in range(tokens // 8)]
        texts.append(", ".join(turns))
    return texts


def _throughput(step: Callable[[], object], items: int, warmup: int, iterations: int, device: str) -> float:
    """Items per second over ``iterations`` calls of ``step`` after ``warmup`` untimed ones."""
    import torch

    def synchronise() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    synchronise()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    synchronise()
    return items * iterations / (time.perf_counter() - start)
