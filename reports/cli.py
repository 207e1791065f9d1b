"""``harness report``, ``harness view`` and ``harness export trec`` (mounted lazily by ``harness.cli``).

    harness report runs/chatir-visdial runs/dar-visdial runs/adafuse-visdial --baseline chatir-visdial \\
                   --out reports/visdial --metric Hits@1 --metric Hits@5 --view reports/visdial/explorer
    harness view runs/chatir-visdial runs/dar-visdial --out explorer --sample 100 --seed 0
    harness export trec runs/chatir-visdial --out trec/chatir-visdial

Lists are repeatable options (``--metric Hits@1 --metric Hits@5``), never comma-split strings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reports.compare import PRIMARY_CHOICES, ReportSettings
from reports.explorer.data import Selection

if TYPE_CHECKING:
    from reports.explorer.site import ExplorerSite

RUN_PATH = click.Path(path_type=Path, file_okay=False, exists=True)


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=RUN_PATH)
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for report.md, report.html, table.tex, results.csv, tests.csv and the plots (created).")
@click.option("--name", "names", multiple=True,
              help="System name of each RUN, in order (repeatable; default: each run directory's name).")
@click.option("--baseline", help="Compare every system with this one only (a system name), instead of all pairs.")
@click.option("--metric", "metrics", multiple=True, metavar="METRIC",
              help="Extra per-round table and plot (repeatable): Hits@K (accumulated) or Recall@K. "
                   "Always shown: Hits@10, Recall@10, MRR, MedR, BRI.")
@click.option("--primary", type=click.Choice(PRIMARY_CHOICES), default="last-round", show_default=True,
              help="Primary endpoint: accumulated Hits@10 at the last round (exact McNemar), or the per-dialogue "
                   "area under the accumulated Hits@10 curve (paired randomization test).")
@click.option("--permutations", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Random permutations of each paired randomization test.")
@click.option("--bootstrap", type=click.IntRange(min=1), default=1_000, show_default=True,
              help="Bootstrap resamples of the dialogues for confidence intervals and curve bands.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutations and the bootstrap.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level after the correction (bold verdicts and superscript letters).")
@click.option("--correction", type=click.Choice(["holm", "bh"]), default="holm", show_default=True,
              help="Multiple-comparison correction: Holm (family-wise error) or Benjamini-Hochberg (false discovery "
                   "rate).")
@click.option("--view", "view_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Also write a dialogue explorer of the runs there (pages for 100 dialogues), linked both ways.")
def report(
    runs: tuple[Path, ...],
    out: Path,
    names: tuple[str, ...],
    baseline: str | None,
    metrics: tuple[str, ...],
    primary: str,
    permutations: int,
    bootstrap: int,
    seed: int,
    alpha: float,
    correction: str,
    view_dir: Path | None,
) -> None:
    """Compare RUN directories (same benchmark files, same dialogues) with significance tests; write tables,
    plots and CSV files into --out."""
    from reports.compare import compare_runs
    from reports.render import headline, write_report
    from reports.runs import load_runs

    settings = ReportSettings(metrics=metrics, baseline=baseline, primary=primary, permutations=permutations,
                              bootstrap=bootstrap, seed=seed, alpha=alpha, correction=correction)
    comparison = compare_runs(load_runs(list(runs), list(names) or None), settings)
    for warning in comparison.warnings:
        click.echo(f"warning: {warning}", err=True)
    explorer = None
    if view_dir is not None:
        report_html = Path(os.path.relpath(Path(out) / "report.html", view_dir))
        explorer = build_view(list(runs), view_dir, list(names) or None, Selection(), report_link=report_html.as_posix())
        click.echo(f"explorer written to {explorer.index}")
    files = write_report(comparison, out,
                         explorer=Path(os.path.relpath(explorer.index, out)) if explorer is not None else None)
    for sentence in headline(comparison):
        click.echo(sentence)
    click.echo(f"report written to {files.directory}: {files.markdown.name}, {files.html.name}, {files.latex.name}, "
               f"{files.results.name}, {files.tests.name}, {len(files.plots)} plots")


@click.command("view")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of the explorer (open its index.html from disk).")
@click.option("--name", "names", multiple=True, help="System name for each RUN, in order (default: directory names).")
@click.option("--limit", type=click.IntRange(min=0), help="Pages and thumbnails for the first N dialogues "
              "(default 100).")
@click.option("--sample", type=click.IntRange(min=0), help="Pages for N dialogues drawn at random (see --seed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option("--dialogues", "dialogue_ids", multiple=True, metavar="ID",
              help="Pages for these dialogue ids (repeatable).")
@click.option("--image-root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Where the search-space images are (default: the run's --image-root).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The cache holding DAR's generated images (default: the run's --cache-dir).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def view(runs: tuple[Path, ...], out: Path, names: tuple[str, ...], limit: int | None, sample: int | None,
         seed: int, dialogue_ids: tuple[str, ...], image_root: Path | None, cache_dir: Path | None,
         quiet: bool) -> None:
    """Write a dialogue explorer of RUN directories (one benchmark; replay or live, any retriever) into --out: a
    sortable, filterable table of every dialogue with each system's ranks, and a page per selected dialogue with its
    turns, raw outputs, S_t, generated images and best images per round."""
    site = build_view(list(runs), out, list(names) or None, Selection(limit, sample, seed, dialogue_ids),
                      image_root=image_root, cache_dir=cache_dir, progress=not quiet)
    click.echo(f"explorer written to {site.index} ({site.pages} dialogue pages, {site.thumbnails} thumbnails made)")


def build_view(runs: list[Path], out: Path, names: list[str] | None, selection: Selection,
               image_root: Path | None = None, cache_dir: Path | None = None, report_link: str | None = None,
               progress: bool = True) -> ExplorerSite:
    from reports.explorer.data import load_explorer_data
    from reports.explorer.site import write_explorer
    from reports.runs import load_runs

    data = load_explorer_data(load_runs(runs, names), selection, image_root)
    return write_explorer(data, out, report_link=report_link, cache_dir=cache_dir, progress=progress)


@click.group("export")
def export() -> None:
    """Export runs in other tools' formats."""


@export.command("trec")
@click.argument("run", type=RUN_PATH)
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for qrels.txt, round-RR.run and accumulated-RR.run (created).")
@click.option("--depth", type=click.IntRange(min=0), default=100, show_default=True,
              help="Deepest listed position per query (Success@k exact for k <= depth, RR as RR@depth); "
                   "0 lists every position up to the target (exact MRR, large files).")
@click.option("--tag", help="Run tag in the last column (default: the run directory's name).")
def trec(run: Path, out: Path, depth: int, tag: str | None) -> None:
    """Write per-round TREC run files and qrels of RUN, for trec_eval, ranx or ir_measures."""
    from reports.trec import export_trec

    files = export_trec(run, out, depth=depth or None, tag=tag)
    click.echo(f"wrote {files.qrels} and {len(files.rounds)} rounds x (round-RR.run, accumulated-RR.run) for "
               f"{files.queries} queries to {files.directory}"
               + (f" ({files.skipped_failed} failed dialogues skipped)" if files.skipped_failed else ""))
    click.echo(f"check: trec_eval -m recip_rank -m success.1,5,10 {files.qrels} {files.rounds[-1]}")
