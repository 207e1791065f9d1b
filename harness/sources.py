"""Dialogue sources: where turn t of every running dialogue comes from.

``ReplaySource`` hands out the recorded turns of a benchmark file; ``LiveSource`` asks a questioner bot and has an
answerer bot answer while looking at the target image. Both sit behind the same seam, so the runner never knows
which it has.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.protocols import Answerer, Generated, Questioner, RunContext, TracedTurn, TurnFailure
from harness.turns import format_turn
from harness.types import Benchmark, Dialogue, DialogueState
from harness.usage import usage_of


class ReplaySource:
    """The recorded rounds of the benchmark: turn ``state.round + 1`` of each state's dialogue."""

    records_dialog = False

    def __init__(self, dialogues: Sequence[Dialogue]) -> None:
        self._by_id = {dialogue.dialogue_id: dialogue for dialogue in dialogues}

    def identity(self) -> Mapping[str, Any]:
        return {"name": "replay"}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        return None

    def next_turns(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        return [self._by_id[state.dialogue_id].turns[state.round + 1] for state in states]


class LiveSource:
    """Generated rounds: one batched ``ask`` for every running dialogue, then one batched ``answer`` for those whose
    question came back. A failure of either bot fails that dialogue only."""

    records_dialog = True

    def __init__(self, questioner: Questioner, answerer: Answerer) -> None:
        self.questioner = questioner
        self.answerer = answerer
        self._seconds = {"questioner": 0.0, "answerer": 0.0}

    def usage(self) -> dict[str, Any]:
        """Per bot: what it spent (``harness.usage``) and the seconds its calls took."""
        return {role: {**usage_of(bot), "seconds": self._seconds[role]}
                for role, bot in (("questioner", self.questioner), ("answerer", self.answerer))}

    def identity(self) -> Mapping[str, Any]:
        """Valid after ``prepare`` (bots know their model fingerprints once loaded)."""
        return {"name": "live", "questioner": dict(self.questioner.identity()), "answerer": dict(self.answerer.identity())}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self.questioner.prepare(benchmark, context)
        self.answerer.prepare(benchmark, context)

    def next_turns(self, states: Sequence[DialogueState]) -> list[str | TracedTurn | TurnFailure]:
        started = time.perf_counter()
        questions = self.questioner.ask(states)
        self._seconds["questioner"] += time.perf_counter() - started
        _check("questioner", questions, states)
        asked = [index for index, question in enumerate(questions) if not isinstance(question, TurnFailure)]
        started = time.perf_counter()
        answers = self.answerer.answer([states[i] for i in asked], [_text(questions[i]) for i in asked])
        self._seconds["answerer"] += time.perf_counter() - started
        _check("answerer", answers, asked)
        answer_of = dict(zip(asked, answers))
        turns: list[str | TracedTurn | TurnFailure] = []
        for index, question in enumerate(questions):
            answer = answer_of.get(index)
            if isinstance(question, TurnFailure):
                turns.append(TurnFailure(f"questioner: {question.reason}", _failure_trace("question", question)))
            elif isinstance(answer, TurnFailure) or answer is None:
                trace = {"question": _trace(question), **_failure_trace("answer", answer)}
                turns.append(TurnFailure(f"answerer: {answer.reason if answer else 'no answer'}", trace))
            else:
                turns.append(TracedTurn(format_turn(_text(question), _text(answer)),
                                        {"question": _trace(question), "answer": _trace(answer)}))
        return turns


def _text(output: str | Generated | TurnFailure) -> str:
    return output.text if isinstance(output, Generated) else str(output)


def _trace(output: str | Generated) -> dict[str, Any]:
    """A bot's output as the trace keeps it (a plug-in bot returning plain text has no raw output to show)."""
    return output.trace() if isinstance(output, Generated) else {"text": output}


def _failure_trace(role: str, failure: TurnFailure | None) -> dict[str, Any]:
    """What a failed bot turn leaves in the trace: its rejected draws, if it made any."""
    return {role: dict(failure.trace)} if failure is not None and failure.trace else {}


def _check(role: str, produced: Sequence[Any], expected: Sequence[Any]) -> None:
    if len(produced) != len(expected):
        raise HarnessError(f"the {role} returned {len(produced)} outputs for a batch of {len(expected)} dialogues")
