"""Turns are "question? answer" strings (ChatIR's format): building one, and splitting one back into its parts.

    >>> format_turn("is it red", "yes")
    'is it red? yes'

    >>> split_turn("is the photo in color? yes")
    ('is the photo in color?', 'yes')
    >>> split_turn("What is the setting? Are there trees? trees and buildings")
    ('What is the setting? Are there trees?', 'trees and buildings')

The split is at the LAST "?": rounds holding several questions keep them all in the question (an answer holding a
"?" is rare in the published files, and would be split wrongly).
"""

from __future__ import annotations

from collections.abc import Sequence


def split_turn(turn: str) -> tuple[str, str]:
    question, mark, answer = turn.rpartition("?")
    if not mark:
        return "", turn.strip()
    return question.strip() + "?", answer.strip()


def format_turn(question: str, answer: str) -> str:
    """ "question? answer", adding the "?" a question lacks so that the turn splits back the same way."""
    question = question.strip()
    if not question.endswith("?"):
        question += "?"
    return f"{question} {answer.strip()}".strip()


def format_dialogue(turns: Sequence[str]) -> str:
    """The rounds after the caption (``turns[1:]``) as "Q: ... A: ..." lines, for prompts."""
    lines = []
    for turn in turns[1:]:
        question, answer = split_turn(turn)
        lines.append(f"Q: {question} A: {answer}")
    return "\n".join(lines) if lines else "(no questions asked yet)"

