"""Convert the public VisDial v1.0 JSON into a ChatIR-format dialogue file (what `harness run`, `train chatir` and
`data reformulate` read).

    harness data convert visdial visdial_1.0_train.json --image-root COCO \\
            --image-pattern 'train2014/COCO_train2014_{image_id:012d}.jpg' \\
            --image-pattern 'val2014/COCO_val2014_{image_id:012d}.jpg' --out data/visdial_train.json

VisDial's layout: ``data.questions`` and ``data.answers`` (lists of strings), ``data.dialogs`` (each an ``image_id``,
a ``caption`` and rounds of ``question`` / ``answer`` indexes into those lists; the test split has fewer rounds and
no answer for its last). Each dialogue becomes ``{"img": path, "dialog": [caption, "question? answer", ...]}``,
written exactly as ChatIR's val file writes its entries: VisDial's questions carry no "?", so each round is
"{question}? {answer}" (a question that ends in "?" already keeps its own). A round without an answer (the test
split's last) is left out, and how many were is printed and recorded. The image path comes from the first
``--image-pattern`` (Python format fields: ``{image_id}``) whose file exists under ``--image-root``; an image id that
matches none is an error naming it. Without ``--image-root`` the first pattern is used unchecked (with a warning).
A sidecar ``<out>.manifest.json`` records the input's sha256, the patterns and the counts. Every problem in the input
is a ``DataError`` naming the file, the record and the field.
"""

from __future__ import annotations

import logging
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.dialogue_files import read_json, write_chatir_dialogues
from harness.errors import ConfigError, DataError
from harness.hashing import sha256_file
from harness.progress import progress_bar
from harness.sidecar import write_sidecar
from harness.turns import format_turn
from harness.types import Dialogue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionSummary:
    path: Path
    dialogues: int
    unanswered_rounds: int
    images_by_pattern: dict[str, int]


def convert_visdial(source: Path, out: Path, patterns: Sequence[str], image_root: Path | None = None,
                    progress: bool = True) -> ConversionSummary:
    if not patterns:
        raise ConfigError("give at least one --image-pattern, e.g. 'val2014/COCO_val2014_{image_id:012d}.jpg'")
    for pattern in patterns:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
            pattern.format(image_id=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"--image-pattern {pattern!r} is not a format over {{image_id}}: {error}") from None
        if fields != {"image_id"}:
            raise ConfigError(f"--image-pattern {pattern!r} must name each image by {{image_id}} (and nothing else), "
                              "e.g. 'val2014/COCO_val2014_{image_id:012d}.jpg'")
    if image_root is None:
        log.warning("no --image-root: every image path is the first pattern's (%s), unchecked", patterns[0])
    data = _data(source)
    questions, answers = _strings(source, data, "questions"), _strings(source, data, "answers")
    dialogs = data.get("dialogs")
    if not isinstance(dialogs, list):
        raise DataError(source, "has no list data.dialogs", field="data.dialogs")
    dialogues, unanswered, used = [], 0, Counter[str]()
    with progress_bar(len(dialogs), f"converting {source.name}", "dialogue", progress) as bar:
        for index, record in enumerate(dialogs):
            dialogue, skipped, pattern = _dialogue(source, index, record, questions, answers, patterns, image_root)
            dialogues.append(dialogue)
            unanswered += skipped
            used[pattern] += 1
            bar.update(1)
    write_chatir_dialogues(out, dialogues)
    write_sidecar(out, {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "converter": "visdial",
        "input": {"file": str(source), "sha256": sha256_file(source), "split": data.get("split")},
        "image_patterns": list(patterns),
        "image_root_checked": image_root is not None,
        "images_by_pattern": dict(used),
        "dialogues": len(dialogues),
        "unanswered_rounds_left_out": unanswered,
        "output_sha256": sha256_file(out),
    })
    return ConversionSummary(out, len(dialogues), unanswered, dict(used))


def _data(source: Path) -> dict[str, Any]:
    payload = read_json(source, object_hook=_without_answer_options)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise DataError(source, "is not in VisDial's layout (an object whose 'data' holds questions, answers and "
                        "dialogs)", field="data")
    return data


def _without_answer_options(record: dict[str, Any]) -> dict[str, Any]:
    # Each VisDial round lists 100 candidate answers the conversion never reads: dropped as the file is parsed, they
    # do not all sit in memory at once (VisDial train holds over a million rounds).
    record.pop("answer_options", None)
    return record


def _strings(source: Path, data: dict[str, Any], name: str) -> list[str]:
    values = data.get(name)
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise DataError(source, f"data.{name} must be a list of strings", field=f"data.{name}")
    return values


def _dialogue(source: Path, index: int, record: Any, questions: list[str], answers: list[str],
              patterns: Sequence[str], image_root: Path | None) -> tuple[Dialogue, int, str]:
    if not isinstance(record, dict):
        raise DataError(source, "is not an object", record=index, field="data.dialogs")
    image_id, caption, rounds = record.get("image_id"), record.get("caption"), record.get("dialog")
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        raise DataError(source, f"image_id must be an integer, not {image_id!r}", record=index, field="image_id")
    if not isinstance(caption, str) or not caption.strip():
        raise DataError(source, "has no caption", record=index, field="caption")
    if not isinstance(rounds, list):
        raise DataError(source, "has no list of rounds", record=index, field="dialog")
    turns, unanswered = [caption.strip()], 0
    for number, entry in enumerate(rounds):
        where = f"dialog[{number}]"
        question = _indexed(source, index, entry, "question", questions, where)
        if not isinstance(entry, dict) or "answer" not in entry:
            if number != len(rounds) - 1:
                raise DataError(source, "has no answer but later rounds do", record=index, field=where)
            unanswered += 1  # the test split's last round: asked, never answered
            continue
        answer = _indexed(source, index, entry, "answer", answers, where)
        turns.append(format_turn(question, answer))
    path, pattern = _image_path(source, index, image_id, patterns, image_root)
    return Dialogue(str(index), path, tuple(turns)), unanswered, pattern


def _indexed(source: Path, index: int, entry: Any, name: str, strings: list[str], where: str) -> str:
    position = entry.get(name) if isinstance(entry, dict) else None
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(strings):
        raise DataError(source, f"{name} {position!r} is not an index into data.{name}s ({len(strings)} entries)",
                        record=index, field=f"{where}.{name}")
    return strings[position]


def _image_path(source: Path, index: int, image_id: int, patterns: Sequence[str],
                image_root: Path | None) -> tuple[str, str]:
    if image_root is None:
        return patterns[0].format(image_id=image_id), patterns[0]
    for pattern in patterns:
        path = pattern.format(image_id=image_id)
        if (image_root / path).is_file():
            return path, pattern
    raise DataError(source, f"image_id {image_id} matches no --image-pattern under {image_root} (tried "
                    f"{', '.join(pattern.format(image_id=image_id) for pattern in patterns)})", record=index,
                    field="image_id")
