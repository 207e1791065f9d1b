"""``harness bench stages``: each stage's throughput with the configured models, on this machine, and the projected
wall time of the configured full evaluation, with and without cache hits.

    harness bench stages --tiny                                            # tiny random models, CPU, ~1 minute
    harness bench stages --random-full-size --retriever dar --questioner flan --answerer blip2 --device cuda \\
                         --peak-tflops 989 --work-dir /scratch/bench   # full-size random weights, no download
    harness bench stages --retriever dar --dar-base chatir --retriever-model chatir_weights.ckpt \\
                         --questioner flan --answerer blip2 --device cuda --workers 8

Components are built through the registry from the same options ``harness run`` takes and prepared on a small
synthetic benchmark (fixture ``synthetic-benchmark``) in a fresh cache, so every figure is a cold-cache figure:

- questioner (questions/s) and answerer (answers/s), when ``--questioner``/``--answerer`` are given (live runs);
- the retriever end to end (dialogue-rounds/s): cold (LLM calls, image generation, encoding) and warm (a second
  pass over the same states, every cache hit);
- its parts, where the retriever exposes them (the shipped dual encoders and DAR do): encoder text queries/s and
  images/s, DAR's reformulation (R1 captions/s, R2 prompt lists/s) and image generation (images/s);
- exact ranking (queries/s against ``--search-space`` random embeddings).

The projection multiplies these by the work of the full evaluation: ``--benchmark`` x ``--dialogues`` x
(``--rounds`` + 1) dialogue-rounds; for DAR the distinct share of them (PROTOCOL.md section 5: 84,580 of the 90,816
dialogue-rounds of the four benchmarks are distinct) x K images. Three columns: every request computed (no cache
hits), duplicates served by the shared caches (a first run), and a warm cache (the same run again, or after a crash:
no LLM call, no image drawn or embedded; a DAR run over another base encoder re-embeds the generated images, the
"encoder generated" row of the first run). ``--workers N`` divides by N (ideal scaling over N GPUs/Ray workers)
all but the search-space index, which the driver builds alone.
Models are loaded before timing; their load time is printed apart. The figures of tiny random models check the
plumbing: they say nothing of a real GPU's speed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.bench.models import fixture_model
from harness.bench.timing import timed
from harness.command_line import parse_argument
from harness.devices import resolve_device
from harness.protocols import RunContext
from harness.registry import REGISTRY
from harness.turn_validity import InvalidPolicy
from harness.types import Benchmark, DialogueState

FULL_BENCHMARKS = ("visdial-val", "chatgpt-blip2", "human-blip2", "flan-blip2")
DIALOGUES_PER_BENCHMARK = 2064
SEARCH_SPACE = 50_000
DISTINCT_FRACTION = 84_580 / 90_816  # PROTOCOL.md section 5: distinct dialogue-rounds over the four benchmarks
IMAGE_TFLOP = 500.0  # PROTOCOL.md section 8: one SD3-Medium image, 1024 px, 28 steps with classifier-free guidance


@dataclass(frozen=True)
class StageFigure:
    """``items`` of ``unit`` done in ``seconds`` by one stage."""

    stage: str
    unit: str
    items: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Workload:
    """The full evaluation's work, in the units the stages are measured in."""

    dialogues: int
    rounds: int
    search_space: int
    images_per_round: int
    distinct_fraction: float
    live: bool
    dar: bool
    llm_image_prompts: bool

    @property
    def dialogue_rounds(self) -> int:
        return self.dialogues * (self.rounds + 1)

    @property
    def distinct_rounds(self) -> int:
        return round(self.dialogue_rounds * self.distinct_fraction)


DRIVER_STAGES = frozenset({"encoder images"})


@dataclass(frozen=True)
class Projection:
    """Seconds per stage in the three cache situations."""

    rows: tuple[tuple[str, float, float, float], ...]  # stage, no cache hits, first run (deduplicated), warm cache

    def totals(self) -> tuple[float, float, float]:
        return (sum(row[1] for row in self.rows), sum(row[2] for row in self.rows), sum(row[3] for row in self.rows))

    def over_workers(self, workers: int) -> Projection:
        """The projection with the work spread over ``workers`` (ideal scaling), except the stages the driver does
        alone (the search-space index, built before any worker starts)."""
        return Projection(tuple(
            row if row[0] in DRIVER_STAGES else (row[0], row[1] / workers, row[2] / workers, row[3] / workers)
            for row in self.rows
        ))


def project(figures: Mapping[str, StageFigure], work: Workload) -> Projection:
    """Seconds each stage needs for ``work``, from the measured rates (stages not measured are left out)."""
    rows: list[tuple[str, float, float, float]] = []

    def add(stage: str, cold: float, first: float, warm: float) -> None:
        figure = figures.get(stage)
        if figure is not None:
            rows.append((stage, cold / figure.rate, first / figure.rate, warm / figure.rate))

    all_rounds, distinct = work.dialogue_rounds, work.distinct_rounds
    images, distinct_images = all_rounds * work.images_per_round, distinct * work.images_per_round
    if work.live:
        questions = work.dialogues * work.rounds
        add("questioner", questions, questions, 0)
        add("answerer", questions, questions, 0)
    add("encoder images", work.search_space, work.search_space, 0)  # the search-space index, cached per encoder
    add("encoder texts", all_rounds, all_rounds, all_rounds)
    if work.dar:
        add("reformulation R1", all_rounds, distinct, 0)
        if work.llm_image_prompts:
            add("reformulation R2", all_rounds, distinct, 0)
        add("generation", images, distinct_images, 0)
        # Generated images are embedded once per encoder (vector cache): a warm rerun embeds none, a run over
        # another base encoder re-embeds them all (the "first run" figure of this row).
        figure = figures.get("encoder images")
        if figure is not None:
            rows.append(("encoder generated", images / figure.rate, distinct_images / figure.rate, 0.0))
    add("ranking", all_rounds * (2 if work.dar else 1), all_rounds * (2 if work.dar else 1),
        all_rounds * (2 if work.dar else 1))
    return Projection(tuple(rows))


# Measuring ---------------------------------------------------------------------------------------------------------


def _states(benchmark: Benchmark, round_: int) -> list[DialogueState]:
    """Every dialogue at ``round_`` with its caption made unique, so no two states share a cache entry."""
    states = []
    for index, dialogue in enumerate(benchmark.dialogues):
        turns = (f"{dialogue.caption}, view {index}", *dialogue.turns[1: round_ + 1])
        states.append(DialogueState(dialogue.dialogue_id, dialogue.target,
                                    benchmark.search_space.position(dialogue.target), round_, turns))
    return states


def _find(component: Any, *paths: str) -> Any:
    """The first attribute path (``"base.encoder"``) that exists on ``component``, else None: parts the shipped
    retrievers expose, looked up by name so that harness never imports a plug-in package."""
    for path in paths:
        value = component
        for name in path.split("."):
            value = getattr(value, name, None)
            if value is None:
                break
        if value is not None:
            return value
    return None


def measure_stages(
    retriever: Any,
    questioner: Any,
    answerer: Any,
    benchmark: Benchmark,
    context: RunContext,
    round_: int,
    batch_size: int,
    ranking_queries: int,
    search_space: int,
    echo: Callable[[str], None] = click.echo,
) -> dict[str, StageFigure]:
    """Prepare the components (timed apart), then time each stage once on the benchmark's dialogues."""
    device = context.device
    figures: dict[str, StageFigure] = {}
    states = _states(benchmark, round_)
    count = len(states)

    seconds, _ = timed(lambda: retriever.prepare(benchmark.search_space, context), device)
    echo(f"retriever prepared in {seconds:.1f} s (model load + index of {len(benchmark.search_space)} images)")
    for role, bot in (("questioner", questioner), ("answerer", answerer)):
        if bot is not None:
            seconds, _ = timed(lambda bot=bot: bot.prepare(benchmark, context), device)
            echo(f"{role} prepared in {seconds:.1f} s")

    if questioner is not None and answerer is not None:
        previous = [DialogueState(s.dialogue_id, s.target, s.target_index, s.round - 1, s.query_turns[:-1])
                    for s in states] if round_ > 0 else states
        seconds, questions = timed(lambda: questioner.ask(previous), device)
        figures["questioner"] = StageFigure("questioner", "questions", count, seconds)
        asked = [str(question) for question in questions]
        seconds, _ = timed(lambda: answerer.answer(previous, asked), device)
        figures["answerer"] = StageFigure("answerer", "answers", count, seconds)

    # End to end first: the caches are still empty, so this is the cold path; then again with every cache hit.
    seconds, _ = timed(lambda: retriever.rank(states), device)
    figures["retriever cold"] = StageFigure("retriever cold", "dialogue-rounds", count, seconds)
    seconds, _ = timed(lambda: retriever.rank(states), device)
    figures["retriever warm"] = StageFigure("retriever warm", "dialogue-rounds", count, seconds)

    encoder = _find(retriever, "encoder", "base.encoder")
    if encoder is not None and hasattr(encoder, "encode_texts") and hasattr(encoder, "encode_images"):
        texts = [state.query_text for state in states]
        seconds, _ = timed(lambda: [encoder.encode_texts(texts[i:i + batch_size])
                                     for i in range(0, count, batch_size)], device)
        figures["encoder texts"] = StageFigure("encoder texts", "queries", count, seconds)
        from harness.images import load_rgb

        images = load_rgb([benchmark.search_space.resolve(path) for path in benchmark.search_space.paths])
        seconds, _ = timed(lambda: [encoder.encode_images(encoder.preprocessing(images[i:i + batch_size]))
                                     for i in range(0, len(images), batch_size)], device)
        figures["encoder images"] = StageFigure("encoder images", "images", len(images), seconds)

    reformulator = _find(retriever, "reformulator")
    if reformulator is not None:
        # One draw per prompt: random weights write invalid text, and timing its redraws would time another job.
        reformulator.policy = InvalidPolicy("keep")
        prefixes = [(f"{state.caption} (bench {time.time_ns()})", *state.query_turns[1:]) for state in states]
        seconds, captions = timed(lambda: reformulator.captions(prefixes), device)
        figures["reformulation R1"] = StageFigure("reformulation R1", "captions", count, seconds)
        k = _images_per_round(retriever)
        seconds, _ = timed(lambda: reformulator.image_prompts(captions, k, prefixes), device)
        figures["reformulation R2"] = StageFigure("reformulation R2", "prompt lists", count, seconds)

    generator = _find(retriever, "image_source.generator")
    if generator is not None and hasattr(generator, "generate"):
        prompts = [f"{state.caption} (bench)" for state in states]
        per_call = max(1, int(getattr(getattr(generator, "settings", None), "batch_size", 1)))
        drawn = prompts[: max(per_call, min(count, 2 * per_call))]
        seconds, _ = timed(lambda: generator.generate(drawn, list(range(len(drawn)))), device)
        figures["generation"] = StageFigure("generation", "images", len(drawn), seconds)

    figures["ranking"] = measure_ranking(ranking_queries, search_space, _embedding_width(encoder), device)
    return figures


def measure_ranking(queries: int, images: int, dim: int, device: str) -> StageFigure:
    """Exact ranks of ``queries`` random queries against ``images`` random embeddings (one round's ranking)."""
    import torch

    from harness.ranking import rank_targets

    generator = torch.Generator().manual_seed(0)
    query_matrix = torch.nn.functional.normalize(torch.randn(queries, dim, generator=generator), dim=1).to(device)
    image_matrix = torch.nn.functional.normalize(torch.randn(images, dim, generator=generator), dim=1).to(device)
    targets = torch.randint(images, (queries,), generator=generator).tolist()
    rank_targets(query_matrix[:8], image_matrix, targets[:8])  # warm-up
    seconds, _ = timed(lambda: rank_targets(query_matrix, image_matrix, targets), device)
    return StageFigure("ranking", "queries", queries, seconds)


def _images_per_round(retriever: Any) -> int:
    """DAR's K (``images_per_round``, or its fusion schedule's); 1 for any other retriever."""
    return int(_find(retriever, "images_per_round", "schedule.images_per_round") or 1)


def _embedding_width(encoder: Any) -> int:
    try:
        return int(encoder.encode_texts(["a"]).shape[-1])
    except Exception:  # noqa: BLE001 - any encoder without a usable encode_texts: the BLIP width
        return 256


# Command -------------------------------------------------------------------------------------------------------------


def tiny_components(work: Path, retriever: str, questioner: str | None, answerer: str | None) -> dict[str, dict]:
    """Arguments pointing the configured components at tiny random-weight fixtures written under ``work``."""
    def fixture(name: str) -> str:
        return str(fixture_model(name, work / "models" / name))

    retriever_args: dict[str, Any] = {}
    if retriever == "clip":
        retriever_args["model"] = fixture("tiny-clip")
    elif retriever in ("zs", "cocoft", "chatir", "dar"):
        retriever_args["model"] = fixture("tiny-blip")
    if retriever == "dar":
        retriever_args.update({"llm": "hf-seq2seq", "llm_args": {"model": fixture("tiny-flan-t5")},
                               "diffusion_model": fixture("tiny-sd21"), "size": 32, "steps": 2,
                               "diffusion_batch_size": 4})
    questioner_args = {"model": fixture("tiny-flan-t5")} if questioner in ("flan",) else {}
    answerer_args = {"model": fixture("tiny-blip2")} if answerer in ("blip2",) else {}
    return {"retriever": retriever_args, "questioner": questioner_args, "answerer": answerer_args}


def full_size_components(work: Path, retriever: str, questioner: str | None, answerer: str | None,
                         device: str) -> dict[str, dict]:
    """Arguments pointing the configured components at the published architectures with random weights, written
    under ``work`` once (BLIP base, Flan-T5-XL, BLIP-2 FLAN-T5-XL, SD3-Medium at its 1024 px / 28 steps): the same
    cost as the real models, without a download."""
    def fixture(name: str) -> str:
        return str(fixture_model(name, work / "models" / name, f"{name} (full size, random weights)", device=device))

    retriever_args: dict[str, Any] = {}
    if retriever in ("zs", "cocoft", "chatir", "dar"):
        retriever_args["model"] = fixture("random-blip-base")
    elif retriever != "adafuse" and retriever not in ("oracle", "random"):
        raise click.UsageError(f"--random-full-size has no full-size model for --retriever {retriever}; "
                               "give --retriever-model")
    if retriever == "dar":
        retriever_args.update({"llm": "hf-seq2seq", "llm_args": {"model": fixture("random-flan-t5-xl")},
                               "diffusion_model": fixture("random-sd3-medium")})
    questioner_args = {"model": fixture("random-flan-t5-xl")} if questioner == "flan" else {}
    answerer_args = {"model": fixture("random-blip2-flan-t5-xl")} if answerer == "blip2" else {}
    return {"retriever": retriever_args, "questioner": questioner_args, "answerer": answerer_args}


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:8.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:8.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:8.1f} h"
    return f"{seconds / 86400:8.1f} d"


@click.command("stages")
@click.option("--retriever", default="dar", show_default=True, help="Registered retriever (as `harness run`).")
@click.option("--retriever-model", help="Retriever model source (as `harness run`).")
@click.option("--retriever-arg", multiple=True, metavar="KEY=VALUE", help="Extra retriever argument (repeatable).")
@click.option("--dar-base", help="DAR: base encoder preset (zs, cocoft, chatir, clip).")
@click.option("--dar-variant", type=click.Choice(["paper", "released"]), help="DAR: fusion variant.")
@click.option("--questioner", help="Live runs: questioner bot (flan, hf-chat, openai, scripted, ...).")
@click.option("--questioner-model", help="Questioner model source.")
@click.option("--questioner-arg", multiple=True, metavar="KEY=VALUE")
@click.option("--answerer", help="Live runs: answerer bot (blip2, openai, scripted, ...).")
@click.option("--answerer-model", help="Answerer model source.")
@click.option("--answerer-arg", multiple=True, metavar="KEY=VALUE")
@click.option("--tiny", is_flag=True, help="Tiny random-weight fixtures in place of every model (a CPU plumbing check).")
@click.option("--random-full-size", is_flag=True,
              help="The published architectures at full size with random weights in place of every model (GPU "
                   "figures without downloads; writes ~20 GB under --work-dir once).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--samples", default=16, show_default=True, type=click.IntRange(1, 200), help="Dialogues per timed stage.")
@click.option("--sample-round", default=3, show_default=True, type=click.IntRange(0, 10), help="Round of the timed states.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Encoder batch size.")
@click.option("--benchmark", "benchmarks", multiple=True, default=("all",), show_default=True,
              help="Benchmarks of the projected evaluation (repeatable; `all` = the four ChatIR benchmarks).")
@click.option("--dialogues", default=DIALOGUES_PER_BENCHMARK, show_default=True, help="Dialogues per benchmark.")
@click.option("--rounds", default=10, show_default=True, help="Rounds after the caption.")
@click.option("--search-space", default=SEARCH_SPACE, show_default=True, help="Images in the search space.")
@click.option("--distinct-fraction", default=DISTINCT_FRACTION, show_default=True,
              help="Share of dialogue-rounds that are distinct (DAR's requests deduplicated by the caches).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Parallel workers (GPUs / Ray workers) the projection divides by.")
@click.option("--peak-tflops", type=click.FloatRange(min=0, min_open=True),
              help="Dense peak TFLOP/s of one worker's accelerator (H100 SXM bf16: 989): prints the generation lower bound.")
@click.option("--image-tflop", default=IMAGE_TFLOP, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="TFLOP per generated image (SD3-Medium, 1024 px, 28 steps with guidance: ~500; ~120 at 512 px).")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), help="Keep fixtures and caches here.")
def stages(retriever: str, retriever_model: str | None, retriever_arg: tuple[str, ...], dar_base: str | None,
           dar_variant: str | None, questioner: str | None, questioner_model: str | None,
           questioner_arg: tuple[str, ...], answerer: str | None, answerer_model: str | None,
           answerer_arg: tuple[str, ...], tiny: bool, random_full_size: bool, device: str, samples: int, sample_round: int, batch_size: int,
           benchmarks: tuple[str, ...], dialogues: int, rounds: int, search_space: int, distinct_fraction: float,
           workers: int, peak_tflops: float | None, image_tflop: float, work_dir: Path | None) -> None:
    """Time every stage of the configured evaluation on this machine and project the full evaluation's wall time."""
    if (questioner is None) != (answerer is None):
        raise click.UsageError("give both --questioner and --answerer (a live run), or neither (replay)")
    if tiny and random_full_size:
        raise click.UsageError("--tiny and --random-full-size exclude each other")
    names = FULL_BENCHMARKS if "all" in benchmarks else benchmarks
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as temporary:
        work = Path(work_dir) if work_dir is not None else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        if tiny:
            arguments = tiny_components(work, retriever, questioner, answerer)
        elif random_full_size:
            arguments = full_size_components(work, retriever, questioner, answerer, device)
        else:
            arguments = {"retriever": {}, "questioner": {}, "answerer": {}}
        for role, model, extra in (("retriever", retriever_model, retriever_arg),
                                   ("questioner", questioner_model, questioner_arg),
                                   ("answerer", answerer_model, answerer_arg)):
            arguments[role].update(parse_argument(text) for text in extra)
            if model is not None:
                arguments[role]["model"] = model
        if retriever == "dar":
            arguments["retriever"].update({key: value for key, value in
                                           (("base", dar_base), ("variant", dar_variant)) if value is not None})
            if tiny and "base" not in arguments["retriever"]:
                arguments["retriever"]["base"] = "zs"
        synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(
            work / "benchmark", dialogues=samples, distractors=min(240 - samples, 48))
        benchmark, _ = REGISTRY.build("benchmark", "chatir-file", dialogues=synthetic.dialogue_file,
                                      search_space=synthetic.search_space_file, image_root=synthetic.image_root,
                                      expected_turns=None)
        built, _ = REGISTRY.build("retriever", retriever, **arguments["retriever"])
        bots = [REGISTRY.build(kind, name, **arguments[kind])[0] if name else None
                for kind, name in (("questioner", questioner), ("answerer", answerer))]
        if getattr(bots[0], "needs_retrieval", False) or callable(getattr(bots[0], "write_notes", None)):
            raise click.UsageError(f"the {questioner} questioner asks from the retriever's results and its own notes "
                                   "round after round; time it with `harness bench plugir`")
        context = RunContext(device=device, cache_dir=work / "cache", seed=0, progress=False)
        click.echo(f"{'TINY RANDOM MODELS: plumbing figures, not speeds. ' if tiny else ''}device {device}; "
                   f"{samples} dialogues at round {sample_round}; cold caches in {context.cache_dir}")
        figures = measure_stages(built, bots[0], bots[1], benchmark, context, sample_round, batch_size,
                                 ranking_queries=min(2064, dialogues), search_space=search_space)
    click.echo("\nstage                 throughput")
    for figure in figures.values():
        click.echo(f"{figure.stage:20s} {figure.rate:10.2f} {figure.unit}/s  ({figure.items} in {figure.seconds:.3f} s)")

    work_load = Workload(
        dialogues=dialogues * len(names), rounds=rounds, search_space=search_space,
        images_per_round=_images_per_round(built), distinct_fraction=distinct_fraction,
        live=questioner is not None, dar=_find(built, "image_source") is not None,
        llm_image_prompts=getattr(built, "image_prompt_mode", None) == "llm",
    )
    _print_projection(figures, work_load, names, workers)
    if peak_tflops is not None and work_load.dar:
        _print_lower_bound(project(figures, work_load), work_load, workers, peak_tflops, image_tflop)


def _print_projection(figures: Mapping[str, StageFigure], work: Workload, names: Sequence[str], workers: int) -> None:
    projection = project(figures, work).over_workers(workers)
    click.echo(f"\nprojected full evaluation: {', '.join(names)}: {work.dialogues} dialogues x {work.rounds + 1} "
               f"rounds = {work.dialogue_rounds:,} dialogue-rounds"
               + (f" ({work.distinct_rounds:,} distinct; {work.distinct_rounds * work.images_per_round:,} images at "
                  f"K = {work.images_per_round})" if work.dar else "")
               + f"; search space {work.search_space:,}; {workers} worker(s)")
    click.echo(f"{'stage':20s} {'no cache hits':>13s} {'first run':>13s} {'warm cache':>13s}")
    for stage, cold, first, warm in (*projection.rows, ("total", *projection.totals())):
        click.echo(f"{stage:20s} {_format_seconds(cold):>13s} {_format_seconds(first):>13s} {_format_seconds(warm):>13s}")
    measured = figures.get("retriever warm")
    if measured is not None:
        click.echo(f"check: the retriever's measured warm rate ({measured.rate:.1f} dialogue-rounds/s) gives "
                   f"{_format_seconds(work.dialogue_rounds / measured.rate / workers).strip()} for its part of a "
                   "warm run")


def generation_lower_bound(images: int, image_tflop: float, peak_tflops: float, workers: int) -> float:
    """Seconds to draw ``images`` if every worker's accelerator ran at its dense peak: the physical floor of a DAR
    evaluation, whose compute is over 97% image generation (PROTOCOL.md section 8)."""
    return images * image_tflop / (peak_tflops * workers)


def _print_lower_bound(projection: Projection, work: Workload, workers: int, peak: float, image_tflop: float) -> None:
    images = work.distinct_rounds * work.images_per_round
    bound = generation_lower_bound(images, image_tflop, peak, workers)
    first = projection.over_workers(workers).totals()[1]
    click.echo(f"lower bound: {images:,} images x {image_tflop:g} TFLOP at {peak:g} TFLOP/s x {workers} worker(s) = "
               f"{_format_seconds(bound).strip()}; the projected first run is {first / bound:.2f}x that")
