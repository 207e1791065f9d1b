"""Prompt templates for the bots: our own text, kept in files a user can replace.

    template = load_template("questioner")                  # simulators/prompts/questioner.txt
    template = load_template(Path("my_questioner.txt"))     # a user's file (``--questioner-prompt FILE``)
    prompt = template.render(caption=state.caption, dialogue=format_dialogue(state), question="...")

Templates use ``string.Template`` fields: ``$caption`` (round 0), ``$dialogue`` (the rounds so far, one
"Q: ... A: ..." line each, or "(no questions asked yet)"), ``$question`` (answerer templates), ``$round`` (the round
being asked, 1-based). The exact template text is part of each bot's identity, so it lands in the run manifest and
in every response-cache key.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.turns import split_turn
from harness.types import DialogueState

FIELDS = ("caption", "dialogue", "question", "round")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    def __post_init__(self) -> None:
        unknown = {
            match.group("named") or match.group("braced")
            for match in string.Template.pattern.finditer(self.text)
            if match.group("named") or match.group("braced")
        } - set(FIELDS)
        if unknown:
            raise ConfigError(f"prompt template {self.name}: unknown field(s) {', '.join(sorted(unknown))}; "
                              f"templates may use {', '.join('$' + field for field in FIELDS)}")

    def render(self, **values: Any) -> str:
        return string.Template(self.text).safe_substitute({key: str(value) for key, value in values.items()}).strip()

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}


def load_template(source: str | Path) -> PromptTemplate:
    """A packaged template by name (``questioner``, ``answerer``, ``answerer_chat``) or a user's text file."""
    path = Path(source)
    if path.suffix == ".txt" or path.exists():
        try:
            return PromptTemplate(str(path), path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read prompt template {path}: {error.strerror}") from None
    packaged = resources.files("simulators") / "prompts" / f"{source}.txt"
    if not packaged.is_file():
        raise ConfigError(f"no packaged prompt template named {source!r} and no such file")
    return PromptTemplate(str(source), packaged.read_text(encoding="utf-8"))


def format_dialogue(state: DialogueState) -> str:
    """The rounds after the caption as "Q: ... A: ..." lines."""
    lines = []
    for turn in state.query_turns[1:]:
        question, answer = split_turn(turn)
        lines.append(f"Q: {question} A: {answer}")
    return "\n".join(lines) if lines else "(no questions asked yet)"


def render_for_state(template: PromptTemplate, state: DialogueState, question: str = "") -> str:
    """Fill every field from a dialogue state (at the round before the one being asked)."""
    return template.render(caption=state.caption, dialogue=format_dialogue(state), question=question,
                           round=state.round + 1)
