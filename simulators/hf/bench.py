"""``harness bench live``: the live questioner + answerer loop, batched versus one dialogue at a time.

    harness bench live                                      # tiny random Flan-T5 + tiny BLIP-2, 64 dialogues x 3 rounds
    harness bench live --dialogues 256 --batch-size 64 --rounds 5
    harness bench live --questioner-model DIR --answerer-model DIR2 --device cuda --dtype bfloat16
    harness bench live --questioner-model random:flan-t5-xl --answerer-model random:blip2-flan-t5-xl \
                       --device cuda --dtype bf16 --dialogues 32 --rounds 2 --work-dir /tmp/bench-live
    harness bench live --threads 2                          # the tiny models default to one CPU thread

Each round asks every running dialogue's next question in one batched call, then answers them all looking at the
target images, exactly as a live run does. The same loop is then run handing the bots one dialogue at a time. The
bots' response caches are switched off (a live run would reuse an answer when a dialogue repeats a question, which
random tiny models do often) and every dialogue's caption is made unique, so every turn is a model call in both
runs: the figures measure generation, not cache hits. The synthetic benchmark's PNG images (fixture
``synthetic-benchmark``) are the targets. Greedy decoding makes both runs produce the same dialogues; the command
reports how many agree (a difference can only come from padding numerics). Rates are dialogues/s and rounds/s
(dialogue-rounds, one question and its answer, per second).

``random:flan-t5-xl`` and ``random:blip2-flan-t5-xl`` are the published full-size architectures with random weights
(fixtures ``random-flan-t5-xl`` and ``random-blip2-flan-t5-xl``), written once into ``--work-dir`` (a temporary
folder by default) and reused from there.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import click
import torch

from harness.bench.models import RANDOM_PREFIX, fixture_model, quiet_transformers, random_model_source
from harness.devices import resolve_device
from harness.protocols import RunContext, TurnFailure
from harness.registry import REGISTRY
from harness.response_cache import ResponseCache
from harness.types import Benchmark, Dialogue, DialogueState
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.hf.bots import build_blip2_answerer, build_flan_questioner

MAX_SYNTHETIC_IMAGES = 240  # distinct images the synthetic fixture can draw; more dialogues reuse targets
RANDOM_FLAN_T5_XL = "random:flan-t5-xl"
RANDOM_BLIP2_FLAN_T5_XL = "random:blip2-flan-t5-xl"


class NoReuseCache(ResponseCache):
    """A response cache that never finds or keeps anything, so every turn is generated; it still counts the
    model calls (``misses``) and merges identical prompts within one call, as the real cache does."""

    def get(self, key: str) -> str | None:
        return None

    def put(self, key: str, response: str) -> None:
        return None


@dataclass(frozen=True)
class LoopTiming:
    """One timed run of the live loop: the dialogues it produced, its wall time and the model calls it made."""

    dialogues: tuple[tuple[str, ...], ...]
    seconds: float
    questioner_calls: int
    answerer_calls: int
    cache_hits: int

    @property
    def dialogues_per_second(self) -> float:
        return len(self.dialogues) / self.seconds if self.seconds > 0 else float("inf")

    @property
    def rounds_per_second(self) -> float:
        """Dialogue-rounds (one question and its answer) per second; each dialogue holds its caption and rounds."""
        rounds = sum(len(turns) - 1 for turns in self.dialogues)
        return rounds / self.seconds if self.seconds > 0 else float("inf")


def bench_benchmark(directory: Path, dialogues: int) -> Benchmark:
    """``dialogues`` caption-only dialogues over the synthetic images, each caption made unique by a number."""
    write_synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")
    count = min(dialogues, MAX_SYNTHETIC_IMAGES)
    loaded = write_synthetic(directory, dialogues=count, distractors=0, rounds=0).load(name="bench-live")
    records = tuple(
        Dialogue(str(index), source.target, (f"{source.caption}, photo number {index}",))
        for index, source in zip(range(dialogues), _cycle(loaded.dialogues, dialogues))
    )
    return Benchmark("bench-live", records, loaded.search_space)


def run_loop(
    questioner: LLMQuestioner,
    answerer: VisionAnswerer,
    benchmark: Benchmark,
    rounds: int,
    group_size: int,
) -> LoopTiming:
    """Run ``rounds`` ask -> answer rounds over every dialogue, handing the bots ``group_size`` dialogues per call
    (all of them for the batched run, 1 for one at a time); the bots must be prepared. Counts are read from the
    bots' caches, so give each run fresh bots."""
    search_space = benchmark.search_space
    states = [DialogueState.at_round(dialogue, 0, search_space.position(dialogue.target))
              for dialogue in benchmark.dialogues]
    start = time.perf_counter()
    for _ in range(rounds):
        advanced: list[DialogueState] = []
        for first in range(0, len(states), group_size):
            group = states[first : first + group_size]
            questions = [_text(question) for question in questioner.ask(group)]
            answers = [_text(answer) for answer in answerer.answer(group, questions)]
            advanced += [
                replace(state, round=state.round + 1, query_turns=(*state.query_turns, f"{question} {answer}"))
                for state, question, answer in zip(group, questions, answers)
            ]
        states = advanced
    seconds = time.perf_counter() - start
    return LoopTiming(
        dialogues=tuple(state.query_turns for state in states),
        seconds=seconds,
        questioner_calls=questioner.cache.misses,
        answerer_calls=answerer.cache.misses,
        cache_hits=questioner.cache.hits + answerer.cache.hits,
    )


@click.command("live")
@click.option("--dialogues", default=64, show_default=True, help="Dialogues in the synthetic benchmark.")
@click.option("--batch-size", default=32, show_default=True, help="Generator sub-batch size of the batched run.")
@click.option("--rounds", default=3, show_default=True, help="Question-answer rounds per dialogue.")
@click.option("--questioner-model", help=f"Seq2seq model folder, hub id or {RANDOM_FLAN_T5_XL} (default: a tiny random Flan-T5).")
@click.option("--answerer-model", help=f"BLIP-2 model folder, hub id or {RANDOM_BLIP2_FLAN_T5_XL} (default: a tiny random BLIP-2 over T5).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", default="auto", show_default=True, help="auto, float32, float16 or bfloat16 (bf16, fp16, fp32).")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where random: models are written once and reused (default: a temporary folder).")
@click.option("--seed", default=0, show_default=True, help="Seed of the tiny models and of the run.")
@click.option("--threads", type=int, help="torch CPU threads (default: 1 for tiny models on the CPU, else torch's).")
def live(
    dialogues: int,
    batch_size: int,
    rounds: int,
    questioner_model: str | None,
    answerer_model: str | None,
    device: str,
    dtype: str,
    seed: int,
    threads: int | None,
    work_dir: Path | None,
) -> None:
    """Time the live question-answer loop batched and one dialogue at a time; print dialogues/s, rounds/s and the
    speed-up."""
    if dialogues < 1 or rounds < 1 or batch_size < 1:
        raise click.BadParameter("--dialogues, --rounds and --batch-size must be at least 1")
    for option, given, known in (("--questioner-model", questioner_model, RANDOM_FLAN_T5_XL),
                                 ("--answerer-model", answerer_model, RANDOM_BLIP2_FLAN_T5_XL)):
        if given is not None and given.startswith(RANDOM_PREFIX) and given != known:
            raise click.BadParameter(f"{given!r}: the random model of {option} is {known}")
    device = resolve_device(device)
    if threads is None and device == "cpu" and not (questioner_model or answerer_model):
        threads = 1  # the tiny models' products are too small for intra-op threads to help; extra threads only
        # wait on each other, and on a machine other jobs share they slow both runs several-fold
    names = [
        f"{given} (the published architecture, random weights)" if given and given.startswith(RANDOM_PREFIX)
        else given or f"tiny random {tiny} (seed {seed})"
        for given, tiny in ((questioner_model, "Flan-T5"), (answerer_model, "BLIP-2"))
    ]
    with _quiet_loading(threads):
        result = measure_live(dialogues, batch_size, rounds, questioner_model, answerer_model, device, dtype, seed,
                              work_dir)

    click.echo(f"device {device}, torch threads {threads or torch.get_num_threads()}: {dialogues} dialogues x "
               f"{rounds} rounds, batch size {batch_size}")
    click.echo(f"questioner {names[0]}\nanswerer   {names[1]}")
    for label, timing in (("batched", result.batched), ("one at a time", result.single)):
        click.echo(f"{label:>14}: {timing.seconds:8.2f} s  {timing.dialogues_per_second:8.2f} dialogues/s  "
                   f"{timing.rounds_per_second:8.2f} rounds/s  ({timing.questioner_calls} questions + {timing.answerer_calls} answers generated, "
                   f"{timing.cache_hits} cache hits)")
    click.echo(f"speed-up from batching: {result.speed_up:.1f}x")
    same = sum(a == b for a, b in zip(result.batched.dialogues, result.single.dialogues))
    click.echo(f"identical dialogues batched vs one at a time: {same}/{dialogues}")


@dataclass(frozen=True)
class LiveBench:
    """Both timed runs of ``harness bench live``."""

    batched: LoopTiming
    single: LoopTiming

    @property
    def speed_up(self) -> float:
        return self.batched.dialogues_per_second / self.single.dialogues_per_second


def measure_live(
    dialogues: int = 64,
    batch_size: int = 32,
    rounds: int = 3,
    questioner_model: str | None = None,
    answerer_model: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    seed: int = 0,
    work_dir: Path | None = None,
) -> LiveBench:
    """The measurement behind ``harness bench live`` (tiny seeded models unless model folders, hub ids or
    ``random:`` names are given; those are written into ``work_dir``, else a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="harness-bench-live-") as temporary:
        root = Path(temporary)
        models = Path(work_dir) if work_dir is not None else root
        questioner_model = questioner_model or str(fixture_model("tiny-flan-t5", root / "tiny-flan-t5", seed=seed))
        answerer_model = answerer_model or str(fixture_model("tiny-blip2", root / "tiny-blip2", seed=seed))
        questioner_model, answerer_model = (random_model_source(name, models, device)
                                            for name in (questioner_model, answerer_model))
        benchmark = bench_benchmark(root / "benchmark", dialogues)
        timings = []
        for group_size in (dialogues, 1):
            context = RunContext(device=device, cache_dir=root / f"cache-{group_size}", seed=seed, progress=False)
            # Random weights write invalid turns; redrawing them would time redraws, not one generation per turn.
            questioner = build_flan_questioner(questioner_model, dtype=dtype, batch_size=batch_size, device=device,
                                               on_invalid="keep")
            answerer = build_blip2_answerer(answerer_model, dtype=dtype, batch_size=batch_size, device=device,
                                            on_invalid="keep")
            questioner.prepare(benchmark, context)
            answerer.prepare(benchmark, context)
            for bot in (questioner, answerer):
                bot.use_cache(NoReuseCache(context.cache_dir))
            _warm_up(questioner, answerer, benchmark)
            timings.append(run_loop(questioner, answerer, benchmark, rounds, group_size))
    return LiveBench(*timings)


@contextlib.contextmanager
def _quiet_loading(threads: int | None) -> Iterator[None]:
    """No loading bars, and ``threads`` torch threads, for the command's duration (restored after, so a caller in
    the same process, such as a test session, is left as it was)."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with quiet_transformers():
            yield
    finally:
        torch.set_num_threads(previous_threads)


def _warm_up(questioner: LLMQuestioner, answerer: VisionAnswerer, benchmark: Benchmark) -> None:
    # One call each straight to the generators (not through the cache), so one-time costs are not timed.
    from harness.images import load_rgb

    image = load_rgb([benchmark.search_space.resolve(benchmark.dialogues[0].target)])
    questioner.generator.generate(["warm up"], [0])  # type: ignore[call-arg]
    answerer.generator.generate(["warm up"], image, [0])  # type: ignore[call-arg]


def _text(output: str | TurnFailure) -> str:
    return output if isinstance(output, str) else f"(failed: {output.reason})"


def _cycle(items: Sequence[Dialogue], count: int) -> list[Dialogue]:
    return [items[index % len(items)] for index in range(count)]
