"""What the dialogue explorer shows, read from run directories: every dialogue of the runs' benchmark with each
system's ranks, turns, trace and status, the quality flags of its turns, and which dialogues get a page.

    data = load_explorer_data(load_runs([Path("runs/flan-chatir"), Path("runs/flan-dar")]), Selection(limit=100))

The runs must share their benchmark files and dialogue ids (checked as ``harness report`` checks them). Unlike the
report, a dialogue that failed in some run stays: the explorer shows it with its failure. The benchmark (dialogue
file and search space) is read back from the paths the first run's manifest names and must still hash to what the
run recorded, so a top-k image position always names the image the run ranked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.dialogue_quality import generation_measures, quality_measures
from harness.errors import ConfigError, HarnessError
from harness.registry import REGISTRY
from harness.store import RunStore
from harness.types import Benchmark, Dialogue
from reports.runs import LoadedRun, check_same_benchmark, check_same_dialogues, natural_order

DEFAULT_PAGES = 100
# Quality flags a dialogue can carry: (measure counted by harness.dialogue_quality, the label shown)
QUALITY_FLAGS = (
    ("empty_questions", "empty question"),
    ("non_questions", "no question mark"),
    ("repeated_questions_normalised", "repeated question"),
    ("already_answered", "already answered"),
    ("leaked_answers", "leaked answer"),
    ("uncertain_answers", "uncertain answer"),
    ("turns_redrawn", "redrawn turn"),
    ("turns_kept_invalid", "invalid turn kept"),
)
FAILED_FLAG = "failed"


@dataclass(frozen=True)
class Selection:
    """Which dialogues get a page and thumbnails: ``ids``, or a seeded ``sample`` of N, or the first ``limit``."""

    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        chosen = [name for name, value in (("--limit", self.limit), ("--sample", self.sample),
                                           ("--dialogues", self.ids or None)) if value is not None]
        if len(chosen) > 1:
            raise ConfigError(f"choose the dialogues shown with one of --limit, --sample, --dialogues (got "
                              f"{' and '.join(chosen)})")
        for name, value in (("--limit", self.limit), ("--sample", self.sample)):
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be 0 or more, got {value}")

    def choose(self, dialogue_ids: Sequence[str]) -> tuple[str, ...]:
        if self.ids:
            unknown = [dialogue_id for dialogue_id in self.ids if dialogue_id not in set(dialogue_ids)]
            if unknown:
                raise ConfigError(f"--dialogues names {len(unknown)} dialogues the runs do not hold (first: "
                                  f"{', '.join(unknown[:5])})")
            return tuple(dict.fromkeys(self.ids))
        if self.sample is not None:
            chosen = set(random.Random(self.seed).sample(list(dialogue_ids), min(self.sample, len(dialogue_ids))))
            return tuple(dialogue_id for dialogue_id in dialogue_ids if dialogue_id in chosen)
        return tuple(dialogue_ids[: DEFAULT_PAGES if self.limit is None else self.limit])


@dataclass(frozen=True)
class SystemTurns:
    """One system's side of a dialogue."""

    status: str
    error: str | None
    ranks: tuple[int, ...]
    turns: tuple[str, ...]  # the caption and the rounds this system was ranked on (generated ones for a live run)
    trace: tuple[Mapping[str, Any], ...]  # trace.jsonl rounds, in round order (empty for runs without a trace)
    flags: tuple[str, ...]

    def round_trace(self, round_: int) -> Mapping[str, Any]:
        return next((entry for entry in self.trace if entry.get("round") == round_), {})


@dataclass(frozen=True)
class DialogueView:
    dialogue_id: str
    target: str
    caption: str
    systems: Mapping[str, SystemTurns]

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(flag for turns in self.systems.values() for flag in turns.flags))


@dataclass(frozen=True)
class ExplorerData:
    benchmark: Benchmark
    systems: tuple[str, ...]
    runs: Mapping[str, LoadedRun]
    dialogues: tuple[DialogueView, ...]
    pages: tuple[str, ...]  # ids of the dialogues with a page

    @property
    def rounds(self) -> int:
        return max((len(turns.ranks) for view in self.dialogues for turns in view.systems.values()), default=0)


def load_explorer_data(runs: Sequence[LoadedRun], selection: Selection, image_root: Path | None = None
                       ) -> ExplorerData:
    if not runs:
        raise HarnessError("give at least one run directory")
    reference = runs[0]
    reference_ids = [record.dialogue_id for record in reference.records]
    for run in runs[1:]:
        check_same_benchmark(reference.benchmark, reference, run)
        check_same_dialogues(reference.benchmark, reference, reference_ids, run,
                             [record.dialogue_id for record in run.records])
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise HarnessError(f"two runs share a name ({', '.join(names)}); give each a distinct name with --name")
    benchmark = _benchmark_of(reference, image_root)
    recorded = {dialogue.dialogue_id: dialogue for dialogue in benchmark.dialogues}
    order = sorted(reference_ids, key=natural_order)
    unknown = [dialogue_id for dialogue_id in order if dialogue_id not in recorded]
    if unknown:
        raise HarnessError(f"run {reference.name} holds dialogues its benchmark file does not ({', '.join(unknown[:5])})")
    per_system = {run.name: _system_turns(run, recorded) for run in runs}
    dialogues = tuple(
        DialogueView(dialogue_id, recorded[dialogue_id].target, recorded[dialogue_id].caption,
                     {name: per_system[name][dialogue_id] for name in names})
        for dialogue_id in order)
    return ExplorerData(benchmark, tuple(names), {run.name: run for run in runs}, dialogues, selection.choose(order))


def _benchmark_of(run: LoadedRun, image_root: Path | None) -> Benchmark:
    files = run.manifest.get("benchmark", {}).get("files", {})
    dialogues, search_space = files.get("dialogues"), files.get("search_space")
    if not dialogues or not search_space:
        raise HarnessError(f"run {run.name} ({run.directory}): its manifest names no benchmark files to read back")
    root = image_root or run.manifest.get("spec", {}).get("image_root")
    benchmark, _ = REGISTRY.build("benchmark", "chatir-file", dialogues=Path(dialogues),
                                  search_space=Path(search_space), image_root=Path(root) if root else None,
                                  expected_turns=None)
    changed = [role for role, digest in run.benchmark_files.items() if benchmark.files.get(role) != digest]
    if changed:
        raise HarnessError(f"run {run.name}: the benchmark's {' and '.join(changed)} file changed since the run "
                           f"({', '.join(str(files[role]) for role in changed)}); the explorer needs the very files "
                           "the run ranked")
    return benchmark


def _system_turns(run: LoadedRun, recorded: Mapping[str, Dialogue]) -> dict[str, SystemTurns]:
    traces = RunStore(run.directory).traces(run.records)
    shown: dict[str, SystemTurns] = {}
    for record in run.records:
        if record.dialog is not None:
            turns = tuple(record.dialog)
        else:
            replayed = recorded.get(record.dialogue_id)
            turns = replayed.turns[: max(1, len(record.ranks))] if replayed is not None else ()
        trace = tuple(sorted(traces.get(record.dialogue_id, ()), key=lambda entry: int(entry.get("round", 0))))
        measured = quality_measures([Dialogue(record.dialogue_id, record.target, turns)]) if turns else {}
        generated = generation_measures([trace], 0)["overall"]
        flags = [label for name, label in QUALITY_FLAGS if measured.get(name) or generated.get(name)]
        if record.status != "ok":
            flags.append(FAILED_FLAG)
        shown[record.dialogue_id] = SystemTurns(record.status, record.error, tuple(record.ranks), turns, trace,
                                                tuple(flags))
    return shown
