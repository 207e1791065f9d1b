"""Factories of the bots that need no model: recorded rounds (``replay``) and scripted test bots.

    harness run --questioner replay --answerer blip2 --benchmark visdial-val ...   # human questions, BLIP-2 answers
    harness run --questioner scripted --answerer scripted ...                      # a live loop in seconds
"""

from __future__ import annotations

from collections.abc import Sequence

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
