"""Factories of the bots that need no model: recorded rounds (``replay``) and scripted test bots.

    harness run --questioner replay --answerer blip2 --benchmark visdial-val ...   # human questions, BLIP-2 answers
    harness run --questioner scripted --answerer scripted ...                      # a live loop in seconds
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.protocols import RunContext, TurnFailure
from simulators.bots import ReplayAnswerer, ReplayQuestioner, ScriptedAnswerer, ScriptedQuestioner

DEFAULT_SCRIPT = (
    "what color is it?",
    "is it indoors?",
    "how many people are there?",
    "is it daytime?",
    "what is in the background?",
)


def build_replay_questioner() -> ReplayQuestioner:
    return ReplayQuestioner()


def build_replay_answerer() -> ReplayAnswerer:
    return ReplayAnswerer()


def build_scripted_questioner(questions: Sequence[str] = DEFAULT_SCRIPT) -> ScriptedQuestioner:
    return ScriptedQuestioner(questions)


def build_scripted_answerer(fail_on: Sequence[str] = ()) -> ScriptedAnswerer:
    """``fail_on``: "dialogue_id:round" pairs whose answer fails (to exercise failure handling)."""
    return ScriptedAnswerer(fail_on)


class ScriptedGenerator:
    """A text generator with no model, registered as ``scripted``: it answers each prompt with its last non-empty
    lines before the final cue, joined with "; " (deterministic, input-dependent text for tests and demos of the
    components that prompt an LLM, such as DAR's reformulation)."""

    sampling = False

    def __init__(self, lines: int = 3) -> None:
        self.lines = lines
        self.calls = 0

    def identity(self) -> Mapping[str, Any]:
        return {"backend": "scripted", "lines": self.lines}

    def load(self, context: RunContext) -> None:
        return None

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str | TurnFailure]:
        self.calls += len(prompts)
        replies: list[str | TurnFailure] = []
        for prompt in prompts:
            lines = [line.strip() for line in prompt.splitlines() if line.strip()][:-1]
            replies.append("; ".join(lines[-self.lines:]).lower())
        return replies
