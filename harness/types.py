"""Data shapes shared by every stage: dialogues, the search space, per-round states and run records.

    >>> dialogue = Dialogue("0", "unlabeled2017/000000185565.jpg", ("a bedroom", "is it lit? no"))
    >>> DialogueState.at_round(dialogue, 1, target_index=42).query_turns
    ('a bedroom', 'is it lit? no')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError


@dataclass(frozen=True)
class Dialogue:
    """One benchmark record: a target image and its turns (turn 0 is the caption, turn t is "question? answer")."""

    dialogue_id: str
    target: str
    turns: tuple[str, ...]

    @property
    def caption(self) -> str:
        return self.turns[0]


@dataclass(frozen=True)
class SearchSpace:
    """The images a retriever ranks: relative paths in a fixed order, resolved under ``image_root``."""

    paths: tuple[str, ...]
    image_root: Path | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {path: i for i, path in enumerate(self.paths)})

    def __len__(self) -> int:
        return len(self.paths)

    def position(self, path: str) -> int:
        """0-based position of ``path``; KeyError names the path and the search-space file."""
        try:
            return self._positions[path]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"image {path!r} is not in the search space {self.source}") from None

    def contains(self, path: str) -> bool:
        return path in self._positions  # type: ignore[attr-defined]

    def resolve(self, path: str) -> Path:
        """The file of image ``path`` under the image root; DataError when its real path (symbolic links followed)
        lies outside the real image root, so no link can make a run read, or upload, a file from elsewhere."""
        if self.image_root is None:
            raise ValueError("this run needs image files but no --image-root was given")
        candidate = self.image_root / path
        root = Path(self.image_root).resolve()
        real = candidate.resolve()
        if real != root and root not in real.parents:
            raise DataError(candidate, f"resolves to {real}, outside the image root {root} (through a symbolic link "
                            "or '..'); images are read from inside --image-root only")
        return candidate

    @property
    def fingerprint(self) -> str:
        """sha256 of the ordered path list: the identity an image index is cached under."""
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(path.encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    def files_fingerprint(self) -> str:
        """sha256 of every image's path and file size under the image root: another copy of the images (resized,
        re-encoded) under the same paths gets another fingerprint, at the cost of one stat per image, not a read."""
        digest = hashlib.sha256()
        for index, path in enumerate(self.paths):
            file = self.resolve(path)
            try:
                size = file.stat().st_size
            except OSError as error:
                raise DataError(self.source, f"image {file} cannot be read: {error.strerror}", record=index) from None
            digest.update(f"{path}\t{size}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Benchmark:
    """Dialogues plus the search space they are evaluated in, with the file identities recorded in manifests."""

    name: str
    dialogues: tuple[Dialogue, ...]
    search_space: SearchSpace
    files: Mapping[str, str] = field(default_factory=dict)  # role -> sha256 of the file's content (its identity)
    paths: Mapping[str, Path] = field(default_factory=dict)  # role -> resolved path (recorded, never compared)

    def __len__(self) -> int:
        return len(self.dialogues)


@dataclass(frozen=True)
class DialogueState:
    """What the retriever and the bots see of one dialogue at round ``round`` (turns 0..round).

    ``notes[i]`` holds what a bot wrote down at round i besides the turn (PlugIR's reconstructed caption, under
    ``"reconstruction"``); any bot may read them. With ``query_note`` set, the query is that note of the state's
    round (at round 0, with no note, the caption)."""

    dialogue_id: str
    target: str
    target_index: int
    round: int
    query_turns: tuple[str, ...]
    query_mode: str = "join"
    notes: tuple[Mapping[str, str], ...] = field(default=(), hash=False)
    query_note: str | None = None

    @classmethod
    def at_round(
        cls, dialogue: Dialogue, round_: int, target_index: int, query_mode: str = "join"
    ) -> DialogueState:
        return cls(
            dialogue.dialogue_id, dialogue.target, target_index, round_, dialogue.turns[: round_ + 1], query_mode
        )

    @property
    def query_text(self) -> str:
        """The text a text encoder sees: turns 0..round joined with ", " (ChatIR, ``join``), or only the round's
        own entry (``entry``, for reformulated dialogues where each entry is already a full caption), or the
        round's ``query_note`` when one is set."""
        if self.query_note is not None:
            note = self.note(self.query_note)
            if note is not None:
                return note
            if self.round > 0:
                raise ValueError(f"dialogue {self.dialogue_id} round {self.round} has no {self.query_note!r} note "
                                 "to query with")
            return self.caption
        if self.query_mode == "join":
            return ", ".join(self.query_turns)
        if self.query_mode == "entry":
            return self.query_turns[-1]
        raise ValueError(f"unknown query mode {self.query_mode!r}; use 'join' or 'entry'")

    @property
    def caption(self) -> str:
        return self.query_turns[0]

    def note(self, name: str, round_: int | None = None) -> str | None:
        """The note ``name`` of round ``round_`` (default: this state's round), if one was written."""
        round_ = self.round if round_ is None else round_
        return self.notes[round_].get(name) if len(self.notes) > round_ else None


# The note a questioner that rewrites the dialogue into one caption every round (PlugIR) writes it under; answerers
# with ``see_reconstruction`` read it and ``harness dialogues export --reformulated`` exports it.
RECONSTRUCTION = "reconstruction"
# The side value a retriever reports per state when the query text was cut at its encoder's token limit (1.0) or
# not (0.0); metrics.json counts them per round (TruncatedQueries) and the manifest in total.
QUERY_TRUNCATED = "query_truncated"
# The side value DAR and ADaFuSE report per state: how many of its image prompts the diffusion pipeline's text
# encoder cut at its token limit; the manifest's diagnostics sum them.
PROMPTS_TRUNCATED = "image_prompts_truncated"


@dataclass(frozen=True)
class RankBatch:
    """A retriever's answer for a batch of states: the target's 0-based rank per state, plus named side ranks
    (``text_only`` for fused retrievers) and named per-state diagnostics (``gate``, ``text_image_cosine`` for learned
    fusion), each aligned with ``ranks``. A state listed in ``failures`` has no rank: its dialogue fails with the
    reason given (the harness's ranking reports constant and non-finite scores so)."""

    ranks: tuple[int, ...]
    side_ranks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    side_values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    tied: tuple[bool, ...] = ()  # per state, whether another image scored exactly the target's score (optional)
    failures: Mapping[int, str] = field(default_factory=dict)  # position -> why that state could not be ranked
    top: tuple[tuple[int, ...], ...] = ()  # per state, the best images (search-space positions) for the run's trace
    traces: tuple[Mapping[str, Any], ...] = ()  # per state, what the retriever made of it (DAR: S_t, prompts, ...)


@dataclass(frozen=True)
class RunRecord:
    """One line of ``ranks.jsonl``: a finished (or failed) dialogue with the target's rank after every round."""

    dialogue_id: str
    target: str
    ranks: tuple[int, ...]
    side_ranks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    side_values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    dialog: tuple[str, ...] | None = None
    status: str = "ok"
    error: str | None = None
    tied: tuple[bool, ...] = ()  # per round, where the retriever reports it
    # Per round, what the bots and the retriever produced (trace.jsonl, never ranks.jsonl: see harness.store).
    trace: tuple[Mapping[str, Any], ...] | None = field(default=None, compare=False)

    def to_json(self) -> str:
        payload: dict[str, Any] = {
            "dialogue_id": self.dialogue_id,
            "target": self.target,
            "ranks": list(self.ranks),
            "status": self.status,
        }
        if self.side_ranks:
            payload["side_ranks"] = {name: list(values) for name, values in self.side_ranks.items()}
        if self.side_values:
            payload["side_values"] = {name: list(values) for name, values in self.side_values.items()}
        if self.tied:
            payload["tied"] = list(self.tied)
        if self.dialog is not None:
            payload["dialog"] = list(self.dialog)
        if self.error is not None:
            payload["error"] = self.error
        return json.dumps(payload, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> RunRecord:
        payload = json.loads(line)
        return cls(
            dialogue_id=str(payload["dialogue_id"]),
            target=payload["target"],
            ranks=parse_ranks(payload["ranks"]),
            side_ranks={name: tuple(values) for name, values in payload.get("side_ranks", {}).items()},
            side_values={name: tuple(values) for name, values in payload.get("side_values", {}).items()},
            dialog=tuple(payload["dialog"]) if "dialog" in payload else None,
            status=payload.get("status", "ok"),
            error=payload.get("error"),
            tied=tuple(bool(value) for value in payload.get("tied", ())),
        )


def parse_ranks(values: Any, limit: int | None = None) -> tuple[int, ...]:
    """Stored ranks as they must be: a list of 0-based integers, below ``limit`` (the search-space size) when it is
    known. TypeError or ValueError says which entry is wrong (never rounded or clamped: 1.5 or -1 is an error, not a
    rank)."""
    if not isinstance(values, list):
        raise TypeError(f"ranks must be a list of integers, not {type(values).__name__}")
    for round_, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"rank {value!r} of round {round_} is not an integer")
        if value < 0 or (limit is not None and value >= limit):
            bound = f"0..{limit - 1}" if limit is not None else "0 or more"
            raise ValueError(f"rank {value} of round {round_} is outside the search space ({bound})")
    return tuple(values)


def batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]
