"""Plain-text tables of one run's per-round metrics, for the terminal.

    >>> print(format_round_table({"Hits@10": [50.0, 75.0]}, ["Hits@10"]))
    metric      r0     r1
    Hits@10  50.00  75.00
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ROUND_METRICS = ("Hits@1", "Hits@5", "Hits@10")
# Printed when a run has them: fused runs (DAR, ADaFuSE) carry degradation, learned fusion its mean gate.
FUSION_METRICS = ("Degradation", "RankDrop", "GateMean")
DIAGNOSTICS = ("TiedTargets", "TruncatedQueries")


def format_quality_table(quality: Mapping[str, Any]) -> str:
    """The per-round dialogue-quality counts a run has (those that are never zero are left out) and the mean question
    and answer length, from metrics.json's ``DialogueQuality`` entry."""
    per_round = quality["per_round"]
    shown = [name for name, values in per_round.items()
             if name != "rounds" and (name.startswith("mean") or any(values[1:]))]
    rows = {name: [None if value is None else float(value) for value in per_round[name]] for name in shown}
    return "dialogue quality\n" + format_round_table(rows, shown)


def format_round_table(metrics: Mapping[str, Any], names: Sequence[str] = ROUND_METRICS + FUSION_METRICS + DIAGNOSTICS) -> str:
    """One row per metric of ``names`` the run has, one column per round (``-`` where a round has no value)."""
    rows = [(name, metrics[name]) for name in names if isinstance(metrics.get(name), list)]
    if not rows:
        return "(no metrics)"
    rounds = len(rows[0][1])
    label_width = max(len("metric"), *(len(name) for name, _ in rows))
    cells = [["-" if value is None else f"{value:.2f}" for value in values] for _, values in rows]
    width = max(len(f"r{rounds - 1}"), *(len(cell) for row in cells for cell in row))
    header = "metric".ljust(label_width) + "".join(f"  {f'r{r}':>{width}}" for r in range(rounds))
    lines = [header]
    for (name, _), row in zip(rows, cells):
        lines.append(name.ljust(label_width) + "".join(f"  {cell:>{width}}" for cell in row))
    return "\n".join(lines)
