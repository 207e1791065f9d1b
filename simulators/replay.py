"""The bots that replay a benchmark's recorded rounds (registered as questioner and answerer ``replay``).

    harness run --questioner replay --answerer blip2 --benchmark visdial-val ...   # human questions, BLIP-2 answers

They need no model; a live run that pairs one of them with a generating bot re-asks or re-answers the recorded
dialogue. Imports: ``harness`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.protocols import RunContext, TurnFailure
from harness.turns import split_turn
from harness.types import Benchmark, DialogueState


class _RecordedTurns:
    """The benchmark's recorded rounds, by dialogue id, split into question and answer."""

    def __init__(self) -> None:
        self._turns: dict[str, tuple[str, ...]] = {}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._turns = {dialogue.dialogue_id: dialogue.turns for dialogue in benchmark.dialogues}

    def recorded(self, state: DialogueState) -> str:
        turns = self._turns[state.dialogue_id]
        round_ = state.round + 1
        if round_ >= len(turns):
            raise IndexError(f"dialogue {state.dialogue_id} has no recorded round {round_}")
        return turns[round_]


class ReplayQuestioner(_RecordedTurns):
    """The benchmark's recorded questions (the text up to the last "?" of each turn). A turn without a "?", or with
    nothing before it, holds no question to re-ask, so its dialogue fails (naming the turn) instead of sending the
    answerer an empty question: unlike a generating bot's, a recorded turn cannot be redrawn."""

    def identity(self) -> Mapping[str, Any]:
        return {"role": "questioner", "name": "replay"}

    def ask(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        questions: list[str | TurnFailure] = []
        for state in states:
            turn = self.recorded(state)
            question = split_turn(turn)[0]
            problem = "has no '?'" if not question else "asks an empty question" if not question.strip("? ") else ""
            questions.append(TurnFailure(
                f"dialogue {state.dialogue_id}, round {state.round + 1}: the recorded turn {turn!r} {problem}, "
                "so it holds no question to replay (a recorded turn cannot be redrawn)"
            ) if problem else question)
        return questions


class ReplayAnswerer(_RecordedTurns):
    """The benchmark's recorded answers (the text after the last "?" of each turn)."""

    def identity(self) -> Mapping[str, Any]:
        return {"role": "answerer", "name": "replay"}

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]:
        return [split_turn(self.recorded(state))[1] for state in states]


def build_replay_questioner() -> ReplayQuestioner:
    return ReplayQuestioner()


def build_replay_answerer() -> ReplayAnswerer:
    return ReplayAnswerer()
