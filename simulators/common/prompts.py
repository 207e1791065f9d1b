"""Prompt templates for the bots: our own text, kept in files a user can replace.

    template = load_template("questioner")                  # simulators/common/prompts/questioner.txt
    template = load_template(Path("my_questioner.txt"))     # a user's file (``--questioner-prompt FILE``)
    prompt = template.render(caption=state.caption, dialogue=format_dialogue(state.query_turns), question="...")

Templates use ``string.Template`` fields: ``$caption`` (round 0), ``$dialogue`` (the rounds so far, one
"Q: ... A: ..." line each, or "(no questions asked yet)"), ``$question`` (answerer templates), ``$round`` (the round
being asked, 1-based). The exact template text is part of each bot's identity, so it lands in the run manifest and
in every response-cache key.
"""

from __future__ import annotations

from pathlib import Path

from harness.prompts import PromptTemplate
from harness.prompts import load_template as load_prompt_template
from harness.turns import format_dialogue
from harness.types import DialogueState

FIELDS = ("caption", "dialogue", "question", "round")


def load_template(source: str | Path) -> PromptTemplate:
    """A packaged bot template by name (``questioner``, ``answerer``, ``answerer_chat``) or a user's text file."""
    return load_prompt_template(source, package="simulators.common", fields=FIELDS)


def render_for_state(template: PromptTemplate, state: DialogueState, question: str = "") -> str:
    """Fill every field from a dialogue state (at the round before the one being asked)."""
    return template.render(caption=state.caption, dialogue=format_dialogue(state.query_turns), question=question,
                           round=state.round + 1)
