"""The dialogues a run evaluated, for measuring them: a live run's generated turns (in ``ranks.jsonl``), or the
recorded rounds of the file a replay run read (as its manifest names it), cut to the rounds the run evaluated.

    dialogues, origin = run_dialogues(RunStore(Path("runs/flan-live")), records)
    quality = run_quality(store, records, dialogues)       # metrics.json's DialogueQuality
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.dialogue_files import read_chatir_dialogues
from harness.dialogue_quality import dialogue_quality_metrics, generation_measures
from harness.errors import HarnessError
from harness.store import RunStore
from harness.types import Dialogue, RunRecord


def run_dialogues(store: RunStore, records: Sequence[RunRecord]) -> tuple[tuple[Dialogue, ...], str]:
    """The dialogues of ``records`` (a failed one as far as it got) and a line saying where they came from."""
    if records and all(record.dialog is not None for record in records):
        return (tuple(Dialogue(record.dialogue_id, record.target, tuple(record.dialog or ())) for record in records),
                f"{len(records)} generated dialogues")
    replayed = store.read_manifest().get("benchmark", {}).get("files", {}).get("dialogues")
    if not replayed or not Path(replayed).is_file():
        raise HarnessError(f"{store.directory} replayed {replayed or 'a benchmark file'}, which is not there any more: "
                           "pass the dialogue file itself")
    by_id = {dialogue.dialogue_id: dialogue for dialogue in read_chatir_dialogues(Path(replayed), expected_turns=None)}
    dialogues = tuple(replayed_rounds(by_id[record.dialogue_id], record) for record in records
                      if record.dialogue_id in by_id)
    return dialogues, f"replayed {replayed}"


def replayed_rounds(dialogue: Dialogue, record: RunRecord) -> Dialogue:
    """``dialogue`` cut to the rounds ``record`` was ranked at (the run's --rounds, or where it failed)."""
    return Dialogue(dialogue.dialogue_id, dialogue.target, dialogue.turns[: max(1, len(record.ranks))])


def run_quality(store: RunStore, records: Sequence[RunRecord], dialogues: Sequence[Dialogue]) -> dict[str, Any]:
    """metrics.json's ``DialogueQuality``: the measures of the finished ``dialogues`` and, from the trace of every
    record (failed ones too), how many outputs were redrawn, kept invalid or failed, and how many dialogues failed."""
    quality = dialogue_quality_metrics(dialogues)
    generation = generation_measures(store.traces(records).values(),
                                     sum(record.status != "ok" for record in records))
    quality["overall"].update(generation["overall"])
    quality["per_round"].update(generation["per_round"])
    return quality
