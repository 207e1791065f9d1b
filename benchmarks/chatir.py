"""Load ChatIR-format benchmarks (a dialogue file plus a search-space list) into the harness's data types.

    >>> benchmark = load_chatir_benchmark(
    ...     Path("data/dialogues/VisDial_v1.0_queries_val.json"),
    ...     Path("data/ChatIR_Protocol/Search_Space_val_50k.json"),
    ...     image_root=Path("~/coco").expanduser(),
    ... )  # doctest: +SKIP
    >>> benchmark.dialogues[0].target  # doctest: +SKIP
    'unlabeled2017/000000185565.jpg'

The dialogue-file format itself lives in ``harness.dialogue_files``. Reformulated-dialogue files load the same way;
whether a query joins entries 0..t or uses entry t alone is decided by ``harness.types.DialogueState.query_text``.
Readers raise ``RecordError`` (a ``DataError``) naming the file, the record index and the field.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from harness.dialogue_files import (
    CHATIR_TURNS,
    RecordError,
    read_chatir_dialogues,
    read_json,
    require_list,
)
from harness.hashing import sha256_file
from harness.types import Benchmark, SearchSpace

WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


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
        files={"dialogues": sha256_file(dialogues), "search_space": sha256_file(search_space)},
        paths={"dialogues": dialogues.resolve(), "search_space": search_space.resolve()},
    )


