"""Turn a live run's generated dialogues into a ChatIR-format benchmark file that ``harness run`` replays, or a DAR
or ADaFuSE run's reformulated captions S_t into the reformulated-dialogue file ``--dar-queries`` reads.

    harness dialogues export runs/flan-chatir --out flan_blip2_mine.json
    harness run --benchmark flan_blip2_mine.json --search-space DATA/ChatIR_Protocol/Search_Space_val_50k.json ...
    harness dialogues export runs/dar-flan --reformulated --out dar_flan_queries.json
    harness run --retriever dar --dar-queries dar_flan_queries.json ...      # the same fused ranks, no LLM call

Dialogues keep the run's order (numeric dialogue ids sort numerically), so an export of a run over the first N
dialogues of a benchmark gives them the same ids again, and replaying it with the same retriever reproduces the
live run's ranks exactly. A failed dialogue is never dropped silently: export refuses, unless told to skip failed
dialogues, and then says how many it left out. A reformulated file pairs record i with the benchmark's dialogue i,
so it is written only from a run whose every dialogue, from the first on, finished: S_0..S_t of each round come
from the run's trace.jsonl, where the retriever recorded the caption it ranked with (DAR's S_t), or, for a run whose
questioner reconstructs the caption every round (PlugIR), where the questioner recorded it (round 0: the caption).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.dialogue_files import write_chatir_dialogues
from harness.errors import HarnessError
from harness.store import RunStore
from harness.types import RECONSTRUCTION, Dialogue


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    exported: int
    skipped_failed: tuple[str, ...]


def export_dialogues(run: Path, out: Path, skip_failed: bool = False) -> ExportSummary:
    store = RunStore(run)
    store.read_manifest()
    records = store.records()
    if not records:
        raise HarnessError(f"{run} has no stored dialogues yet")
    if any(record.dialog is None for record in records):
        raise HarnessError(f"{run} replayed recorded dialogues; only live runs (--questioner/--answerer) generate "
                           "dialogues to export")
    failed = tuple(record.dialogue_id for record in records if record.status != "ok")
    if failed and not skip_failed:
        raise HarnessError(f"{run} has {len(failed)} failed dialogues (first: {', '.join(failed[:5])}); resume the run "
                           "to retry them, or pass --skip-failed to export the others")
    finished = [record for record in records if record.status == "ok"]
    if all(record.dialogue_id.isdigit() for record in finished):
        finished.sort(key=lambda record: int(record.dialogue_id))
    dialogues = [Dialogue(record.dialogue_id, record.target, tuple(record.dialog or ())) for record in finished]
    write_chatir_dialogues(out, dialogues)
    return ExportSummary(out, len(dialogues), failed)


def export_reformulated(run: Path, out: Path) -> ExportSummary:
    store = RunStore(run)
    store.read_manifest()
    records = store.records()
    if not records:
        raise HarnessError(f"{run} has no stored dialogues yet")
    failed = [record.dialogue_id for record in records if record.status != "ok"]
    if failed:
        raise HarnessError(f"{run} has {len(failed)} failed dialogues (first: {', '.join(failed[:5])}): a reformulated "
                           "file needs every dialogue, since DAR pairs its record i with dialogue i; resume the run to "
                           "retry them")
    if sorted(record.dialogue_id for record in records) != sorted(str(index) for index in range(len(records))):
        raise HarnessError(f"{run} holds dialogues that are not the benchmark's records 0..{len(records) - 1}, so "
                           "their captions cannot be written in record order")
    traces = store.traces(records)
    dialogues = []
    for record in sorted(records, key=lambda record: int(record.dialogue_id)):
        rounds = traces.get(record.dialogue_id)
        if rounds is None:
            raise HarnessError(f"{run}: dialogue {record.dialogue_id} has no trace (a run from before trace.jsonl)")
        captions = {entry["round"]: _reformulated_caption(entry) for entry in rounds}
        reconstructed = any(isinstance(entry.get("notes", {}).get(RECONSTRUCTION), dict) for entry in rounds)
        if reconstructed and not isinstance(captions.get(0), str) and record.dialog:
            captions[0] = record.dialog[0]
        missing = [round_ for round_ in range(len(record.ranks)) if not isinstance(captions.get(round_), str)]
        if missing:
            raise HarnessError(f"{run}: dialogue {record.dialogue_id}, round {missing[0]} has no reformulated caption "
                               "in trace.jsonl; only DAR and ADaFuSE runs record S_t, and plugir runs their "
                               "reconstructed captions")
        dialogues.append(Dialogue(record.dialogue_id, record.target,
                                  tuple(captions[round_] for round_ in range(len(record.ranks)))))
    write_chatir_dialogues(out, dialogues)
    return ExportSummary(out, len(dialogues), ())


def _reformulated_caption(entry: dict) -> str | None:
    """The caption a round was ranked with: DAR's S_t, else the questioner's reconstruction (PlugIR's c)."""
    caption = entry.get("retriever", {}).get("caption")
    if isinstance(caption, str):
        return caption
    note = entry.get("notes", {}).get(RECONSTRUCTION)
    return note.get("text") if isinstance(note, dict) else None
