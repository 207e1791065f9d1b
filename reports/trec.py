"""Export a run as TREC run files and qrels, so trec_eval, ranx and ir_measures users can check our numbers.

    export_trec(Path("runs/chatir-visdial"), Path("trec/chatir-visdial"))
    # trec/chatir-visdial/qrels.txt                  dialogue_id 0 target 1
    # trec/chatir-visdial/round-00.run ... round-10.run        the target at its rank in that round
    # trec/chatir-visdial/accumulated-00.run ...               the target at its best rank up to that round
    trec_eval -m recip_rank -m success.1,5,10 qrels.txt round-03.run

A run stores only the target's rank, not the whole ranking. Tools compute positions from the order of the listed
documents (by descending score), not from the rank column, so a single line for the target would always sit at
position 1. Each query (qid = the dialogue id; one file per round) therefore lists placeholder documents
``filler-1`` ... ``filler-r`` above the target at 1-based position ``r + 1`` (scores decrease with the position),
and the qrels mark only the target as relevant. Hence, from these files:

- reciprocal rank (trec_eval ``recip_rank``, ir_measures ``RR``) of ``round-RR.run`` is 1 / (rank + 1): its mean is
  our ``MRR`` at that round;
- ``success@k`` (ir_measures ``Success@k``) of ``round-RR.run`` is our per-round ``Recall@k``, and of
  ``accumulated-RR.run`` our accumulated ``Hits@k`` (both as fractions; ours are percentages).

``depth`` caps the listed positions (default 100): a target ranked deeper is not listed, so those files reproduce
``Success@k`` for ``k <= depth`` and ``RR@depth`` exactly, and plain ``MRR`` only up to 1 / (depth + 1) per query.
``depth=None`` lists every position up to the target (exact MRR, larger files). Failed dialogues are not exported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError, HarnessError
from harness.metrics import best_rank_so_far
from reports.runs import load_run

log = logging.getLogger(__name__)

DEFAULT_DEPTH = 100
FILLER = "filler-{}"


@dataclass(frozen=True)
class TrecFiles:
    directory: Path
    qrels: Path
    rounds: tuple[Path, ...]
    accumulated: tuple[Path, ...]
    queries: int
    skipped_failed: int


def run_lines(qid: str, target: str, rank: int, depth: int | None, tag: str) -> list[str]:
    """TREC run lines ``qid Q0 docno position score tag`` putting ``target`` at 0-based ``rank``."""
    position = rank + 1
    listed = position if depth is None else min(position, depth)
    lines = []
    for place in range(1, listed + 1):
        docno = target if place == position else FILLER.format(place)
        lines.append(f"{qid} Q0 {docno} {place} {listed + 1 - place} {tag}\n")
    return lines


def export_trec(run_directory: Path, out: Path, depth: int | None = DEFAULT_DEPTH, tag: str | None = None) -> TrecFiles:
    """Write ``qrels.txt``, ``round-RR.run`` and ``accumulated-RR.run`` for every round of a run into ``out``."""
    if depth is not None and depth < 1:
        raise HarnessError(f"depth must be at least 1 (or None for no limit), got {depth}")
    run = load_run(Path(run_directory))
    tag = tag or run.name
    records = [record for record in run.records if record.status == "ok"]
    skipped = len(run.records) - len(records)
    if skipped:
        log.warning("%s: %d failed dialogues are not exported", run.name, skipped)
    if not records:
        raise HarnessError(f"run {run.directory} has no successfully evaluated dialogue to export")
    for index, record in enumerate(records):
        for what, value in (("dialogue_id", record.dialogue_id), ("target", record.target)):
            if not value or any(char.isspace() for char in value):
                raise DataError(run.directory / "ranks.jsonl", f"{value!r} cannot be a TREC id (whitespace)",
                                record=index, field=what)
    lengths = {len(record.ranks) for record in records}
    if len(lengths) != 1:
        raise HarnessError(f"run {run.directory} holds dialogues with different numbers of rounds: {sorted(lengths)}")
    ranks = np.array([record.ranks for record in records], dtype=np.int64)
    best = best_rank_so_far(ranks)
    if any(char.isspace() for char in tag):
        raise HarnessError(f"TREC run tag {tag!r} cannot contain whitespace")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    qrels = out / "qrels.txt"
    qrels.write_text("".join(f"{record.dialogue_id} 0 {record.target} 1\n" for record in records), encoding="utf-8")
    round_files, accumulated_files = [], []
    for round_ in range(ranks.shape[1]):
        for matrix, prefix, collected in ((ranks, "round", round_files), (best, "accumulated", accumulated_files)):
            path = out / f"{prefix}-{round_:02d}.run"
            with open(path, "w", encoding="utf-8") as stream:
                for record, rank in zip(records, matrix[:, round_]):
                    stream.writelines(run_lines(record.dialogue_id, record.target, int(rank), depth, tag))
            collected.append(path)
    return TrecFiles(out, qrels, tuple(round_files), tuple(accumulated_files), len(records), skipped)
