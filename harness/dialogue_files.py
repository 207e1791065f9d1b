"""The harness's dialogue-file format (ChatIR's): what replay reads, live runs export, and DAR's reformulated
query files use.

    dialogues = read_chatir_dialogues(Path("dialogues/VisDial_v1.0_queries_val.json"))
    write_chatir_dialogues(Path("mine.json"), dialogues)

A dialogue file is a JSON list of ``{"img": "<relative image path>", "dialog": [caption, "question? answer", ...]}``.
Reformulated-dialogue files (each entry already a full caption, as PlugIR and DAR release them) have the same
shape. Every reader raises ``RecordError`` (a ``DataError``) naming the file, the record index and the field; the
per-record parser is public so that validation can collect every problem instead of the first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.errors import DataError
from harness.types import Dialogue

CHATIR_TURNS = 11  # the caption plus 10 "question? answer" rounds


class RecordError(DataError):
    """A schema problem in one record, with a short ``code`` that validation groups problems by."""

    def __init__(self, file: object, message: str, code: str, record: int | None = None, field: str | None = None):
        super().__init__(file, message, record=record, field=field)
        self.code = code


def read_json(path: Path, object_hook: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """Parse a JSON file (``object_hook`` as ``json.loads`` takes it); a missing file, bad encoding or bad JSON is a
    ``DataError`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "the file does not exist") from None
    except UnicodeDecodeError as error:
        raise DataError(path, f"not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text, object_hook=object_hook)
    except json.JSONDecodeError as error:
        raise DataError(path, f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None


def require_list(data: Any, file: Path, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise RecordError(file, f"expected a JSON list of {what}, found {_json_type(data)}", "not-a-list")
    return data


def parse_dialogue(record: Any, index: int, file: Path, expected_turns: int | None = CHATIR_TURNS) -> Dialogue:
    """One ChatIR record as a ``Dialogue`` whose id is the record index. Empty turns are allowed here
    (validation warns about them) because a file that holds them is still a faithful copy of its release."""
    if not isinstance(record, dict):
        raise RecordError(file, f"expected an object, found {_json_type(record)}", "not-an-object", record=index)
    for field in ("img", "dialog"):
        if field not in record:
            raise RecordError(file, "missing", "missing-field", record=index, field=field)
    target = record["img"]
    if not isinstance(target, str) or not target:
        raise RecordError(file, f"expected a non-empty string, found {target!r}", "bad-type", index, "img")
    turns = record["dialog"]
    if not isinstance(turns, list):
        raise RecordError(file, f"expected a list of strings, found {_json_type(turns)}", "bad-type", index, "dialog")
    for position, turn in enumerate(turns):
        if not isinstance(turn, str):
            message = f"turn {position} is {_json_type(turn)}, expected a string"
            raise RecordError(file, message, "bad-type", index, "dialog")
        if not _is_unicode(turn):
            message = f"turn {position} holds a lone surrogate (a \\ud800-\\udfff escape with no pair), not text"
            raise RecordError(file, message, "bad-text", index, "dialog")
    if not _is_unicode(target):
        raise RecordError(file, "holds a lone surrogate (an unpaired \\ud800-\\udfff escape)", "bad-text", index, "img")
    if not turns:
        raise RecordError(file, "holds no turns (not even a caption)", "bad-length", index, "dialog")
    if expected_turns is not None and len(turns) != expected_turns:
        message = f"holds {len(turns)} turns, expected {expected_turns} (a caption and {expected_turns - 1} rounds)"
        raise RecordError(file, message, "bad-length", index, "dialog")
    return Dialogue(dialogue_id=str(index), target=target, turns=tuple(turns))


def read_chatir_dialogues(path: Path, expected_turns: int | None = CHATIR_TURNS) -> tuple[Dialogue, ...]:
    """All dialogues of a ChatIR-format file, for replay; ``expected_turns=None`` accepts any length."""
    records = require_list(read_json(path), path, "dialogue records")
    return tuple(parse_dialogue(record, index, path, expected_turns) for index, record in enumerate(records))


def _is_unicode(text: str) -> bool:
    """False for a string JSON decoding left a lone surrogate in: it can be neither encoded nor written back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def write_chatir_dialogues(path: Path, dialogues: Sequence[Dialogue]) -> None:
    """Write ``dialogues`` as a ChatIR-format file (their order is the file's record order)."""
    records = [{"img": dialogue.target, "dialog": list(dialogue.turns)} for dialogue in dialogues]
    atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1))
