"""``harness bench plugir``: what PlugIR's questioner costs per round, split by step, in the runner's live loop.

    harness bench plugir                                  # tiny BLIP + tiny Flan-T5, 16 dialogues x 3 rounds, 600 images
    harness bench plugir --dialogues 64 --rounds 10 --images 5000 --top 500
    harness bench plugir --retriever-model random:blip-base --llm-model random:flan-t5-xl --device cuda --dtype bf16 \\
                         --work-dir /tmp/bench-plugir

The loop is the runner's own (``harness.runner.evaluate_chunk``): every round one batched call per step over all
running dialogues, the retriever ranking in between. The search space is ``--images`` synthetic PNGs, each with its
own caption (the candidate captions); the answerer is the scripted one, so the figures are the questioner's and the
retriever's. Per round it prints the LLM calls of each step (cache misses: a question asked again gets its filter
answer from the cache, as in a real run), the seconds of each step (LLM reconstruction, questions, filter answers;
text scoring of c, of the candidates' captions and of the questions; caption entropies; k-means), the retriever's
seconds and the LLM calls per dialogue. Random weights write no question mark and never answer a filter question
"uncertain", so every draw is kept and every question redrawn: the figures are PlugIR's most expensive path
(1 + q_n x 3 x 2 + 2 calls per dialogue and round before the cache). ``random:`` models are the published full-size
architectures with random weights, written once into ``--work-dir``.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click
import torch
from PIL import Image

from harness.bench.models import fixture_model, quiet_transformers, random_model_source
from harness.devices import resolve_device
from harness.protocols import RunContext
from harness.registry import REGISTRY
from harness.runner import connect_retrieval, evaluate_chunk
from harness.sources import LiveSource
from harness.types import Benchmark, Dialogue, SearchSpace
from simulators.plugir.questioner import build_plugir

SYNTHETIC_IMAGES = 240  # distinct drawings the synthetic fixture makes; more images are marked copies of them
STEP_SECONDS = ("reconstruct", "llm_questions", "llm_filter", "text_scoring", "entropy", "kmeans")


def bench_space(directory: Path, images: int, dialogues: int) -> tuple[Benchmark, Path]:
    """``images`` distinct PNGs (synthetic drawings, each copy marked by a pixel pattern) with one caption each, and
    caption-only dialogues over the first ``dialogues`` of them."""
    drawn = REGISTRY.resolve("fixture", "synthetic-benchmark")(directory / "drawn", dialogues=1,
                                                                 distractors=SYNTHETIC_IMAGES - 1, rounds=0)
    descriptions = json.loads(drawn.captions_file.read_text())
    sources = sorted(descriptions)
    paths, captions = [], {}
    for index in range(images):
        source = sources[index % len(sources)]
        image = Image.open(drawn.image_root / source).convert("RGB")
        image.putpixel((index % 64, (index // 64) % 64), (index % 251, (index * 7) % 251, (index * 13) % 251))
        path = f"images/{index:06d}.png"
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(directory / path)
        paths.append(path)
        captions[path] = f"{descriptions[source]}, picture {index}"
    captions_file = directory / "captions.json"
    captions_file.write_text(json.dumps(captions))
    records = tuple(Dialogue(str(index), paths[index], (captions[paths[index]].split(",")[0],))
                    for index in range(dialogues))
    return Benchmark("bench-plugir", records, SearchSpace(tuple(paths), directory)), captions_file


@click.command("plugir")
@click.option("--dialogues", default=16, show_default=True, help="Dialogues (one batch, as a run's chunk).")
@click.option("--rounds", default=3, show_default=True, help="Rounds per dialogue.")
@click.option("--images", default=600, show_default=True, help="Search-space images (each with its own caption).")
@click.option("--top", default=500, show_default=True, help="PlugIR's T: candidates at round 1.")
@click.option("--questions", default=5, show_default=True, help="PlugIR's q_n.")
@click.option("--retriever-model", help="BLIP folder, hub id or random:blip-base (default: a tiny random BLIP).")
@click.option("--llm-model", help="Seq2seq folder, hub id or random:flan-t5-xl (default: a tiny random Flan-T5).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", default="auto", show_default=True, help="The LLM's dtype (auto, float32, bfloat16, ...).")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where random: models are written once and reused (default: a temporary folder).")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's).")
def plugir(dialogues: int, rounds: int, images: int, top: int, questions: int, retriever_model: str | None,
           llm_model: str | None, device: str, dtype: str, work_dir: Path | None, threads: int | None) -> None:
    """Time PlugIR's questioner per round and step; print LLM calls per step and per dialogue."""
    if min(dialogues, rounds, images, top, questions) < 1 or dialogues > images:
        raise click.BadParameter("every count must be at least 1, and --dialogues at most --images")
    device = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    with quiet_transformers():
        rows = measure_plugir(dialogues, rounds, images, top, questions, retriever_model, llm_model, device, dtype,
                              work_dir)
    click.echo(f"device {device}, torch threads {torch.get_num_threads()}: {dialogues} dialogues x {rounds} rounds, "
               f"{images} images, T {top}, q_n {questions}")
    click.echo(f"retriever {retriever_model or 'tiny random BLIP'}, LLM {llm_model or 'tiny random Flan-T5'}")
    header = ["round", "llm calls", "per dialogue", *(f"{name} s" for name in STEP_SECONDS), "retriever s"]
    click.echo("  ".join(f"{name:>13}" for name in header))
    for row in rows:
        values = [row["round"], row["llm_calls"], f"{row['llm_calls'] / dialogues:.1f}",
                  *(f"{row['seconds'].get(name, 0.0):.3f}" for name in STEP_SECONDS), f"{row['retriever']:.3f}"]
        click.echo("  ".join(f"{value:>13}" for value in values))
    click.echo("llm calls by step: " + ", ".join(f"{step} {calls}" for step, calls in
                                                   sum((row["calls"] for row in rows), Counter()).items()))


def measure_plugir(dialogues: int = 16, rounds: int = 3, images: int = 600, top: int = 500, questions: int = 5,
                   retriever_model: str | None = None, llm_model: str | None = None, device: str = "cpu",
                   dtype: str = "auto", work_dir: Path | None = None) -> list[dict[str, Any]]:
    """Per round: the LLM calls (total and by step), the questioner's seconds by step and the retriever's seconds."""
    with tempfile.TemporaryDirectory(prefix="harness-bench-plugir-") as temporary:
        root = Path(temporary)
        models = Path(work_dir) if work_dir is not None else root
        retriever_model = random_model_source(
            retriever_model or str(fixture_model("tiny-blip", root / "tiny-blip")), models, device)
        llm_model = random_model_source(
            llm_model or str(fixture_model("tiny-flan-t5", root / "tiny-flan-t5", seed=0)), models, device)
        benchmark, captions = bench_space(root / "space", images, dialogues)
        retriever, _ = REGISTRY.build("retriever", "cocoft", model=retriever_model, device=device)
        questioner = build_plugir(model=llm_model, llm="hf-seq2seq", llm_args={"dtype": dtype, "device": device},
                                  candidate_captions=str(captions), top=top, questions=questions, on_invalid="keep")
        answerer, _ = REGISTRY.build("answerer", "scripted")
        source = LiveSource(questioner, answerer)
        context = RunContext(device=device, cache_dir=root / "cache", progress=False)
        retriever.prepare(benchmark.search_space, context)
        source.prepare(benchmark, context)
        connect_retrieval(source, retriever)
        snapshots: list[tuple[Counter[str], Counter[str], float]] = []
        seconds: dict[str, float] = {}

        def snapshot() -> None:
            snapshots.append((Counter(questioner.seconds), Counter(questioner.steps.calls),
                              seconds.get("retriever", 0.0)))

        positions = {dialogue.dialogue_id: index for index, dialogue in enumerate(benchmark.dialogues)}
        evaluate_chunk(benchmark.dialogues, source, retriever, positions, rounds, "join", len(benchmark.search_space),
                       before_round=snapshot, seconds=seconds)
        snapshot()
        return [_round_row(round_, snapshots[round_], snapshots[round_ + 1]) for round_ in range(1, len(snapshots) - 1)]


def _round_row(round_: int, before: tuple[Counter[str], Counter[str], float],
               after: tuple[Counter[str], Counter[str], float]) -> dict[str, Any]:
    calls = after[1] - before[1]
    return {"round": round_, "llm_calls": sum(calls.values()), "calls": calls,
            "seconds": {name: after[0][name] - before[0][name] for name in STEP_SECONDS},
            "retriever": after[2] - before[2]}
