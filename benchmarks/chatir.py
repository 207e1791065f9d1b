"""Read ChatIR-format dialogue files and search-space lists into the harness's data types.

    >>> benchmark = load_chatir_benchmark(
    ...     Path("data/dialogues/VisDial_v1.0_queries_val.json"),
    ...     Path("data/ChatIR_Protocol/Search_Space_val_50k.json"),
    ...     image_root=Path("~/coco").expanduser(),
    ... )  # doctest: +SKIP
    >>> benchmark.dialogues[0].target  # doctest: +SKIP
    'unlabeled2017/000000185565.jpg'

A dialogue file is a JSON list of ``{"img": "<relative image path>", "dialog": [caption, "question? answer", ...]}``.
Reformulated-dialogue files (each entry already a full caption, as PlugIR and DAR release them) have the same
shape and load with the same functions; whether a query joins entries 0..t or uses entry t alone is decided by
``harness.types.DialogueState.query_text``, not here.

Every reader raises ``RecordError`` (a ``DataError``) naming the file, the record index and the field; the
per-record parsers are public so that ``benchmarks.validate`` can collect every problem instead of the first.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.errors import DataError
from harness.hashing import sha256_file
from harness.types import Benchmark, Dialogue, SearchSpace

CHATIR_TURNS = 11  # the caption plus 10 "question? answer" rounds
WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


class RecordError(DataError):
    """A schema problem in one record, with a short ``code`` that validation groups problems by."""

    def __init__(self, file: object, message: str, code: str, record: int | None = None, field: str | None = None):
        super().__init__(file, message, record=record, field=field)
        self.code = code


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing file, bad encoding or bad JSON is a ``DataError`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "the file does not exist") from None
    except UnicodeDecodeError as error:
        raise DataError(path, f"not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text)
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
    if not turns:
        raise RecordError(file, "holds no turns (not even a caption)", "bad-length", index, "dialog")
    if expected_turns is not None and len(turns) != expected_turns:
        message = f"holds {len(turns)} turns, expected {expected_turns} (a caption and {expected_turns - 1} rounds)"
        raise RecordError(file, message, "bad-length", index, "dialog")
    return Dialogue(dialogue_id=str(index), target=target, turns=tuple(turns))


def parse_search_path(entry: Any, index: int, file: Path) -> str:
    """One search-space entry: a non-empty relative path that stays under the image root."""
    if not isinstance(entry, str) or not entry:
        raise RecordError(file, f"expected a non-empty path string, found {entry!r}", "bad-type", record=index)
    if escapes_root(entry):
        message = f"path {entry!r} is absolute or climbs out of the image root with '..'"
        raise RecordError(file, message, "escaping-path", record=index)
    return entry


def escapes_root(path: str) -> bool:
    """True for a path that would resolve outside the image root on POSIX or Windows."""
    # Plain string tests rather than PurePath objects: this runs once per image of a 50k search space.
    return path.startswith(("/", "\\")) or WINDOWS_DRIVE.match(path) is not None or ".." in re.split(r"[/\\]", path)


def duplicates(items: list[str]) -> list[str]:
    """The items that occur more than once, in order of their first occurrence."""
    counts = Counter(items)
    return [item for item in counts if counts[item] > 1]


def read_chatir_dialogues(path: Path, expected_turns: int | None = CHATIR_TURNS) -> tuple[Dialogue, ...]:
    """All dialogues of a ChatIR-format file, for replay; ``expected_turns=None`` accepts any length."""
    records = require_list(read_json(path), path, "dialogue records")
    return tuple(parse_dialogue(record, index, path, expected_turns) for index, record in enumerate(records))


def read_search_space(path: Path, image_root: Path | None = None) -> SearchSpace:
    """The ordered image list a retriever ranks; duplicates are an error because a rank would be ambiguous."""
    entries = require_list(read_json(path), path, "image paths")
    paths = [parse_search_path(entry, index, path) for index, entry in enumerate(entries)]
    repeated = duplicates(paths)
    if repeated:
        first = paths.index(repeated[0])
        shown = ", ".join(repr(item) for item in repeated[:5])
        message = f"{len(repeated)} paths occur more than once (first: {shown})"
        raise RecordError(path, message, "duplicate-path", record=paths.index(repeated[0], first + 1))
    return SearchSpace(paths=tuple(paths), image_root=image_root, source=str(path))


def file_identity(path: Path) -> str:
    """``"<absolute path> <sha256>"``: how a run manifest records an input file."""
    return f"{path.resolve()} {sha256_file(path)}"


def load_chatir_benchmark(
    dialogues: Path,
    search_space: Path,
    image_root: Path | None = None,
    name: str | None = None,
    expected_turns: int | None = CHATIR_TURNS,
) -> Benchmark:
    """A benchmark from any ChatIR-format dialogue file and search-space list (registered as ``chatir-file``).
    Every target must be in the search space; the benchmark is named after the dialogue file unless ``name``."""
    dialogues, search_space = Path(dialogues), Path(search_space)
    space = read_search_space(search_space, image_root=Path(image_root) if image_root is not None else None)
    records = read_chatir_dialogues(dialogues, expected_turns=expected_turns)
    for index, dialogue in enumerate(records):
        if not space.contains(dialogue.target):
            message = f"target {dialogue.target!r} is not in the search space {search_space}"
            raise RecordError(dialogues, message, "target-not-in-search-space", index, "img")
    return Benchmark(
        name=name or dialogues.stem,
        dialogues=records,
        search_space=space,
        files={"dialogues": file_identity(dialogues), "search_space": file_identity(search_space)},
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def write_chatir_dialogues(path: Path, dialogues: Sequence[Dialogue]) -> None:
    """Write ``dialogues`` as a ChatIR-format file (their order is the file's record order)."""
    records = [{"img": dialogue.target, "dialog": list(dialogue.turns)} for dialogue in dialogues]
    atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1))
