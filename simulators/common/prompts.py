"""Prompt templates for the bots: our own text, kept in files a user can replace.

    template = load_template("questioner")                  # simulators/common/prompts/questioner.txt
    template = load_template(Path("my_questioner.txt"))     # a user's file (``--questioner-prompt FILE``)
    prompt = template.render(caption=state.caption, dialogue=format_dialogue(state.query_turns), question="...")

Templates use ``string.Template`` fields: ``$caption`` (round 0), ``$dialogue`` (the rounds so far, one
"Q: ... A: ..." line each, or "(no questions asked yet)"), ``$question`` (answerer templates), ``$round`` (the round
being asked, 1-based), ``$reconstruction`` (the caption a questioner rewrote from the dialogue so far, its
"reconstruction" note; the caption itself before the first round: PlugIR's answerer prompt, ``see_reconstruction``). The exact template text is part of each bot's identity, so it lands in the run manifest and
in every response-cache key.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from harness.prompts import PromptTemplate
from harness.prompts import load_template as load_prompt_template
from harness.turns import format_dialogue
from harness.types import RECONSTRUCTION, DialogueState

FIELDS = ("caption", "dialogue", "question", "round", "reconstruction")


def load_template(source: str | Path) -> PromptTemplate:
    """A packaged bot template by name (``questioner``, ``answerer``, ``answerer_chat``) or a user's text file."""
    return load_prompt_template(source, package="simulators.common", fields=FIELDS)


def render_for_state(template: PromptTemplate, state: DialogueState, question: str = "") -> str:
    """Fill every field from a dialogue state (at the round before the one being asked)."""
    return template.render(caption=state.caption, dialogue=format_dialogue(state.query_turns), question=question,
                           round=state.round + 1, reconstruction=state.note(RECONSTRUCTION) or state.caption)


def answerer_template(prompt: str, default: str, see_reconstruction: bool) -> tuple[PromptTemplate, tuple[str, ...]]:
    """An answerer's template and the notes it reads: with ``see_reconstruction`` the packaged default becomes its
    ``<default>_reconstruction`` variant (PlugIR's "Question: {c}. {question} Answer:" for BLIP-2); any template
    using ``$reconstruction`` reads that note."""
    source = f"{default}_reconstruction" if see_reconstruction and prompt == default else prompt
    template = load_template(source)
    reads = RECONSTRUCTION in template.used_fields()
    if see_reconstruction and not reads:
        raise ConfigError(f"see_reconstruction=true, but the answerer's prompt {template.name} has no "
                          "$reconstruction field to show it in")
    return template, (RECONSTRUCTION,) if reads else ()
