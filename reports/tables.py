"""Table models of a comparison and their Markdown, HTML and LaTeX renderings.

    for table in benchmark_tables(comparison.benchmarks[0], comparison.settings):
        print(to_markdown(table))

A ``Table`` is rows of ``Cell``s: the formatted value, whether it is the best of its column (bold), and the
ranx-style superscript letters of the systems it is significantly better than.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from reports.compare import CORRECTION_NAMES, LOWER_IS_BETTER, BenchmarkComparison, PairTest, ReportSettings


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False
    superscript: str = ""


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""
    key: str = ""  # short identifier (LaTeX label, file names)


def format_value(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in ("MRR", "BRI"):
        return f"{value:.4f}"
    if metric == "MedR":
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_difference(metric: str, value: float) -> str:
    return f"{value:+.4f}" if metric in ("MRR", "BRI") else f"{value:+.2f}"


def format_p(p: float) -> str:
    if p < 1e-4:
        return "<0.0001"
    return f"{p:.4f}"


def metric_label(metric: str, round_: int | None) -> str:
    if metric.endswith("-AUC"):
        return f"{metric.removesuffix('-AUC')} AUC"
    if round_ is None:
        return metric
    return f"{metric} (round {round_})"


def _best_flags(values: Sequence[float], lower_is_better: bool) -> list[bool]:
    finite = [value for value in values if not math.isnan(value)]
    if not finite:
        return [False] * len(values)
    best = min(finite) if lower_is_better else max(finite)
    return [not math.isnan(value) and math.isclose(value, best, rel_tol=1e-9, abs_tol=1e-12) for value in values]


def _system_label(benchmark: BenchmarkComparison, system: str) -> str:
    return f"({benchmark.letters[system]}) {system}"


def summary_table(benchmark: BenchmarkComparison, settings: ReportSettings) -> Table:
    """Systems x (primary endpoint, MRR at the last round, BRI) with intervals; letters from the Holm-corrected
    primary and rank-measure tests."""
    columns = benchmark.summary_columns()
    header = ("system", *(metric_label(metric, round_) for metric, round_ in columns), "dialogues")
    cells: dict[str, list[Cell]] = {system: [] for system in benchmark.systems}
    for metric, round_ in columns:
        estimates = benchmark.summary[metric]
        flags = _best_flags([estimates[s].value for s in benchmark.systems], metric in LOWER_IS_BETTER)
        family = "primary" if metric == settings.primary_metric else "rank"
        wins = benchmark.wins(metric, round_, family)
        for system, best in zip(benchmark.systems, flags):
            estimate = estimates[system]
            text = f"{format_value(metric, estimate.value)} [{format_value(metric, estimate.low)}, " \
                   f"{format_value(metric, estimate.high)}]"
            letters = "".join(benchmark.letters[loser] for loser in wins[system])
            cells[system].append(Cell(text, best, letters))
    rows = tuple(
        (Cell(_system_label(benchmark, system)), *cells[system], Cell(str(len(benchmark.paired))))
        for system in benchmark.systems
    )
    return Table(
        title=f"{benchmark.benchmark}: summary",
        header=header,
        rows=rows,
        note=f"Hits@k: proportion [{settings.confidence:.0%} Clopper-Pearson CI]; other measures: mean "
        f"[{settings.confidence:.0%} bootstrap CI]. Bold: best. Superscripts: significantly better than the lettered "
        f"systems (alpha {settings.alpha}, {CORRECTION_NAMES[settings.correction]}-corrected across comparisons).",
        key=f"{benchmark.benchmark}-summary",
    )


def round_table(benchmark: BenchmarkComparison, metric: str, settings: ReportSettings) -> Table:
    """Systems x rounds of one per-round metric; letters from the per-round tests (corrected across rounds)."""
    rounds = benchmark.rounds
    header = ("system", *(f"r{round_}" for round_ in range(rounds)))
    curves = benchmark.curves[metric]
    grid: dict[str, list[Cell]] = {system: [] for system in benchmark.systems}
    for round_ in range(rounds):
        values = [float(curves[system].values[round_]) for system in benchmark.systems]
        flags = _best_flags(values, metric in LOWER_IS_BETTER)
        wins = benchmark.wins(metric, round_, "per-round")
        for system, value, best in zip(benchmark.systems, values, flags):
            letters = "".join(benchmark.letters[loser] for loser in wins[system])
            grid[system].append(Cell(format_value(metric, value), best, letters))
    kind = "accumulated (target in the top k at any round so far)" if metric.startswith("Hits@") else "per round"
    note = f"{metric}, {kind}." if metric.startswith(("Hits@", "Recall@")) else f"{metric} per round."
    if metric == "BRI":
        note = ("BRI of rounds 0..t (trapezoid mean of log(best rank so far + 1); round 0: log(rank + 1)); lower is "
                "better; the last round is the dialogue's BRI.")
    if metric == "MedR":
        note += " Median 1-based rank; lower is better; no test."
    else:
        note += (" Superscripts: per-round tests, secondary, "
                 f"{CORRECTION_NAMES[settings.correction]}-corrected across rounds.")
    return Table(
        title=f"{benchmark.benchmark}: {metric} per round",
        header=header,
        rows=tuple((Cell(_system_label(benchmark, system)), *grid[system]) for system in benchmark.systems),
        note=note,
        key=f"{benchmark.benchmark}-{metric}",
    )


def tests_table(benchmark: BenchmarkComparison, settings: ReportSettings) -> Table:
    """The primary and rank-measure tests: difference [CI], discordant counts, raw and corrected p."""
    correction = "Holm" if settings.correction == "holm" else "BH"  # short: a column header
    header = ("endpoint", "A vs B", "test", "A − B [CI]", "only A / only B", "p", f"p ({correction})", "significant")
    rows = []
    for test in benchmark.tests:
        if test.family == "per-round":
            continue
        rows.append(_test_row(test))
    return Table(
        title=f"{benchmark.benchmark}: tests",
        header=header,
        rows=tuple(rows),
        note="Primary endpoint first; rank measures after. Differences in percentage points for Hits, raw units for "
        "MRR and BRI (lower BRI is better). 'only A / only B': McNemar's discordant dialogues. Monte Carlo p-values "
        "± their standard error; 'undecided': alpha lies inside the 99% interval of the corrected p.",
        key=f"{benchmark.benchmark}-tests",
    )


def _test_row(test: PairTest) -> tuple[Cell, ...]:
    discordant = f"{test.a_only} / {test.b_only}" if test.a_only is not None else "–"
    if test.undecided:
        needed = f"; ~{test.permutations_needed:,} permutations would settle it" if test.permutations_needed else ""
        verdict = f"undecided{needed}"
    else:
        verdict = f"yes: {test.better} better" if test.better else "no"
    p_value = format_p(test.p_value) + (f" ± {test.p_error:.4f}" if test.p_error else "")
    label = metric_label(test.metric, test.round) + (" (primary)" if test.family == "primary" else "")
    return (
        Cell(label),
        Cell(f"{test.system_a} vs {test.system_b}"),
        Cell(test.test),
        Cell(f"{format_difference(test.metric, test.difference)} [{format_difference(test.metric, test.ci_low)}, "
             f"{format_difference(test.metric, test.ci_high)}]"),
        Cell(discordant),
        Cell(p_value),
        Cell(format_p(test.p_adjusted)),
        Cell(verdict, bool(test.better)),
    )


def degradation_table(benchmark: BenchmarkComparison) -> Table | None:
    """Degradation rate per round (and mean rank drop of the degraded queries) of fused runs."""
    if not benchmark.degradation:
        return None
    header = ("system", *(f"r{round_}" for round_ in range(benchmark.rounds)))
    rows = []
    for system, degradation in benchmark.degradation.items():
        cells = [
            Cell(f"{rate:.1f}% ({'–' if math.isnan(drop) else f'{drop:.1f}'})")
            for rate, drop in zip(degradation.rate.values, degradation.mean_drop)
        ]
        rows.append((Cell(_system_label(benchmark, system)), *cells))
    return Table(
        title=f"{benchmark.benchmark}: degradation",
        header=header,
        rows=tuple(rows),
        note="Percentage of queries the fused retriever ranks worse than its own text-only query, and in brackets "
        "the mean rank drop of those degraded queries.",
        key=f"{benchmark.benchmark}-degradation",
    )


def benchmark_tables(benchmark: BenchmarkComparison, settings: ReportSettings) -> list[Table]:
    tables = [summary_table(benchmark, settings), tests_table(benchmark, settings)]
    tables.extend(round_table(benchmark, metric, settings) for metric in settings.round_metrics
                  if metric in benchmark.curves)
    degradation = degradation_table(benchmark)
    if degradation is not None:
        tables.append(degradation)
    return tables


# --- renderings -------------------------------------------------------------------------------------------------


def to_markdown(table: Table) -> str:
    def cell(value: Cell) -> str:
        text = value.text.replace("|", "\\|")
        if value.best:
            text = f"**{text}**"
        if value.superscript:
            text += f"<sup>{value.superscript}</sup>"
        return text

    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    lines.extend("| " + " | ".join(cell(value) for value in row) + " |" for row in table.rows)
    if table.note:
        lines.extend(["", f"*{table.note}*"])
    return "\n".join(lines)


def to_html(table: Table) -> str:
    def cell(value: Cell, tag: str = "td") -> str:
        text = html.escape(value.text)
        if value.best:
            text = f"<b>{text}</b>"
        if value.superscript:
            text += f"<sup>{html.escape(value.superscript)}</sup>"
        return f"<{tag}>{text}</{tag}>"

    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.header)
    body = "\n".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n{note}"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    text = "".join(_LATEX_SPECIAL.get(char, char) for char in text)
    return text.replace("–", "--").replace("−", "$-$")


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""

    def cell(value: Cell) -> str:
        text = latex_escape(value.text)
        if value.best:
            text = f"\\textbf{{{text}}}"
        if value.superscript:
            text += f"$^{{{value.superscript}}}$"
        return text

    label = "".join(char if char.isalnum() or char in "-:" else "-" for char in table.key)
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(table.title)}. {latex_escape(table.note)}}}",
        f"\\label{{tab:{label}}}",
        "\\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}",
        "\\toprule",
        " & ".join(latex_escape(name) for name in table.header) + " \\\\",
        "\\midrule",
    ]
    lines.extend(" & ".join(cell(value) for value in row) + " \\\\" for row in table.rows)
    lines.extend(["\\bottomrule", "\\end{tabular}", "\\end{table}"])
    return "\n".join(lines)
