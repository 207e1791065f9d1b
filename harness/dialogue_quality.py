"""Dialogue quality: what simulated (or recorded) users did, counted the same way for a benchmark file, a live run
and ``harness data validate``. Nothing is ever "fixed": a file is measured as it is.

    >>> dialogue = Dialogue("0", "a.jpg", ("a cat", "is it black? Answer: yes yes", "is it black? no"))
    >>> count_leaked_answer_rounds([dialogue]).count, count_repeated_question_dialogues([dialogue]).count
    (1, 1)
    >>> quality_measures([dialogue])["repeated_questions"]
    1

Each ``count_*`` counter returns a ``QuirkCount``: how many rounds or dialogues show the quirk, and the first few
as examples written "record R, round T: text" so a user can look them up in the file. ``quality_measures`` gives the
measures of ``harness dialogues stats``; each rule is in ``MEASURES``. A round is "question? answer" (ChatIR's
format): its question is the text up to and including the first "?" (``question_of``; the whole round when it holds
none, as a question cut before its "?" often is), its answer the text after the last "?"
(``harness.turns.split_turn``). Normalising a question: lower case, every character that is not a letter, digit or
space dropped, spaces collapsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.turns import split_turn
from harness.types import Dialogue

EXAMPLES = 5
REFORMULATED_SHARE = 0.9  # rounds without a "?" from which a file is taken for reformulated captions
UNCERTAIN_ANSWERS = ("i don't know", "i do not know", "dont know", "don't know", "not sure", "unsure", "unknown",
                     "can't tell", "cannot tell", "can not tell", "hard to tell", "difficult to tell", "no idea",
                     "unclear", "can't see", "cannot see", "not visible", "uncertain")
# Words that carry no content of their own: a question is "already answered" when every OTHER word of it occurs in
# the caption or an earlier answer.
STOPWORDS = frozenset([
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "can", "could",
    "will", "would", "should", "has", "have", "had", "there", "here", "this", "that", "these", "those", "it",
    "its", "of", "in", "on", "at", "to", "for", "with", "by", "from", "and", "or", "but", "not", "no", "yes",
    "any", "some", "what", "which", "who", "whom", "whose", "where", "when", "why", "how", "much", "many",
    "you", "your", "i", "me", "my", "we", "our", "they", "them", "their", "he", "she", "his", "her", "one",
    "ones", "see", "seen", "picture", "photo", "image"
])
MEASURES: dict[str, str] = {
    "dialogues": "dialogues measured",
    "rounds": "rounds after the caption",
    "empty_questions": "rounds whose question is empty (nothing but punctuation before the '?', or an empty round)",
    "non_questions": "rounds holding no '?' at all",
    "repeated_questions": "rounds asking, exactly, a question asked earlier in the same dialogue",
    "repeated_questions_normalised": "the same after normalising case, punctuation and spacing",
    "dialogues_repeating": "dialogues asking one question twice (case and spacing ignored)",
    "already_answered": "rounds whose question's content words (stopwords aside) all occur in the caption or an "
                        "earlier answer",
    "leaked_answers": "rounds holding the text 'Answer:' (a prompt frame leaked into the dialogue)",
    "uncertain_answers": "answers saying the answerer cannot tell (" + ", ".join(UNCERTAIN_ANSWERS[:4]) + ", ...)",
    "mean_question_words": "mean words per question",
    "mean_answer_words": "mean words per answer",
    "distinct_questions_per_dialogue": "mean number of distinct normalised questions per dialogue",
}


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
    return _count_rounds(dialogues, _question_free)


def question_free_share(dialogues: Sequence[Dialogue]) -> float:
    """The share of rounds after the caption that hold no "?" (0.0 for dialogues without rounds)."""
    rounds = [turn for dialogue in dialogues for turn in dialogue.turns[1:]]
    return sum(map(_question_free, rounds)) / len(rounds) if rounds else 0.0


def looks_reformulated(dialogues: Sequence[Dialogue]) -> bool:
    """True when nearly every round holds no "?": a reformulated-caption file (each entry a full caption, as PlugIR
    and DAR release them), which is queried entry by entry (``--query-mode entry``), not joined."""
    return question_free_share(dialogues) >= REFORMULATED_SHARE


def normalise_question(question: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", question.lower()).split())


ROUND_COUNTS = ("rounds", "empty_questions", "non_questions", "repeated_questions", "repeated_questions_normalised",
                "already_answered", "leaked_answers", "uncertain_answers")  # the measures that have a value per round
ROUND_MEANS = ("mean_question_words", "mean_answer_words")


def quality_measures(dialogues: Sequence[Dialogue]) -> dict[str, float]:
    """Every measure of ``MEASURES`` over ``dialogues`` (counts, and means in words)."""
    return _overall(dialogues, _round_tallies(dialogues))


def quality_by_round(dialogues: Sequence[Dialogue]) -> dict[str, list[float]]:
    """The per-round measures (``ROUND_COUNTS`` and ``ROUND_MEANS``) for rounds 1, 2, ... of ``dialogues``: a
    count is of that round's turns, a mean over them."""
    return _by_round(_round_tallies(dialogues))


def format_measure(value: float) -> str:
    """A measure as tables print it: a count as an integer with thousands separators, a mean with two decimals."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.2f}"


QUALITY_METRIC = "DialogueQuality"  # the metrics.json entry


def dialogue_quality_metrics(dialogues: Sequence[Dialogue]) -> dict[str, dict]:
    """The metrics.json entry: ``overall`` (``quality_measures``) and ``per_round`` (``quality_by_round``, indexed
    by round like every per-round metric: round 0, the caption, has no value)."""
    tallies = _round_tallies(dialogues)
    per_round = {name: [None, *values] for name, values in _by_round(tallies).items()}
    return {"overall": _overall(dialogues, tallies), "per_round": per_round}


GENERATION_MEASURES: dict[str, str] = {
    "turns_redrawn": "generated outputs (questions, answers, DAR captions and image prompts) whose first draw was "
                     "invalid and a redraw valid",
    "turns_kept_invalid": "outputs invalid in every draw and kept (on_invalid=keep)",
    "turns_failed_invalid": "outputs invalid in every draw, failing their dialogue",
}
TRACED_OUTPUTS = (("question",), ("answer",), ("retriever", "reformulation"),
                  ("retriever", "image_prompt_reformulation"))  # where a trace round holds generated outputs


def generation_measures(traces: Iterable[Sequence[Mapping[str, Any]]], failed_dialogues: int) -> dict[str, Any]:
    """What the runs' traces say of invalid outputs (``GENERATION_MEASURES``), per round and overall, plus the
    number of failed dialogues. Read from trace.jsonl rounds: an output with rejected draws and a final one (``raw``)
    was redrawn; one with rejected draws only failed; one whose rules name ``invalid:...`` was kept."""
    per_round: dict[str, list[int]] = {name: [] for name in GENERATION_MEASURES}
    for rounds in traces:
        for entry in rounds:
            round_ = int(entry.get("round", 0))
            for counts in per_round.values():
                counts.extend([0] * (round_ + 1 - len(counts)))
            for output in _traced_outputs(entry):
                rejected, final = bool(output.get("rejected")), "raw" in output
                per_round["turns_redrawn"][round_] += rejected and final
                per_round["turns_failed_invalid"][round_] += rejected and not final and "error" not in output
                per_round["turns_kept_invalid"][round_] += any(str(rule).startswith("invalid:")
                                                               for rule in output.get("rules", ()))
    overall = {name: sum(counts) for name, counts in per_round.items()}
    return {"overall": {**overall, "failed_dialogues": failed_dialogues}, "per_round": per_round}


def _traced_outputs(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    outputs = []
    for path in TRACED_OUTPUTS:
        value: Any = entry
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            outputs.append(value)
    return outputs


def _overall(dialogues: Sequence[Dialogue], rounds: Sequence[_RoundTally]) -> dict[str, float]:
    measures: dict[str, float] = {name: sum(tally.counts[name] for tally in rounds) for name in ROUND_COUNTS}
    measures["dialogues"] = len(dialogues)
    measures["dialogues_repeating"] = count_repeated_question_dialogues(dialogues).count
    measures.update({name: _mean([words for tally in rounds for words in tally.words[name]]) for name in ROUND_MEANS})
    distinct = [len({normalise_question(question_of(turn)) for turn in dialogue.turns[1:]} - {""})
                for dialogue in dialogues]
    measures["distinct_questions_per_dialogue"] = _mean(distinct)
    return {name: measures[name] for name in MEASURES}


def _by_round(rounds: Sequence[_RoundTally]) -> dict[str, list[float]]:
    table: dict[str, list[float]] = {name: [tally.counts[name] for tally in rounds] for name in ROUND_COUNTS}
    table.update({name: [_mean(tally.words[name]) for tally in rounds] for name in ROUND_MEANS})
    return table


@dataclass
class _RoundTally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUND_COUNTS, 0))
    words: dict[str, list[int]] = field(default_factory=lambda: {name: [] for name in ROUND_MEANS})  # per mean


def _round_tallies(dialogues: Sequence[Dialogue]) -> list[_RoundTally]:
    """One tally per round after the caption, each dialogue's turns read in order (repeats and what is already
    known depend on the rounds before)."""
    tallies: list[_RoundTally] = []
    for dialogue in dialogues:
        asked: set[str] = set()
        asked_normalised: set[str] = set()
        known_words = _content_words(dialogue.turns[0]) if dialogue.turns else set()
        for index, turn in enumerate(dialogue.turns[1:]):
            if index == len(tallies):
                tallies.append(_RoundTally())
            tally = tallies[index]
            question = question_of(turn)  # a round without "?" is taken whole (often a question cut before it)
            answer = split_turn(turn)[1]
            normalised = normalise_question(question)
            words = _content_words(question)
            for name, happened in (
                ("rounds", True),
                ("non_questions", _question_free(turn)),
                ("empty_questions", not turn.strip() or ("?" in turn and not normalised)),
                ("repeated_questions", bool(question) and question in asked),
                ("repeated_questions_normalised", bool(normalised) and normalised in asked_normalised),
                ("already_answered", bool(words) and words <= known_words),
                ("leaked_answers", "Answer:" in turn),
                ("uncertain_answers", _uncertain(answer)),
            ):
                tally.counts[name] += happened
            tally.words["mean_question_words"].append(len(question.split()))
            tally.words["mean_answer_words"].append(len(answer.split()))
            asked.add(question)
            asked_normalised.add(normalised)
            known_words |= _content_words(answer)
    return tallies


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


def _question_free(turn: str) -> bool:
    return "?" not in turn


def _content_words(text: str) -> set[str]:
    return {word for word in normalise_question(text).split() if word not in STOPWORDS}


def _uncertain(answer: str) -> bool:
    text = " " + " ".join(answer.lower().replace("’", "'").split()) + " "
    return any(f" {phrase} " in text or f" {phrase}." in text or f" {phrase}," in text for phrase in UNCERTAIN_ANSWERS)


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


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
