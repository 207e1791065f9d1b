"""Write a comparison as files: report.md, a self-contained report.html, table.tex, curve PNGs, results.csv and
tests.csv.

    comparison = compare_runs(load_runs(run_directories), ReportSettings(baseline="chatir-visdial"))
    files = write_report(comparison, Path("reports/visdial"))
    files.html          # open in a browser: plots embedded as base64 PNG, no external resources

``results.csv`` is long format, one row per (system, benchmark, round, metric) with columns
``system, benchmark, round, metric, value, ci_low, ci_high`` (``round`` empty for whole-dialogue metrics such as
BRI; ``ci_low``/``ci_high`` empty for MedR). ``tests.csv`` holds every paired test, secondary ones included.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.dialogue_quality import MEASURES, format_measure, quality_measures
from harness.errors import HarnessError
from harness.run_dialogues import run_dialogues
from harness.store import RunStore
from harness.usage import COST_FIELDS, summed_costs
from reports.compare import Comparison, describe_methods
from reports.plots import plot_curves, plot_degradation, plot_file_name
from reports.tables import (
    Cell,
    Table,
    benchmark_tables,
    metric_label,
    round_table,
    summary_table,
    to_html,
    to_latex,
    to_markdown,
)

RESULTS_COLUMNS = ("system", "benchmark", "round", "metric", "value", "ci_low", "ci_high")
TESTS_COLUMNS = (
    "benchmark", "family", "metric", "round", "system_a", "system_b", "test", "difference", "ci_low", "ci_high",
    "a_only", "b_only", "permutations", "p_value", "p_error", "p_adjusted", "correction", "better", "undecided",
    "permutations_needed",
)

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .8em 0 .2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
sup { color: #1a6b2f; font-weight: bold; }
p.note { font-size: 12px; color: #555; margin-top: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; }
.plots img { max-width: 100%; border: 1px solid #ddd; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: .4em .8em; }
ul.methods li { margin-bottom: .4em; }
"""

log = logging.getLogger("harness.reports")


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    markdown: Path
    html: Path
    latex: Path
    results: Path
    tests: Path
    plots: tuple[Path, ...]
    explorer: Path | None = None  # the dialogue explorer's index.html, relative to the report's folder


def write_report(comparison: Comparison, out: Path, explorer: Path | None = None) -> ReportFiles:
    """Write every report file into ``out`` (created) and return their paths; ``explorer`` (the index of a dialogue
    explorer of the same runs, relative to ``out``) is linked from the runs section."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves(comparison, metric, out / plot_file_name(metric)) for metric in comparison.settings.round_metrics]
    degradation = plot_degradation(comparison, out / "degradation.png")
    if degradation is not None:
        plots.append(degradation)
    files = ReportFiles(
        directory=out,
        markdown=out / "report.md",
        html=out / "report.html",
        latex=out / "table.tex",
        results=out / "results.csv",
        tests=out / "tests.csv",
        plots=tuple(plots),
        explorer=explorer,
    )
    files.markdown.write_text(render_markdown(comparison, files), encoding="utf-8")
    files.html.write_text(render_html(comparison, files), encoding="utf-8")
    files.latex.write_text(render_latex(comparison), encoding="utf-8")
    write_results_csv(comparison, files.results)
    write_tests_csv(comparison, files.tests)
    return files


def _run_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows = []
    for run in comparison.runs:
        shas = ", ".join(f"{role} {sha[:12]}" for role, sha in sorted(run.benchmark_files.items()))
        rows.append((run.name, str(run.directory), run.retriever, run.query_mode, run.benchmark, shas,
                     str(len(run.records)), str(len(run.failed_ids))))
    return rows


_RUN_HEADER = ("system", "run directory", "retriever", "query mode", "benchmark", "benchmark files (sha256)", "dialogues", "failed")


# Of each run's evaluated dialogues (generated, or the recorded rounds it replayed): the measures of
# `harness dialogues stats`, whose rules the note gives.
_QUALITY_MEASURES = ("rounds", "non_questions", "repeated_questions_normalised", "dialogues_repeating",
                     "already_answered", "leaked_answers", "uncertain_answers", "mean_question_words",
                     "mean_answer_words")
_QUALITY_HEADER = ("system", *_QUALITY_MEASURES)
_QUALITY_NOTE = "Rules: " + "; ".join(f"{name}: {MEASURES[name]}" for name in _QUALITY_MEASURES) + "."


_COST_HEADER = ("system", "invocations", "wall s", *COST_FIELDS)
_COST_NOTE = ("What each run spent, summed over its invocations (costs.jsonl): API requests (retries included) and "
              "the server's token counts; local model generations and the tokenizer's counts; cache hits.")


def _cost_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows = []
    for run in comparison.runs:
        summed = summed_costs(RunStore(run.directory).costs())
        rows.append((run.name, f"{int(summed['invocations'])}", f"{summed.get('wall_seconds', 0):.1f}",
                     *(f"{int(summed.get(name, 0)):,}" for name in COST_FIELDS)))
    return rows


def _quality_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    rows = []
    for run in comparison.runs:
        store = RunStore(run.directory)
        try:
            dialogues, _ = run_dialogues(store, [record for record in run.records if record.status == "ok"])
        except HarnessError as error:
            rows.append((run.name, "not measured", *("",) * (len(_QUALITY_MEASURES) - 1)))
            log.warning("%s: dialogue quality not measured: %s", run.name, error)
            continue
        measures = quality_measures(dialogues)
        rows.append((run.name, *(format_measure(measures[name]) for name in _QUALITY_MEASURES)))
    return rows


def headline(comparison: Comparison) -> list[str]:
    """One sentence per primary test: the conclusion a reader looks for first."""
    sentences = []
    for benchmark in comparison.benchmarks:
        for test in benchmark.tests:
            if test.family != "primary":
                continue
            label = metric_label(test.metric, test.round)
            discordant = (f"; discordant dialogues {test.a_only} only {test.system_a}, {test.b_only} only "
                          f"{test.system_b}") if test.a_only is not None else ""
            verdict = (f"{test.better} is significantly better" if test.better else
                       "undecided (the Monte Carlo p-value is too close to alpha)" if test.undecided
                       else "no significant difference")
            sentences.append(
                f"{benchmark.benchmark}, {label}: {test.system_a} − {test.system_b} = {test.difference:+.2f} points "
                f"[{test.ci_low:+.2f}, {test.ci_high:+.2f}], {test.test} p = {test.p_value:.4g}, {test.correction.split(' across')[0]}-adjusted "
                f"{test.p_adjusted:.4g}{discordant}: {verdict}."
            )
    return sentences


def _settings_line(comparison: Comparison) -> str:
    settings = comparison.settings
    return (f"primary endpoint {settings.primary}, permutations {settings.permutations}, bootstrap resamples "
            f"{settings.bootstrap}, seed {settings.seed}, alpha {settings.alpha}, confidence {settings.confidence}, "
            f"correction {settings.correction}, "
            f"baseline {settings.baseline or '(none: all pairs)'}")


def render_markdown(comparison: Comparison, files: ReportFiles) -> str:
    parts = [
        "# Comparison report",
        "",
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')}. Settings: {_settings_line(comparison)}.",
        "",
    ]
    for warning in comparison.warnings:
        parts += [f"> **Warning:** {warning}", ""]
    parts += ["## Primary endpoint", ""] + [f"- {sentence}" for sentence in headline(comparison)] + [""]
    for benchmark in comparison.benchmarks:
        parts += [f"## {benchmark.benchmark} ({len(benchmark.paired)} dialogues, {benchmark.rounds - 1} rounds)", ""]
        for table in benchmark_tables(benchmark, comparison.settings):
            parts += [f"### {table.title}", "", to_markdown(table), ""]
    parts += ["## Plots", ""]
    parts += [f"![{plot.stem}]({plot.name})" for plot in files.plots] + [""]
    parts += ["## Runs", "", to_markdown(_plain_table(_RUN_HEADER, _run_rows(comparison))), ""]
    if files.explorer is not None:
        parts += [f"Every dialogue of these runs, turn by turn: [the dialogue explorer]({files.explorer.as_posix()}).",
                  ""]
    parts += ["## Dialogue quality", "", to_markdown(_plain_table(_QUALITY_HEADER, _quality_rows(comparison))), "",
              _QUALITY_NOTE, ""]
    parts += ["## Costs", "", to_markdown(_plain_table(_COST_HEADER, _cost_rows(comparison))), "", _COST_NOTE, ""]
    parts += ["## Methods", ""] + [f"- {line}" for line in describe_methods(comparison.settings)] + [""]
    parts += ["Files: `results.csv` (long format), `tests.csv` (every test), `table.tex`, `report.html`.", ""]
    return "\n".join(parts)


def _plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    return Table(title="", header=header, rows=tuple(tuple(Cell(value) for value in row) for row in rows))


def _embedded_image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(comparison: Comparison, files: ReportFiles) -> str:
    """A single HTML file: inline CSS, plots as data: URLs, no scripts, no external resources."""
    body = [
        "<h1>Comparison report</h1>",
        (f"<p>Generated {datetime.now(UTC).isoformat(timespec='seconds')}. Settings: "
        f"{html.escape(_settings_line(comparison))}.</p>"),
    ]
    body += [f'<p class="warning"><b>Warning:</b> {html.escape(warning)}</p>' for warning in comparison.warnings]
    body += ["<h2>Primary endpoint</h2>", "<ul>"]
    body += [f"<li>{html.escape(sentence)}</li>" for sentence in headline(comparison)] + ["</ul>"]
    by_name = {plot.name: plot for plot in files.plots}
    for benchmark in comparison.benchmarks:
        body.append(f"<h2>{html.escape(benchmark.benchmark)} ({len(benchmark.paired)} dialogues, "
                    f"{benchmark.rounds - 1} rounds)</h2>")
        for table in benchmark_tables(benchmark, comparison.settings):
            body += [f"<h3>{html.escape(table.title)}</h3>", to_html(table)]
    body.append("<h2>Plots</h2>")
    body += ['<div class="plots">'] + [_embedded_image(by_name[name]) for name in by_name] + ["</div>"]
    body += ["<h2>Runs</h2>", to_html(_plain_table(_RUN_HEADER, _run_rows(comparison)))]
    if files.explorer is not None:
        body.append(f'<p>Every dialogue of these runs, turn by turn: <a href="{html.escape(files.explorer.as_posix())}">'
                    "the dialogue explorer</a>.</p>")
    body += ["<h2>Dialogue quality</h2>", to_html(_plain_table(_QUALITY_HEADER, _quality_rows(comparison))),
             f"<p>{html.escape(_QUALITY_NOTE)}</p>"]
    body += ["<h2>Costs</h2>", to_html(_plain_table(_COST_HEADER, _cost_rows(comparison))),
             f"<p>{html.escape(_COST_NOTE)}</p>"]
    body += ["<h2>Methods</h2>", '<ul class="methods">']
    body += [f"<li>{html.escape(line)}</li>" for line in describe_methods(comparison.settings)] + ["</ul>"]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Comparison report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def render_latex(comparison: Comparison) -> str:
    """Per benchmark: the summary table and the primary metric per round (needs ``\\usepackage{booktabs}``)."""
    parts = ["% Generated by `harness report`; needs \\usepackage{booktabs}.",
             f"% Settings: {_settings_line(comparison)}"]
    for benchmark in comparison.benchmarks:
        parts += ["", to_latex(summary_table(benchmark, comparison.settings)), ""]
        parts.append(to_latex(round_table(benchmark, "Hits@10", comparison.settings)))
    return "\n".join(parts) + "\n"


def _number(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def write_results_csv(comparison: Comparison, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(RESULTS_COLUMNS)
        for benchmark in comparison.benchmarks:
            for system in benchmark.systems:
                for metric, curves in benchmark.curves.items():
                    curve = curves[system]
                    for round_ in range(len(curve.values)):
                        writer.writerow((system, benchmark.benchmark, round_, metric, _number(curve.values[round_]),
                                         _number(curve.low[round_]), _number(curve.high[round_])))
                for metric, estimates in benchmark.summary.items():
                    if metric in benchmark.curves:
                        continue  # already written per round
                    estimate = estimates[system]
                    writer.writerow((system, benchmark.benchmark, "", metric, _number(estimate.value),
                                     _number(estimate.low), _number(estimate.high)))
                if system in benchmark.degradation:
                    rate = benchmark.degradation[system].rate
                    for round_ in range(len(rate.values)):
                        writer.writerow((system, benchmark.benchmark, round_, "Degradation", _number(rate.values[round_]),
                                         _number(rate.low[round_]), _number(rate.high[round_])))


def write_tests_csv(comparison: Comparison, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(TESTS_COLUMNS)
        for benchmark in comparison.benchmarks:
            for test in benchmark.tests:
                writer.writerow(tuple("" if getattr(test, column) is None else getattr(test, column)
                                      for column in TESTS_COLUMNS))
