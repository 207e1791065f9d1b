"""Dialogue sources: where turn t of every running dialogue comes from.

``ReplaySource`` hands out the recorded turns of a benchmark file; live sources (questioner + answerer bots) plug
into the same seam, so the runner never knows which it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.protocols import TurnFailure
from harness.types import Dialogue, DialogueState


class ReplaySource:
    """The recorded rounds of the benchmark: turn ``state.round + 1`` of each state's dialogue."""

    def __init__(self, dialogues: Sequence[Dialogue]) -> None:
        self._by_id = {dialogue.dialogue_id: dialogue for dialogue in dialogues}

    def identity(self) -> Mapping[str, Any]:
        return {"name": "replay"}

    def next_turns(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        return [self._by_id[state.dialogue_id].turns[state.round + 1] for state in states]
