"""``harness bench dar``: images/s of DAR's generation path versus a naive one-prompt-at-a-time diffusers loop, and
the reuse figures of a pair of DAR runs.

    harness bench dar                                              # a tiny SD3 pipeline on the CPU, 64 px, 4 steps
    harness bench dar --model DIR --device cuda --steps 28 --size 1024 --batch-size 8 --images 32
    harness bench dar --model random:sd3-medium --device cuda --images 32 --batch-size 8   # no download needed

Both paths use the same loaded pipeline, steps, guidance, size, dtype and seeds. Ours runs sub-batches of
``--batch-size`` with one generator per image and writes every image to the content-addressed cache (its time
includes the PNG writes); the naive loop calls the pipeline once per prompt. The run pair is two tiny DAR runs
through ``run_evaluation``, as ``harness run --retriever dar`` makes them: the paper variant (R1 and R2 by a tiny
Flan-T5, K = 3 images per round from the bench's pipeline and settings) over the same ``--pair-dialogues`` synthetic
dialogues (rounds 0 and 1), with two base encoders (tiny BLIPs of other weights) and one cache, started cold under
``work-dir/run-pair``; each prints the images it generated, its image cache hits and its LLM calls (the second must
draw nothing and call nothing). On CUDA the figures include s/image and the fraction of the GPU's bf16
peak reached, from ``--tflop-per-image`` (500 for SD3-Medium at 1024 px, 28 steps, classifier-free guidance) or,
with ``--count-flops``, from a FLOP count of one image at the chosen settings.

``random:sd3-medium`` writes the SD3-Medium architecture at full size with random weights (T5 left out, its
embeddings zeros, as the pipeline allows: the transformer's work per step is unchanged) into ``--work-dir``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
import torch

from harness.bench.models import fixture_model, random_model_source
from harness.bench.timing import timed
from harness.config import RunSpec
from harness.devices import resolve_device
from harness.image_cache import ImageCache
from harness.registry import REGISTRY
from harness.runner import run_evaluation
from retrievers.dar.diffusion import DTYPES, DiffusionGenerator, DiffusionSettings
from retrievers.dar.retriever import USAGE_FIELD

RANDOM_SD3_MEDIUM = "random:sd3-medium"
_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")
_THINGS = ("dog", "cat", "bus", "horse", "bicycle", "teapot", "kite", "boat", "pizza", "clock")
_PLACES = ("on a beach", "in a kitchen", "on a city street", "in a field", "under a tree", "at night")


def bench_prompts(count: int) -> list[str]:
    """``count`` distinct, varied captions."""
    prompts = [f"a {colour} {thing} {place}" for place in _PLACES for thing in _THINGS for colour in _COLOURS]
    return [prompts[index % len(prompts)] + ("" if index < len(prompts) else f", view {index}") for index in range(count)]


@click.command("dar")
@click.option("--model", default=None, help=f"Pipeline directory, hub id or {RANDOM_SD3_MEDIUM}; default: a tiny SD3.")
@click.option("--family", default="auto", show_default=True, type=click.Choice(["auto", "sd3", "sd21", "sdxl-turbo"]))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", default="auto", show_default=True, type=click.Choice(["auto", *DTYPES]))
@click.option("--steps", type=int, default=None, help="Denoising steps (default: 4 on the tiny pipeline, else the family's).")
@click.option("--size", type=int, default=None, help="Image height and width (default: 64 tiny, else the family's).")
@click.option("--guidance", type=float, default=None, help="Guidance scale (default: the family's).")
@click.option("--batch-size", default=4, show_default=True, help="Images per pipeline call on our path.")
@click.option("--images", default=8, show_default=True, help="Images per timed pass.")
@click.option("--pair-dialogues", default=2, show_default=True, type=click.IntRange(min=1),
              help="Dialogues of each DAR run of the run pair (2 rounds, 3 images per round).")
@click.option("--tflop-per-image", type=float, default=500.0, show_default=True,
              help="Work per image for the peak fraction on CUDA (SD3-Medium, 1024 px, 28 steps, CFG: about 500).")
@click.option("--count-flops", is_flag=True, help="Count one image's FLOPs instead of using --tflop-per-image.")
@click.option("--peak-tflops", type=float, default=989.0, show_default=True,
              help="The GPU's dense bf16 peak (H100 SXM: 989).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Where the tiny or random pipeline and the bench cache go (default: a temporary folder).")
def dar(model: str | None, family: str, device: str, dtype: str, steps: int | None, size: int | None,
        guidance: float | None, batch_size: int, images: int, pair_dialogues: int, tflop_per_image: float,
        count_flops: bool, peak_tflops: float, work_dir: Path | None) -> None:
    """Time DAR's image generation (batched, per-image generators, cached) against a naive diffusers loop; count
    the reuse of a pair of DAR runs."""
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="dar-bench-") as temporary:
        work = Path(work_dir) if work_dir is not None else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        source, tiny = _pipeline_source(model, work, device)
        settings = DiffusionSettings(
            model=source, family=family, dtype=dtype, batch_size=batch_size, guidance_scale=guidance,
            steps=steps if steps is not None else (4 if tiny else None),
            height=size if size is not None else (64 if tiny else None),
            width=size if size is not None else (64 if tiny else None),
        )
        _run_bench(settings, device, images, work / "cache", tflop_per_image, count_flops, peak_tflops)
        _run_pair(settings, device, pair_dialogues, work / "run-pair")


def _pipeline_source(model: str | None, work: Path, device: str) -> tuple[str, bool]:
    """The pipeline folder or hub id to time, and whether it is the default tiny SD3."""
    if model is None:
        return str(fixture_model("tiny-sd3", work / "tiny-sd3")), True
    return random_model_source(model, work, device), False


def _run_bench(settings: DiffusionSettings, device: str, count: int, cache_dir: Path, tflop_per_image: float,
               count_flops: bool, peak_tflops: float) -> None:
    generator = DiffusionGenerator(settings, device=device, progress=False)
    resolved = generator.settings
    load_time, pipeline = timed(generator.load, device)
    prompts = bench_prompts(count)
    seeds = [request.seed for request in generator.requests(prompts)]
    call = {"num_inference_steps": resolved.steps, "guidance_scale": resolved.guidance_scale,
            "height": resolved.height, "width": resolved.width}
    if resolved.negative_prompt is not None:
        call["negative_prompt"] = resolved.negative_prompt

    def naive() -> list:
        images = []
        for prompt, seed in zip(prompts, seeds):
            with torch.inference_mode():
                output = pipeline(prompt=prompt, generator=torch.Generator("cpu").manual_seed(seed), **call)
            images.append(output.images[0])
        return images

    click.echo(f"{type(pipeline).__name__} from {resolved.model}: {resolved.steps} steps, guidance "
               f"{resolved.guidance_scale}, {resolved.height}x{resolved.width} px, {generator.dtype} on {device} "
               f"(torch threads {torch.get_num_threads()}); loaded in {load_time:.1f} s")
    # Warm-up outside the timings: one full batch on our path, one image on the naive path.
    generator.generate(prompts[:1] * resolved.batch_size, seeds[:1] * resolved.batch_size)
    with torch.inference_mode():
        pipeline(prompt=prompts[0], generator=torch.Generator("cpu").manual_seed(seeds[0]), **call)

    ours_time, ours_images = timed(lambda: generator.cached_generate(ImageCache(cache_dir), prompts), device)
    naive_time, naive_images = timed(naive, device)

    tflop = _count_tflop(generator, prompts[0], seeds[0]) if count_flops else tflop_per_image
    rows = [("naive loop, one prompt per call", naive_time),
            (f"ours, batches of {resolved.batch_size}, cached", ours_time)]
    for name, seconds in rows:
        line = f"{name:36s} {count / seconds:8.3f} images/s  ({seconds / count:.3f} s/image, {count} images)"
        if device.startswith("cuda"):
            reached = tflop * count / seconds
            line += f"  {reached:.0f} TFLOP/s = {reached / peak_tflops:.1%} of {peak_tflops:.0f} bf16 peak"
        click.echo(line)
    click.echo(f"speed-up over the naive loop: {naive_time / ours_time:.2f}x")
    if device.startswith("cuda"):
        origin = "counted" if count_flops else "assumed (--tflop-per-image)"
        click.echo(f"work per image: {tflop:.1f} TFLOP, {origin}")
    difference = max(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max()
                     for a, b in zip(ours_images, naive_images))
    click.echo(f"largest pixel difference ours vs naive, same seeds: {difference} (batch-size rounding only)")


def _run_pair(settings: DiffusionSettings, device: str, dialogues: int, root: Path) -> None:
    """Two DAR runs over the same prompts with other base encoders, sharing one cache (see the module doc)."""
    shutil.rmtree(root, ignore_errors=True)  # cold, so the first run's figures are those of a first run
    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(root / "benchmark", dialogues=dialogues,
                                                                  distractors=2, rounds=1)
    arguments = {
        "variant": "paper", "base": "cocoft", "llm": "hf-seq2seq",
        "llm_args": {"model": str(fixture_model("tiny-flan-t5", root / "tiny-flan-t5")), "max_new_tokens": 8},
        "diffusion_model": settings.model, "diffusion": settings.family, "steps": settings.steps,
        "guidance_scale": settings.guidance_scale, "size": settings.height, "diffusion_dtype": settings.dtype,
        "diffusion_batch_size": settings.batch_size,
    }
    click.echo(f"DAR run pair (paper variant, K = 3, tiny Flan-T5 for R1 and R2) over the same {dialogues} "
               "dialogues x 2 rounds, one cache:")
    for seed, name in ((0, "first run"), (1, "second run, another base encoder")):
        spec = RunSpec(
            retriever="dar", retriever_args={**arguments, "model": str(fixture_model("tiny-blip", root / f"blip-{seed}", seed=seed))},
            benchmark=str(synthetic.dialogue_file), search_space=synthetic.search_space_file,
            image_root=synthetic.image_root, out=root / f"run-{seed}", rounds=1, device=device,
            cache_dir=root / "cache", progress=False,
        )
        with _dar_usage() as usage:
            seconds, _ = timed(lambda spec=spec: run_evaluation(spec), device)
        click.echo(f"  {name:34s} {usage['images_generated']:4d} images generated, {usage['image_cache_hits']:4d} "
                   f"image cache hits, {usage['llm_calls']:4d} LLM calls ({seconds:.2f} s)")


@contextmanager
def _dar_usage() -> Iterator[dict[str, int]]:
    """The counts (``DARRetriever.usage``) that DAR logs after each ranked batch inside the block, the last ones
    kept; the retriever is built inside ``run_evaluation``, so its log is where a run's counts can be read."""
    usage = {"images_generated": 0, "image_cache_hits": 0, "llm_calls": 0}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            usage.update(getattr(record, USAGE_FIELD, {}))

    logger = logging.getLogger("harness.dar")
    handler, level, propagate = Keep(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the DEBUG lines feed the figures, not the console
    try:
        yield usage
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _count_tflop(generator: DiffusionGenerator, prompt: str, seed: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        generator._run(generator.pipeline, [prompt], [seed])
    return counter.get_total_flops() / 1e12
