"""``harness dialogues stats``: the dialogue-quality measures of benchmark files and runs, side by side.

    harness dialogues stats DATA/dialogues/FLAN_ALPACA_XXL_BLIP2.json DATA/dialogues/Human_BLIP2.json runs/flan-live

A source is a ChatIR-format file or a run directory: a live run's generated dialogues (failed ones included, as far
as they got), or, for a run that replayed a file, that file as its manifest names it. The measures and their rules
are ``harness.dialogue_quality.MEASURES``, the same counters ``harness data validate`` reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.dialogue_files import read_chatir_dialogues
from harness.dialogue_quality import MEASURES, format_measure, quality_measures
from harness.errors import HarnessError
from harness.run_dialogues import run_dialogues
from harness.store import RunStore
from harness.types import Dialogue


@dataclass(frozen=True)
class MeasuredSource:
    label: str
    origin: str  # what was measured: the file, or the run and where its dialogues came from
    measures: dict[str, float]


def measure_sources(sources: Sequence[Path]) -> list[MeasuredSource]:
    """The measures of every source, in order."""
    names = [Path(source).name or str(source) for source in sources]
    measured = []
    for source, name in zip(sources, names):
        dialogues, origin = _dialogues_of(Path(source))
        label = name if names.count(name) == 1 else str(source)  # two runs/files of one name: their paths tell them apart
        measured.append(MeasuredSource(label, origin, quality_measures(dialogues)))
    return measured


def format_stats(measured: Sequence[MeasuredSource]) -> str:
    """One row per measure, one column per source; counts as integers, means with two decimals."""
    labels = [item.label for item in measured]
    width = max(12, *(len(label) for label in labels))
    name_width = max(len(name) for name in MEASURES)
    lines = ["measure".ljust(name_width) + "".join(f"  {label:>{width}}" for label in labels)]
    for name in MEASURES:
        cells = [format_measure(item.measures[name]) for item in measured]
        lines.append(name.ljust(name_width) + "".join(f"  {cell:>{width}}" for cell in cells))
    lines.append("")
    lines.extend(f"{item.label}: {item.origin}" for item in measured)
    lines.append("")
    lines.extend(f"{name}: {rule}" for name, rule in MEASURES.items())
    return "\n".join(lines)


def _dialogues_of(source: Path) -> tuple[tuple[Dialogue, ...], str]:
    if source.is_file():
        return read_chatir_dialogues(source, expected_turns=None), str(source)
    if not source.is_dir():
        raise HarnessError(f"{source} is neither a dialogue file nor a run directory")
    store = RunStore(source)
    records = store.checked_records()
    dialogues, origin = run_dialogues(store, records)
    failed = sum(record.status != "ok" for record in records)
    return dialogues, f"run {source}: {origin} ({failed} failed, measured as far as they got)"
