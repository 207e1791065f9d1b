"""Role-tagged prompts: a template file of system, worked-example and user messages, rendered to a ``Conversation``
that chat back-ends receive as messages and text-to-text back-ends as one flattened text.

    template = load_chat_template("plugir_reconstruct", package="simulators.plugir", fields=("caption", "dialogue"))
    conversation = template.render(caption="a red bus", dialogue="is it moving? yes")
    conversation.as_dicts()      # [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}, ...]
    conversation.flattened()     # what hf-seq2seq (Flan-T5) reads

A template file holds sections, each opened by a line that is exactly ``[system]``, ``[user]`` or ``[assistant]``;
a section's text (surrounding blank lines dropped) is one message. A file with no tag at all is one user message.
Fields are ``string.Template`` fields, checked when the file is loaded (``harness.prompts``) and filled after the
sections are split, so a value holding "[user]" stays text.

The flattening rule (text-to-text models have no roles): the messages in order, separated by a blank line, except
that an assistant message follows the user message before it on the next line, so a worked example reads as a
prompt and its answer. A plain string prompt is a single user message to chat back-ends and itself to the others.
"""

from __future__ import annotations

import string
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.prompts import PromptTemplate, read_template

ROLES = ("system", "user", "assistant")
_TAGS = {f"[{role}]": role for role in ROLES}


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": message.role, "content": message.content} for message in self.messages]

    def flattened(self) -> str:
        parts: list[str] = []
        for message in self.messages:
            if message.role == "assistant" and parts:
                parts[-1] = f"{parts[-1]}\n{message.content}"
            else:
                parts.append(message.content)
        return "\n\n".join(parts)


Prompt = str | Conversation


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """What a chat back-end sends: the conversation's messages, or a string as the one user message."""
    return prompt.as_dicts() if isinstance(prompt, Conversation) else [{"role": "user", "content": prompt}]


def as_text(prompt: Prompt) -> str:
    """What a text-to-text back-end reads (the flattening rule above)."""
    return prompt.flattened() if isinstance(prompt, Conversation) else prompt


def prompt_key(prompt: Prompt) -> Any:
    """The prompt as a response-cache key holds it: a string as itself, a conversation as its role-tagged list."""
    return prompt.as_dicts() if isinstance(prompt, Conversation) else prompt


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    text: str
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        PromptTemplate(self.name, self.text, self.fields)  # refuses unknown fields
        object.__setattr__(self, "_sections", _sections(self.name, self.text))

    def render(self, **values: Any) -> Conversation:
        filled = {key: str(value) for key, value in values.items()}
        return Conversation(tuple(Message(role, string.Template(text).safe_substitute(filled).strip())
                                  for role, text in self._sections))  # type: ignore[attr-defined]

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}


def load_chat_template(source: str | Path, package: str, fields: Collection[str]) -> ChatTemplate:
    """A role-tagged template packaged as ``<package>/prompts/<source>.txt``, or a user's text file."""
    return ChatTemplate(*read_template(source, package), tuple(fields))


def _sections(name: str, text: str) -> tuple[tuple[str, str], ...]:
    sections: list[tuple[str, list[str]]] = []
    preamble: list[str] = []
    for line in text.splitlines():
        role = _TAGS.get(line.strip())
        if role is not None:
            sections.append((role, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    if not sections:
        return (("user", text.strip()),)
    if any(line.strip() for line in preamble):
        raise ConfigError(f"prompt template {name}: text before the first [system], [user] or [assistant] line; "
                          "put it in a section")
    messages = tuple((role, "\n".join(lines).strip()) for role, lines in sections)
    empty = [role for role, content in messages if not content]
    if empty:
        raise ConfigError(f"prompt template {name}: an empty [{empty[0]}] section")
    if messages[-1][0] == "assistant":
        raise ConfigError(f"prompt template {name}: the last section is [assistant]; a template ends with the "
                          "message the model answers ([user])")
    return messages

