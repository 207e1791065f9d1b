"""Candidate captions: one caption (or several) per search-space image, shown to PlugIR's questioner.

    captions = read_candidate_captions(Path("captions.json"), benchmark.search_space)
    captions.first[position]        # the caption shown for (and scored for) image ``position``

Two layouts are read:
  * a JSON list aligned with the search space, each entry an object with a ``"caption"`` list (PlugIR's files) or
    string; an entry naming its image (``"img"`` or ``"image"``) must name that position's image;
  * a JSON object mapping image path to a caption or a list of captions; it must cover every search-space image
    (other images may be listed too).
The first caption of an entry is the one PlugIR shows and scores. Every problem is a ``DataError`` naming the file,
the record and the field; the file's sha256 is part of the questioner's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.dialogue_files import read_json
from harness.errors import DataError
from harness.hashing import sha256_file
from harness.types import SearchSpace


@dataclass(frozen=True)
class CandidateCaptions:
    path: Path
    sha256: str
    first: tuple[str, ...]  # per search-space position

    def identity(self) -> dict[str, Any]:
        return {"file": self.path.name, "sha256": self.sha256, "images": len(self.first)}


def read_candidate_captions(path: Path, search_space: SearchSpace) -> CandidateCaptions:
    payload = read_json(path)
    if isinstance(payload, list):
        first = _aligned(path, payload, search_space)
    elif isinstance(payload, dict):
        first = _by_path(path, payload, search_space)
    else:
        raise DataError(path, "holds neither a list aligned with the search space nor an object mapping image paths "
                        "to captions")
    return CandidateCaptions(path, sha256_file(path), tuple(first))


def _aligned(path: Path, entries: list[Any], search_space: SearchSpace) -> list[str]:
    if len(entries) != len(search_space):
        raise DataError(path, f"lists {len(entries)} entries but the search space {search_space.source} holds "
                        f"{len(search_space)} images; a list must follow the search space entry for entry")
    first = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "caption" not in entry:
            raise DataError(path, "is not an object with a 'caption' list", record=index)
        named = entry.get("img", entry.get("image"))
        if named is not None and named != search_space.paths[index]:
            raise DataError(path, f"names {named!r} but search-space image {index} is {search_space.paths[index]!r}",
                            record=index, field="img" if "img" in entry else "image")
        first.append(_first_caption(path, entry["caption"], index, "caption"))
    return first


def _by_path(path: Path, mapping: dict[str, Any], search_space: SearchSpace) -> list[str]:
    missing = [image for image in search_space.paths if image not in mapping]
    if missing:
        raise DataError(path, f"has no caption for {len(missing)} of the {len(search_space)} search-space images "
                        f"(first: {missing[0]!r})")
    return [_first_caption(path, mapping[image], index, image) for index, image in enumerate(search_space.paths)]


def _first_caption(path: Path, value: Any, record: int, field: str) -> str:
    captions = [value] if isinstance(value, str) else value
    if not isinstance(captions, list) or not captions or not all(isinstance(text, str) for text in captions):
        raise DataError(path, "must be a caption or a non-empty list of captions", record=record, field=field)
    if not captions[0].strip():
        raise DataError(path, "is an empty caption", record=record, field=field)
    return " ".join(captions[0].split())
