"""``harness bench adafuse``: ADaFuSE training throughput (samples/s), frozen and end-to-end.

    harness bench adafuse                                        # frozen mode, synthetic 256-d embeddings, CPU
    harness bench adafuse --end-to-end --device cuda             # + full-size BLIP base text side (random:blip-base)

Frozen mode times ``Trainer.step`` (fusion forward, symmetric InfoNCE, backward, AdamW, schedule) on synthetic unit
embeddings (D = 256, batch 128 by default): the work of frozen training once embeddings are cached. End-to-end mode
times the same step with the captions re-encoded by a full-size BLIP base text encoder (random weights, the in-code
word-piece tokenizer, tokenisation included) whose text side trains too; image and target embeddings stay cached,
as in training. Both print samples/s and the implied time of one epoch over VisDial train summarised per round
(123,287 dialogues x 11 rounds); end-to-end mode also prints the fusion parameters' increase over the full-size base
and the text-side parameters that train with them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
import torch
import torch.nn.functional as F

from harness.bench.timing import items_per_second
from harness.devices import resolve_device
from harness.errors import HarnessError

if TYPE_CHECKING:
    from retrievers.adafuse.data import EmbeddedData
    from retrievers.adafuse.train import Trainer

VISDIAL_TRAIN_EXAMPLES = 123_287 * 11


def synthetic_data(count: int, dim: int, captions: list[str] | None = None, seed: int = 0) -> EmbeddedData:
    """``count`` examples of random unit embeddings, each with its own target (EmbeddedData)."""
    from retrievers.adafuse.data import EmbeddedData

    generator = torch.Generator().manual_seed(seed)
    text, image, targets = (F.normalize(torch.randn(count, dim, generator=generator), dim=-1) for _ in range(3))
    return EmbeddedData.from_tensors(text, image, targets, torch.arange(count), [str(i) for i in range(count)],
                                     captions)


def _rate(trainer: Trainer, batch_size: int, steps: int, warmup: int, device: str) -> float:
    """Training samples/s, every step on a batch of its own."""
    batches = iter([torch.arange(start * batch_size, (start + 1) * batch_size) for start in range(warmup + steps)])
    return items_per_second(lambda: trainer.step(next(batches)), batch_size, device, steps, warmup)


@click.command("adafuse")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--dim", default=256, show_default=True, type=click.IntRange(min=1),
              help="Embedding size of the synthetic frozen-mode data (BLIP: 256).")
@click.option("--steps", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--end-to-end", "end_to_end", is_flag=True, help="Also time end-to-end steps with a full BLIP base.")
@click.option("--text-tokens", default=64, show_default=True, type=click.IntRange(min=8),
              help="Caption length in word pieces for end-to-end steps (reformulated captions are short).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where --end-to-end writes random:blip-base once and reuses it (default: a temporary folder).")
def adafuse(device: str, batch_size: int, dim: int, steps: int, warmup: int, end_to_end: bool, text_tokens: int,
            cache_dir: Path | None, work_dir: Path | None) -> None:
    """Measure ADaFuSE training throughput (samples/s): frozen mode, and end-to-end with a full BLIP base."""
    from harness.config import default_cache_dir
    from retrievers.adafuse.model import parameter_increase
    from retrievers.adafuse.train import Trainer, TrainSettings
    from retrievers.dual_encoders.bench import bench_encoder, dialogue_texts

    try:
        resolved = resolve_device(device)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    count = batch_size * (steps + warmup)
    settings = TrainSettings(mode="frozen", batch_size=batch_size, device=resolved, warmup_epochs=0.0, epochs=1)
    trainer = Trainer(settings, synthetic_data(count, dim), None, steps + warmup)
    frozen = _rate(trainer, batch_size, steps, warmup, resolved)
    click.echo(f"frozen:     {frozen:,.0f} samples/s (D={dim}, batch {batch_size}, {trainer.config.parameter_count():,} "
               f"fusion parameters, {resolved}, {torch.get_num_threads()} threads); one VisDial-train epoch "
               f"({VISDIAL_TRAIN_EXAMPLES:,} examples) ~ {VISDIAL_TRAIN_EXAMPLES / frozen / 60:.1f} min")
    if not end_to_end:
        return
    with tempfile.TemporaryDirectory(prefix="harness-bench-adafuse-") as temporary:
        encoder = bench_encoder(None, resolved, "float32", text_tokens, cache_dir or default_cache_dir(),
                                work_dir or Path(temporary))
    captions = dialogue_texts(encoder.tokenizer, count, text_tokens)
    settings = TrainSettings(mode="end-to-end", batch_size=batch_size, device=resolved, warmup_epochs=0.0, epochs=1)
    trainer = Trainer(settings, synthetic_data(count, 256, captions), encoder, steps + warmup)
    rate = _rate(trainer, batch_size, steps, warmup, resolved)
    click.echo(f"end-to-end: {rate:,.1f} samples/s (BLIP base text side + fusion, random weights, {text_tokens} "
               f"tokens per caption, batch {batch_size}, float32, {resolved}); one VisDial-train epoch ~ "
               f"{VISDIAL_TRAIN_EXAMPLES / rate / 3600:.1f} h")
    text_side = sum(parameter.numel() for parameter in trainer.text_parameters.values())
    click.echo(f"            {parameter_increase(trainer.model, encoder.model).describe()}; {text_side:,} text-side "
               "parameters train too")
