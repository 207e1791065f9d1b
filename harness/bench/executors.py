"""``harness bench ray``: the same tiny evaluation in process, on one Ray worker and on N, with Ray's overhead.

    harness bench ray                               # 48 live dialogues: tiny Flan-T5 + BLIP-2 bots, tiny BLIP
    harness bench ray --workers 4 --dialogues 96 --bots scripted --retriever dar

Every variant evaluates the same synthetic benchmark (fixture ``synthetic-benchmark``) into its own run directory,
each from its own copy of one cache that an untimed one-dialogue run filled with the search-space index (as every
run after a model's first finds it), so every variant asks its bots and draws its images itself. The in-process
figure runs torch on one thread, as a Ray worker with one
CPU does, so "overhead" is Ray's own cost on the same work: starting the local cluster (printed apart), creating
the actors and loading their models, and shipping chunks and records. Each run's records must be identical to the
in-process ones; the command says so. Tiny random models make the evaluation cheap, so the overhead shows; with real
models the per-chunk work dwarfs it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from harness.bench.models import fixture_model
from harness.config import RunSpec
from harness.executors import Executor, InProcessExecutor
from harness.registry import REGISTRY
from harness.runner import run_evaluation


def _tiny_spec(work: Path, retriever: str, bots: str, dialogues: int, rounds: int,
               batch_size: int) -> Callable[[str], RunSpec]:
    """The spec of variant ``name``: the same benchmark and models, its own run directory and cache copy."""

    def fixture(name: str) -> str:
        return str(fixture_model(name, work / "models" / name))

    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(work / "benchmark", dialogues=dialogues,
                                                                   distractors=24, rounds=rounds)
    arguments: dict[str, Any] = {"model": fixture("tiny-blip")}
    if retriever == "dar":
        arguments.update({"base": "cocoft", "variant": "released", "llm": "scripted", "size": 32, "steps": 2,
                          "diffusion_model": fixture("tiny-sd21"), "diffusion_batch_size": 4})
    questioner, answerer = ("flan", "blip2") if bots == "tiny" else ("scripted", "scripted")
    questioner_args = {"model": fixture("tiny-flan-t5"), "max_new_tokens": 8} if bots == "tiny" else {}
    answerer_args = {"model": fixture("tiny-blip2"), "max_new_tokens": 4} if bots == "tiny" else {}

    def spec(name: str) -> RunSpec:
        return RunSpec(
            retriever="cocoft" if retriever == "blip" else retriever, retriever_args=arguments,
            questioner=questioner, questioner_args=questioner_args, answerer=answerer, answerer_args=answerer_args,
            benchmark=str(synthetic.dialogue_file), search_space=synthetic.search_space_file,
            image_root=synthetic.image_root, out=work / "runs" / name, device="cpu", batch_size=batch_size,
            rounds=rounds, cache_dir=work / "caches" / name, progress=False,
        )

    return spec


def _fresh_cache(spec: RunSpec, warm: RunSpec) -> RunSpec:
    """``spec`` with its own copy of the warmed cache and no earlier run (a reused --work-dir starts over)."""
    shutil.rmtree(spec.cache_dir, ignore_errors=True)
    shutil.rmtree(spec.out, ignore_errors=True)
    shutil.copytree(warm.cache_dir, spec.cache_dir)
    return spec


def _timed_run(spec: RunSpec, executor: Executor) -> float:
    start = time.perf_counter()
    run_evaluation(spec, executor=executor)
    return time.perf_counter() - start


def _records(spec: RunSpec) -> bytes:
    return (spec.out / "ranks.jsonl").read_bytes()


@click.command("ray")
@click.option("--retriever", default="blip", show_default=True, type=click.Choice(["blip", "dar"]),
              help="blip: a tiny BLIP dual encoder; dar: tiny BLIP + tiny SD 2.1 (images cached by the warm-up).")
@click.option("--bots", default="tiny", show_default=True, type=click.Choice(["tiny", "scripted"]),
              help="tiny: Flan-T5 questioner and BLIP-2 answerer (tiny random weights); scripted: no model.")
@click.option("--dialogues", default=48, show_default=True, type=click.IntRange(min=2))
@click.option("--rounds", default=10, show_default=True, type=click.IntRange(min=0, max=10))
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1), help="Dialogues per chunk.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=2),
              help="The larger worker count to compare with one worker.")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), help="Keep fixtures and runs here.")
def ray(retriever: str, bots: str, dialogues: int, rounds: int, batch_size: int, workers: int, work_dir: Path | None) -> None:
    """Time a tiny live evaluation in process and on 1 and N Ray workers; print dialogues/s and Ray's overhead."""
    import torch

    from harness.ray_executor import RayExecutor, import_ray

    ray_module = import_ray()
    with tempfile.TemporaryDirectory(prefix="harness-ray-bench-") as temporary:
        work = Path(work_dir) if work_dir is not None else Path(temporary)
        spec = _tiny_spec(work, retriever, bots, dialogues, rounds, batch_size)
        warm = spec("warm-up")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as a one-CPU Ray worker runs
        try:
            run_evaluation(replace(warm, limit=1), executor=InProcessExecutor())
            local = _timed_run(_fresh_cache(spec("in-process"), warm), InProcessExecutor())
        finally:
            torch.set_num_threads(threads)
        joined = ray_module.is_initialized()  # a cluster this process already uses (tests) is used as it is
        started = time.perf_counter()
        if not joined:
            ray_module.init(num_cpus=workers, num_gpus=0, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
        try:
            timings = {count: _timed_run(_fresh_cache(spec(f"ray-{count}"), warm), RayExecutor(workers=count))
                       for count in (1, workers)}
        finally:
            if not joined:
                ray_module.shutdown()
        reference = _records(spec("in-process"))
        identical = all(_records(spec(f"ray-{count}")) == reference for count in timings)

    chunks = -(-dialogues // batch_size)
    click.echo(f"{dialogues} live dialogues x {rounds + 1} rounds, {chunks} chunks of {batch_size}, tiny {retriever} "
               f"retriever, {bots} bots, search-space index cached, CPU ({torch.get_num_threads()} threads here)")
    click.echo("joined the running Ray cluster" if joined else
               f"local Ray cluster start ({workers} CPUs): {startup:.2f} s (once per session, not counted below)")
    click.echo(f"{'executor':24s} {'wall s':>8s} {'dialogues/s':>12s}")
    click.echo(f"{'in-process (1 thread)':24s} {local:8.2f} {dialogues / local:12.1f}")
    for count, seconds in timings.items():
        click.echo(f"{f'ray, {count} worker(s)':24s} {seconds:8.2f} {dialogues / seconds:12.1f}")
    one, many = timings[1], timings[workers]
    click.echo(f"Ray overhead over in-process on the same work: {one - local:+.2f} s "
               f"({(one - local) / chunks * 1000:+.0f} ms per chunk, actor start and model load included)")
    click.echo(f"speed-up of {workers} workers over 1: {one / many:.2f}x; records identical to in-process: "
               f"{'yes' if identical else 'NO'}")
