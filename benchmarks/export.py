"""Turn a live run's generated dialogues into a ChatIR-format benchmark file that ``harness run`` replays.

    harness dialogues export runs/flan-chatir --out flan_blip2_mine.json
    harness run --benchmark flan_blip2_mine.json --search-space DATA/ChatIR_Protocol/Search_Space_val_50k.json ...

Dialogues keep the run's order (numeric dialogue ids sort numerically), so an export of a run over the first N
dialogues of a benchmark gives them the same ids again, and replaying it with the same retriever reproduces the
live run's ranks exactly. A failed dialogue is never dropped silently: export refuses, unless told to skip failed
dialogues, and then says how many it left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.dialogue_files import write_chatir_dialogues
from harness.errors import HarnessError
from harness.store import RunStore
from harness.types import Dialogue


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
