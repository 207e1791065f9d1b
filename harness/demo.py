"""``harness demo``: a fully offline pipeline check on a CPU.

It writes a small synthetic benchmark of real PNG files and tiny models of the real transformers and diffusers
classes with RANDOM weights (BLIP, CLIP, a Flan-T5 questioner, a BLIP-2 answerer, a Stable Diffusion 2.1 pipeline),
then evaluates them through the same code paths as real runs: replay with BLIP and CLIP, a live dialogue run, a
DAR run, and a report comparing them all. The numbers it prints check the plumbing; they are not results.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from harness.config import RunSpec
from harness.registry import REGISTRY
from harness.runner import run_evaluation
from harness.tables import format_round_table

BANNER = "PIPELINE CHECK ONLY: tiny models with random weights on synthetic images; these numbers are not results."


def run_demo(out: Path | None = None, progress: bool = True, *, report_command: click.Command) -> dict[str, dict]:
    """Run the demo into ``out`` (a new temporary folder when None, kept so that its report can be opened) and
    return each run's metrics by name. ``report_command`` is `harness report`, which compares the demo's runs."""
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="harness-demo-"))
    click.echo(BANNER)
    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(root / "benchmark")
    models = {
        name: REGISTRY.resolve("fixture", name)(root / "models" / name)
        for name in ("tiny-blip", "tiny-clip", "tiny-flan-t5", "tiny-blip2", "tiny-sd21")
    }
    blip = {"model": str(models["tiny-blip"])}
    live = {
        "questioner": "flan",
        # Random weights write no real questions: the demo keeps them, flagged in the trace, instead of redrawing.
        "questioner_args": {"model": str(models["tiny-flan-t5"]), "on_invalid": "keep"},
        "answerer": "blip2",
        "answerer_args": {"model": str(models["tiny-blip2"]), "on_invalid": "keep"},
    }
    dar = {
        **blip,
        "base": "zs",
        "variant": "released",
        "llm": "hf-seq2seq",
        "llm_args": {"model": str(models["tiny-flan-t5"])},
        "diffusion_model": str(models["tiny-sd21"]),
        "size": 32,
        "steps": 2,
        "diffusion_batch_size": 8,
    }
    runs: dict[str, tuple[str, str, dict, dict]] = {
        "oracle": ("oracle", "oracle", {}, {}),
        "blip (tiny, random weights)": ("blip", "zs", blip, {}),
        "clip (tiny, random weights)": ("clip", "clip", {"model": str(models["tiny-clip"])}, {}),
        "live: tiny flan questioner + tiny blip2 answerer, tiny blip": ("live", "zs", blip, live),
        "dar (released) over tiny blip, tiny sd2.1": ("dar", "dar", dar, {}),
    }
    results: dict[str, dict] = {}
    for label, (name, retriever, arguments, bots) in runs.items():
        spec = RunSpec(
            retriever=retriever,
            retriever_args=arguments,
            **bots,
            benchmark=str(synthetic.dialogue_file),
            search_space=synthetic.search_space_file,
            image_root=synthetic.image_root,
            out=root / "runs" / name,
            device="cpu",
            batch_size=8,
            cache_dir=root / "cache",
            progress=progress,
        )
        result = run_evaluation(spec)
        results[label] = dict(result.metrics)
        click.echo(f"\n{label}: {result.metrics['dialogues']} dialogues -> {result.directory}")
        click.echo(format_round_table(result.metrics))
    _write_report(report_command, root, [root / "runs" / name for name, *_ in runs.values()],
                  [name for name, *_ in runs.values()])
    click.echo(f"\n{BANNER}\nEverything the demo wrote (runs, caches, report, explorer) is in {root}; delete it when done.")
    return results


def _write_report(report: click.Command, root: Path, run_dirs: list[Path], names: list[str]) -> None:
    """Compare the demo's runs with the same `harness report` command a user runs, and write the dialogue explorer
    (every run's turns, ranks and best images per round) beside it."""
    arguments = [str(directory) for directory in run_dirs] + ["--out", str(root / "report")]
    for label in names:
        arguments += ["--name", label]
    arguments += ["--permutations", "2000", "--bootstrap", "500", "--view", str(root / "explorer")]
    report.main(arguments, prog_name="harness report", standalone_mode=False)
