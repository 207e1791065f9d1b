"""``harness demo``: a fully offline pipeline check on a CPU.

It writes a small synthetic benchmark of real PNG files and tiny BLIP and CLIP models of the real transformers
classes with RANDOM weights, then evaluates them through the same code path as a real run (loading the model from
a directory, indexing the search space through the embedding cache, ranking, writing run directories). The numbers
it prints check the plumbing; they are not results.
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


def run_demo(out: Path | None = None, progress: bool = True) -> dict[str, dict]:
    """Run the demo into ``out`` (a temporary folder when None) and return each run's metrics by name."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="harness-demo-") as temporary:
            return _run(Path(temporary), progress)
    return _run(Path(out), progress)


def _run(root: Path, progress: bool) -> dict[str, dict]:
    click.echo(BANNER)
    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(root / "benchmark")
    models = {
        "tiny-blip": REGISTRY.resolve("fixture", "tiny-blip")(root / "models" / "tiny-blip"),
        "tiny-clip": REGISTRY.resolve("fixture", "tiny-clip")(root / "models" / "tiny-clip"),
    }
    runs = {
        "oracle": ("oracle", {}),
        "blip (tiny, random weights)": ("zs", {"model": str(models["tiny-blip"])}),
        "clip (tiny, random weights)": ("clip", {"model": str(models["tiny-clip"])}),
    }
    results: dict[str, dict] = {}
    for label, (retriever, arguments) in runs.items():
        spec = RunSpec(
            retriever=retriever,
            retriever_args=arguments,
            benchmark=str(synthetic.dialogue_file),
            search_space=synthetic.search_space_file,
            image_root=synthetic.image_root,
            out=root / "runs" / retriever,
            device="cpu",
            batch_size=8,
            cache_dir=root / "cache",
            progress=progress,
        )
        result = run_evaluation(spec)
        results[label] = dict(result.metrics)
        click.echo(f"\n{label}: {result.metrics['dialogues']} dialogues -> {result.directory}")
        click.echo(format_round_table(result.metrics))
    _write_report(root, [root / "runs" / retriever for retriever, _ in runs.values()], list(runs))
    click.echo(f"\n{BANNER}")
    return results


def _write_report(root: Path, run_dirs: list[Path], labels: list[str]) -> None:
    """Compare the demo's runs with the same `harness report` command a user runs."""
    from harness.cli import main

    arguments = [str(directory) for directory in run_dirs] + ["--out", str(root / "report")]
    for label in labels:
        arguments += ["--name", label.split(" ")[0]]
    arguments += ["--permutations", "2000", "--bootstrap", "500"]
    report = main.get_command(click.Context(main), "report")
    assert report is not None
    report.main(arguments, prog_name="harness report", standalone_mode=False)
