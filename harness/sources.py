"""Dialogue sources: where turn t of every running dialogue comes from.

``ReplaySource`` hands out the recorded turns of a benchmark file; ``LiveSource`` asks a questioner bot and has an
answerer bot answer while looking at the target image. Both sit behind the same seam, so the runner never knows
which it has.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.errors import HarnessError
from harness.protocols import Answerer, Generated, Questioner, RetrievalView, RunContext, TracedTurn, TurnFailure
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
    question came back. A failure of either bot fails that dialogue only. A questioner that writes notes
    (``write_notes``, a ``NoteTaker``) writes them once the round's turn is known, in one more batched call; a note
    it cannot write fails that dialogue too."""

    records_dialog = True

    def __init__(self, questioner: Questioner, answerer: Answerer) -> None:
        self.questioner = questioner
        self.answerer = answerer
        self._seconds = {"questioner": 0.0, "answerer": 0.0}

    @property
    def query_note(self) -> str | None:
        """The note the retriever queries with instead of the dialogue (the questioner's choice; None: the dialogue)."""
        return getattr(self.questioner, "query_note", None)

    @property
    def needs_retrieval(self) -> bool:
        return bool(getattr(self.questioner, "needs_retrieval", False))

    def bind_retrieval(self, view: RetrievalView) -> None:
        """Hand a retrieval-aware questioner (``needs_retrieval``) its read-only view of the retriever."""
        self.questioner.bind_retrieval(view)  # type: ignore[attr-defined]

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
        if callable(getattr(self.questioner, "write_notes", None)):
            started = time.perf_counter()
            turns = self._with_notes(states, turns)
            self._seconds["questioner"] += time.perf_counter() - started
        return turns

    def _with_notes(self, states: Sequence[DialogueState],
                    turns: list[str | TracedTurn | TurnFailure]) -> list[str | TracedTurn | TurnFailure]:
        done = [index for index, turn in enumerate(turns) if isinstance(turn, TracedTurn)]
        after = [replace(states[index], round=states[index].round + 1,
                         query_turns=(*states[index].query_turns, turns[index].text)) for index in done]  # type: ignore[union-attr]
        written = self.questioner.write_notes(after)  # type: ignore[attr-defined]
        _check("questioner's notes", written, after)
        for index, notes in zip(done, written):
            turn = turns[index]
            assert isinstance(turn, TracedTurn)
            if isinstance(notes, TurnFailure):
                turns[index] = TurnFailure(f"questioner notes: {notes.reason}",
                                           {**turn.trace, **_failure_trace("notes", notes)})
            else:
                traced = {name: _trace(value) for name, value in notes.items()}
                turns[index] = TracedTurn(turn.text, {**turn.trace, "notes": traced},
                                          {name: _text(value) for name, value in notes.items()})
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
