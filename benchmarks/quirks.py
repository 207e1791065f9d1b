"""Counters for the known oddities of the published dialogue files, applied to any file (never "fixing" them).

    >>> dialogue = Dialogue("0", "a.jpg", ("a cat", "is it black? Answer: yes yes", "is it black? no"))
    >>> count_leaked_answer_rounds([dialogue]).count, count_repeated_question_dialogues([dialogue]).count
    (1, 1)

Each counter returns a ``QuirkCount``: how many rounds or dialogues show the quirk, and the first few as examples
written "record R, round T: text" so a user can look them up in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from harness.types import Dialogue

EXAMPLES = 5


@dataclass(frozen=True)
class QuirkCount:
    """How often a quirk occurs, with the first few occurrences."""

    count: int
    examples: tuple[str, ...]


def question_of(turn: str) -> str:
    """The question part of a "question? answer" round: the text up to and including the first '?'
    (the whole turn when it holds no '?')."""
    end = turn.find("?")
    return turn if end < 0 else turn[: end + 1]


def count_leaked_answer_rounds(dialogues: Sequence[Dialogue]) -> QuirkCount:
    """Rounds holding the literal text "Answer:" (a questioner's prompt frame that leaked into the dialogue)."""
    return _count_rounds(dialogues, lambda turn: "Answer:" in turn)


def count_multi_question_rounds(dialogues: Sequence[Dialogue]) -> QuirkCount:
    """Rounds holding more than one '?' (the questioner asked several questions at once)."""
    return _count_rounds(dialogues, lambda turn: turn.count("?") > 1)


def count_question_free_rounds(dialogues: Sequence[Dialogue]) -> QuirkCount:
    """Rounds (after the caption) holding no '?': no question that a live answerer could be asked again."""
    return _count_rounds(dialogues, lambda turn: "?" not in turn)


def count_empty_turns(dialogues: Sequence[Dialogue]) -> QuirkCount:
    """Turns (caption included) that are empty or only whitespace."""
    return _count_rounds(dialogues, lambda turn: not turn.strip(), first_turn=0)


def count_repeated_question_dialogues(dialogues: Sequence[Dialogue]) -> QuirkCount:
    """Dialogues asking at least one question twice (compared ignoring case and spacing)."""
    occurrences = []
    for dialogue in dialogues:
        seen: set[str] = set()
        for round_, turn in enumerate(dialogue.turns[1:], start=1):
            question = " ".join(question_of(turn).lower().split())
            if question in seen:
                occurrences.append(_example(dialogue, round_, turn))
                break
            seen.add(question)
    return QuirkCount(len(occurrences), tuple(occurrences[:EXAMPLES]))


def count_rotated_dialogues(dialogues: Sequence[Dialogue], reference: Sequence[Dialogue]) -> QuirkCount:
    """Dialogues whose question sequence equals the reference dialogue's (same index, same target) rotated by one
    round in either direction: how Human_BLIP2 relates to VisDial as released."""
    occurrences = []
    for dialogue, other in zip(dialogues, reference, strict=False):
        if dialogue.target != other.target:
            continue
        mine = [question_of(turn) for turn in dialogue.turns[1:]]
        theirs = [question_of(turn) for turn in other.turns[1:]]
        if len(mine) > 1 and mine != theirs and mine in (theirs[-1:] + theirs[:-1], theirs[1:] + theirs[:1]):
            occurrences.append(f"record {dialogue.dialogue_id}: round 1 asks {mine[0]!r}, the reference {theirs[0]!r}")
    return QuirkCount(len(occurrences), tuple(occurrences[:EXAMPLES]))


def _count_rounds(dialogues: Iterable[Dialogue], has_quirk: Callable[[str], bool], first_turn: int = 1) -> QuirkCount:
    occurrences = [
        _example(dialogue, round_, turn)
        for dialogue in dialogues
        for round_, turn in enumerate(dialogue.turns[first_turn:], start=first_turn)
        if has_quirk(turn)
    ]
    return QuirkCount(len(occurrences), tuple(occurrences[:EXAMPLES]))


def _example(dialogue: Dialogue, round_: int, turn: str) -> str:
    shown = turn if len(turn) <= 100 else turn[:97] + "..."
    return f"record {dialogue.dialogue_id}, round {round_}: {shown!r}"
