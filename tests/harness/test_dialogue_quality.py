"""The quirk counters, on small hand-made dialogues and with the exact counts of the published files."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.chatir import read_chatir_dialogues
from benchmarks.known import KNOWN_BENCHMARKS
from harness.dialogue_quality import (
    MEASURES,
    count_empty_turns,
    count_leaked_answer_rounds,
    count_multi_question_rounds,
    count_repeated_question_dialogues,
    count_rotated_dialogues,
    quality_measures,
    question_of,
)
from harness.types import Dialogue


def dialogue(index: int, *rounds: str, target: str = "a.jpg") -> Dialogue:
    return Dialogue(str(index), target, ("a caption", *rounds))


def test_question_of() -> None:
    assert question_of("is it red? yes? no") == "is it red?"
    assert question_of("no question here") == "no question here"


def test_counters_on_small_dialogues() -> None:
    dialogues = [
        dialogue(0, "is it red? Answer: yes", "Is it  RED? no", "what? where? here"),
        dialogue(1, "is it big? yes", "", "is it small? no"),
    ]
    assert count_leaked_answer_rounds(dialogues).examples == ("record 0, round 1: 'is it red? Answer: yes'",)
    assert count_multi_question_rounds(dialogues).count == 1
    assert count_repeated_question_dialogues(dialogues).examples == ("record 0, round 2: 'Is it  RED? no'",)
    assert count_empty_turns(dialogues).examples == ("record 1, round 2: ''",)


def test_rotation_either_direction_and_same_target_only() -> None:
    reference = [dialogue(0, "a? 1", "b? 2", "c? 3"), dialogue(1, "a? 1", "b? 2", "c? 3"), dialogue(2, "a? 1", "b? 2")]
    rotated = [
        dialogue(0, "c? x", "a? y", "b? z"),
        dialogue(1, "b? x", "c? y", "a? z"),
        dialogue(2, "b? x", "a? y", target="other.jpg"),
    ]
    assert count_rotated_dialogues(rotated, reference).count == 2
    assert count_rotated_dialogues(reference, reference).count == 0


@pytest.fixture(scope="module")
def published(chatir_dir: Path) -> dict[str, tuple[Dialogue, ...]]:
    return {
        name: read_chatir_dialogues(chatir_dir / known.dialogues.relative_path)
        for name, known in KNOWN_BENCHMARKS.items()
    }


# Measured on the published files (levymsn/ChatIR at c62600c); 20,640 rounds per file.
EXPECTED = {
    "visdial-val": {"leaked": 0, "multi": 0, "repeated": 16, "empty": 0},
    "chatgpt-blip2": {"leaked": 151, "multi": 140, "repeated": 0, "empty": 0},
    "human-blip2": {"leaked": 0, "multi": 0, "repeated": 16, "empty": 0},
    "flan-blip2": {"leaked": 13_547, "multi": 1_155, "repeated": 2_050, "empty": 0},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_published_quirk_counts(name: str, published: dict[str, tuple[Dialogue, ...]]) -> None:
    dialogues = published[name]
    measured = {
        "leaked": count_leaked_answer_rounds(dialogues).count,
        "multi": count_multi_question_rounds(dialogues).count,
        "repeated": count_repeated_question_dialogues(dialogues).count,
        "empty": count_empty_turns(dialogues).count,
    }
    assert measured == EXPECTED[name]


def test_human_blip2_rotated_in_every_dialogue(published: dict[str, tuple[Dialogue, ...]]) -> None:
    assert count_rotated_dialogues(published["human-blip2"], published["visdial-val"]).count == 2064
    for other in ("chatgpt-blip2", "flan-blip2"):
        assert count_rotated_dialogues(published[other], published["visdial-val"]).count == 0


def test_quality_measures_follow_their_rules_on_a_small_dialogue() -> None:
    rounds = ("is the cat black? yes",                 # already answered by the caption
              "Is the cat black?? i don't know",       # repeated once normalised, uncertain answer
              "what color is the sofa? red",
              "? no",                                  # empty question
              "the sofa is red. red",                  # no '?': a non-question, taken whole
              "what is on the sofa? Answer: cat",      # leaked answer; 'sofa' already known
              "is the cat black? can't tell.")         # repeated exactly, uncertain
    measures = quality_measures([Dialogue("0", "a.jpg", ("a black cat on a sofa", *rounds))])
    assert {name: measures[name] for name in MEASURES if not name.startswith(("mean", "distinct"))} == {
        "dialogues": 1, "rounds": 7, "empty_questions": 1, "non_questions": 1, "repeated_questions": 1,
        "repeated_questions_normalised": 2, "dialogues_repeating": 1, "already_answered": 5, "leaked_answers": 1,
        "uncertain_answers": 2,
    }
    questions = [turn.split("?")[0] + "?" if "?" in turn else turn for turn in rounds]
    assert measures["mean_question_words"] == sum(len(q.split()) for q in questions) / 7
    assert measures["distinct_questions_per_dialogue"] == 4  # black cat, sofa colour, the statement, on the sofa


def test_quality_measures_of_nothing_are_zero() -> None:
    assert set(quality_measures([]).values()) == {0}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_published_files_give_the_known_quality_counts(name: str, published: dict[str, tuple[Dialogue, ...]]) -> None:
    measures = quality_measures(published[name])
    assert (measures["dialogues"], measures["rounds"]) == (2_064, 20_640)
    assert measures["leaked_answers"] == EXPECTED[name]["leaked"]  # FLAN: 13,547 of 20,640 rounds hold "Answer:"
    assert measures["dialogues_repeating"] == EXPECTED[name]["repeated"]  # FLAN: 2,050 of 2,064 dialogues
