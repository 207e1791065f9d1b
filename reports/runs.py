"""Load run directories and pair them per benchmark for comparison.

    runs = load_runs([Path("runs/chatir-visdial"), Path("runs/dar-visdial")])   # names: the directory names
    for paired in pair_runs(runs):
        paired.benchmark, paired.systems, paired.ranks["chatir-visdial"].shape   # (dialogues x rounds)

Runs are grouped by benchmark name (a run whose benchmark files match a group's sha256 joins that group). Within a group every run must have used the same benchmark files (their sha256
in the manifest), the same number of rounds and the same dialogue ids; anything else is a ``HarnessError`` naming
the runs and what differs. Dialogues that failed in any run of a group are dropped from every run of the group (the
comparison is on the intersection), with a warning saying how many and where.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.store import RunStore
from harness.types import RunRecord

log = logging.getLogger(__name__)

TEXT_ONLY = "text_only"


@dataclass(frozen=True)
class LoadedRun:
    """One run directory: its manifest and its records (the last record per dialogue)."""

    name: str
    directory: Path
    manifest: Mapping[str, Any]
    records: tuple[RunRecord, ...]

    @property
    def benchmark(self) -> str:
        return str(self.manifest.get("benchmark", {}).get("name") or self.manifest["identity"].get("benchmark"))

    @property
    def benchmark_files(self) -> dict[str, str]:
        """role -> sha256 of the benchmark files the run used (the manifest stores "path sha256")."""
        files = self.manifest.get("identity", {}).get("benchmark_files", {})
        return {role: str(value).rsplit(" ", 1)[-1] for role, value in files.items()}

    @property
    def retriever(self) -> str:
        return str(self.manifest.get("spec", {}).get("retriever") or self.manifest["identity"].get("retriever"))

    @property
    def query_mode(self) -> str:
        """How each round's query text was made: the retriever's own mode where it has one (DAR reads its captions
        file so), else the run's ``--query-mode`` (join for runs older than the option)."""
        retriever = self.manifest.get("components", {}).get("identities", {}).get("retriever", {})
        return str(retriever.get("query_mode") or self.manifest.get("identity", {}).get("query_mode") or "join")

    @property
    def failed_ids(self) -> tuple[str, ...]:
        return tuple(record.dialogue_id for record in self.records if record.status != "ok")


@dataclass(frozen=True)
class PairedRuns:
    """The runs of one benchmark on their common, successfully evaluated dialogues (rows in ``dialogue_ids``
    order). ``side_ranks[system]`` holds the named side ranks (e.g. ``text_only``) a run carries for every kept
    dialogue; ``excluded`` the dialogues dropped because they failed in some run."""

    benchmark: str
    benchmark_files: Mapping[str, str]
    systems: tuple[str, ...]
    dialogue_ids: tuple[str, ...]
    ranks: Mapping[str, np.ndarray]
    side_ranks: Mapping[str, Mapping[str, np.ndarray]]
    excluded: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def rounds(self) -> int:
        """Number of rounds including round 0 (the caption)."""
        return int(next(iter(self.ranks.values())).shape[1])

    def __len__(self) -> int:
        return len(self.dialogue_ids)


def load_run(directory: Path, name: str | None = None) -> LoadedRun:
    """Read a run directory (``manifest.json`` + ``ranks.jsonl``); ``name`` defaults to the directory's name."""
    directory = Path(directory)
    store = RunStore(directory)
    manifest = store.read_manifest()
    records = tuple(store.records())
    if not records:
        raise HarnessError(f"run {directory} has no dialogue records yet ({store.ranks_path} is empty)")
    return LoadedRun(name or directory.resolve().name, directory, manifest, records)


def load_runs(directories: Sequence[Path], names: Sequence[str] | None = None) -> list[LoadedRun]:
    """Load several runs; ``names`` (one per directory, in order) replace the directory names."""
    if names is not None and len(names) not in (0, len(directories)):
        raise HarnessError(f"got {len(names)} names for {len(directories)} runs; give one name per run, in order")
    return [load_run(directory, names[i] if names else None) for i, directory in enumerate(directories)]


def pair_runs(runs: Sequence[LoadedRun]) -> list[PairedRuns]:
    """Group ``runs`` by benchmark (in order of first appearance) and pair each group's dialogues.

    A run joins the group of its benchmark name, or else the group whose benchmark files have the same sha256 (the
    same file given by name and by path). System names must be unique within a group; the same system name on
    several benchmarks is how one system is followed across them."""
    groups: dict[str, list[LoadedRun]] = {}
    for run in runs:
        if not run.benchmark_files:
            raise HarnessError(
                f"run {run.name} ({run.directory}): its manifest records no benchmark file sha256 "
                "(identity.benchmark_files), so its pairing with other runs cannot be checked"
            )
        key = run.benchmark
        if key not in groups:
            key = next((name for name, group in groups.items() if group[0].benchmark_files == run.benchmark_files), key)
        group = groups.setdefault(key, [])
        clash = next((other for other in group if other.name == run.name), None)
        if clash is not None:
            raise HarnessError(
                f"two runs on benchmark {key!r} are both named {run.name!r} ({clash.directory} and {run.directory}); "
                "give each run a distinct name (--name, once per run, in order)"
            )
        group.append(run)
    return [_pair_group(benchmark, group) for benchmark, group in groups.items()]


def _pair_group(benchmark: str, runs: Sequence[LoadedRun]) -> PairedRuns:
    reference = runs[0]
    for run in runs[1:]:
        check_same_benchmark(benchmark, reference, run)

    all_ids = [[record.dialogue_id for record in run.records] for run in runs]
    for run, ids in zip(runs[1:], all_ids[1:]):
        check_same_dialogues(benchmark, reference, all_ids[0], run, ids)

    failed = {run.name: set(run.failed_ids) for run in runs}
    excluded_set = set().union(*failed.values())
    order = [dialogue_id for dialogue_id in all_ids[0] if dialogue_id not in excluded_set]
    warnings: list[str] = []
    if len(runs) == 1:
        warnings.append(f"{benchmark}: only one system ({reference.name}); its values are shown, nothing is tested")
        log.warning(warnings[-1])
    if excluded_set:
        by_run = ", ".join(f"{name}: {len(ids)}" for name, ids in failed.items() if ids)
        warnings.append(
            f"{benchmark}: {len(excluded_set)} of {len(all_ids[0])} dialogues excluded from every system because they "
            f"failed in at least one run (failed dialogues per run: {by_run}); compared on the remaining {len(order)}"
        )
        log.warning(warnings[-1])
    if not order:
        raise HarnessError(f"{benchmark}: no dialogue succeeded in every run; nothing to compare")

    ranks: dict[str, np.ndarray] = {}
    side_ranks: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        by_id = {record.dialogue_id: record for record in run.records}
        kept = [by_id[dialogue_id] for dialogue_id in order]
        lengths = {len(record.ranks) for record in kept}
        if len(lengths) != 1:
            raise HarnessError(f"run {run.name} ({run.directory}) has dialogues with different numbers of rounds")
        ranks[run.name] = np.array([record.ranks for record in kept], dtype=np.int64)
        names = set.intersection(*(set(record.side_ranks) for record in kept))
        side_ranks[run.name] = {
            side: np.array([record.side_ranks[side] for record in kept], dtype=np.int64)
            for side in sorted(names)
            if all(len(record.side_ranks[side]) == len(record.ranks) for record in kept)
        }
    rounds = {name: matrix.shape[1] for name, matrix in ranks.items()}
    if len(set(rounds.values())) != 1:
        listing = ", ".join(f"{name}: {count - 1}" for name, count in rounds.items())
        raise HarnessError(f"{benchmark}: the runs evaluated different numbers of rounds ({listing}); rerun with the "
                           "same --rounds to compare them")
    return PairedRuns(
        benchmark=benchmark,
        benchmark_files=reference.benchmark_files,
        systems=tuple(run.name for run in runs),
        dialogue_ids=tuple(order),
        ranks=ranks,
        side_ranks=side_ranks,
        excluded=tuple(dialogue_id for dialogue_id in all_ids[0] if dialogue_id in excluded_set),
        warnings=tuple(warnings),
    )


def check_same_benchmark(benchmark: str, reference: LoadedRun, run: LoadedRun) -> None:
    mine, theirs = reference.benchmark_files, run.benchmark_files
    differences = []
    for role in sorted(set(mine) | set(theirs)):
        if mine.get(role) != theirs.get(role):
            differences.append(f"{role} sha256 {mine.get(role, '(absent)')[:12]} vs {theirs.get(role, '(absent)')[:12]}")
    if differences:
        raise HarnessError(
            f"runs {reference.name} ({reference.directory}) and {run.name} ({run.directory}) are both on benchmark "
            f"{benchmark!r} but used different benchmark files: {'; '.join(differences)}. Compare runs of the same "
            "benchmark files only"
        )


def check_same_dialogues(
    benchmark: str, reference: LoadedRun, reference_ids: list[str], run: LoadedRun, ids: list[str]
) -> None:
    mine, theirs = set(reference_ids), set(ids)
    if mine == theirs:
        return
    only_mine = sorted(mine - theirs, key=natural_order)
    only_theirs = sorted(theirs - mine, key=natural_order)
    parts = [f"{reference.name} has {len(mine)} dialogues, {run.name} has {len(theirs)}"]
    if only_mine:
        parts.append(f"{len(only_mine)} only in {reference.name} (first: {', '.join(only_mine[:5])})")
    if only_theirs:
        parts.append(f"{len(only_theirs)} only in {run.name} (first: {', '.join(only_theirs[:5])})")
    raise HarnessError(
        f"runs {reference.name} ({reference.directory}) and {run.name} ({run.directory}) on benchmark {benchmark!r} "
        f"hold different dialogue ids: {'; '.join(parts)}. Finish or resume the runs (or use the same --limit) "
        "before comparing them"
    )


def natural_order(dialogue_id: str) -> tuple[int, int | str]:
    return (0, int(dialogue_id)) if dialogue_id.isdigit() else (1, dialogue_id)
