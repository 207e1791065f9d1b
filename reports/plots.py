"""Per-round curves with bootstrap bands, one panel per benchmark, one line per system (headless matplotlib).

    plot_curves(comparison, "Hits@10", Path("out/curve-hits-at-10.png"))
    plot_degradation(comparison, Path("out/degradation.png"))    # None when no run carries text-only ranks

Figures are drawn on the Agg canvas directly (``matplotlib.figure.Figure``), never through pyplot, so no display
and no global backend state are involved.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.compare import BenchmarkComparison, Comparison, Curve

PANEL_SIZE = (5.5, 4.0)
DPI = 100


def plot_file_name(metric: str) -> str:
    """``Hits@10`` -> ``curve-hits-at-10.png``."""
    return "curve-" + re.sub(r"[^a-z0-9]+", "-", metric.lower().replace("@", "-at-")).strip("-") + ".png"


def _figure(panels: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL_SIZE[0] * panels, PANEL_SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


def _draw(axis, curves: dict[str, Curve], benchmark: BenchmarkComparison) -> None:
    if not curves:
        axis.text(0.5, 0.5, "not defined for a single round", ha="center", va="center", transform=axis.transAxes)
        return
    for system, curve in curves.items():
        rounds = np.arange(len(curve.values))
        color = f"C{benchmark.systems.index(system) % 10}"  # a system keeps its colour in every plot
        label = f"({benchmark.letters[system]}) {system}"
        axis.plot(rounds, curve.values, marker="o", markersize=3, color=color, label=label)
        if not np.isnan(curve.low).all():
            axis.fill_between(rounds, curve.low, curve.high, color=color, alpha=0.18, linewidth=0)
    axis.set_xlabel("round")
    axis.set_xticks(np.arange(len(next(iter(curves.values())).values)))
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small")


def plot_curves(comparison: Comparison, metric: str, path: Path) -> Path:
    """One panel per benchmark: ``metric`` per round for every system, shaded with its bootstrap interval."""
    figure, axes = _figure(len(comparison.benchmarks))
    confidence = comparison.settings.confidence
    for axis, benchmark in zip(axes, comparison.benchmarks):
        _draw(axis, dict(benchmark.curves.get(metric, {})), benchmark)  # BRI is absent where only round 0 ran
        axis.set_title(benchmark.benchmark)
        unit = " (%)" if metric.startswith(("Hits@", "Recall@")) else ""
        axis.set_ylabel(metric + unit)
    band = "" if metric == "MedR" else f"; bands: {confidence:.0%} bootstrap CI"
    kind = " (accumulated)" if metric.startswith("Hits@") else ""
    figure.suptitle(f"{metric}{kind} per round{band}", fontsize="medium")
    figure.savefig(path, format="png")
    return path


def plot_degradation(comparison: Comparison, path: Path) -> Path | None:
    """Degradation rate per round of the runs that carry text-only ranks; None (no file) when none does."""
    benchmarks: list[BenchmarkComparison] = [benchmark for benchmark in comparison.benchmarks if benchmark.degradation]
    if not benchmarks:
        return None
    figure, axes = _figure(len(benchmarks))
    for axis, benchmark in zip(axes, benchmarks):
        curves = {system: degradation.rate for system, degradation in benchmark.degradation.items()}
        _draw(axis, curves, benchmark)
        axis.set_title(benchmark.benchmark)
        axis.set_ylabel("degraded queries (%)")
        axis.set_ylim(0, 100)
    figure.suptitle(f"Degradation rate per round\n(fused rank worse than text-only rank; "
                    f"bands: {comparison.settings.confidence:.0%} bootstrap CI)", fontsize="medium")
    figure.savefig(path, format="png")
    return path
