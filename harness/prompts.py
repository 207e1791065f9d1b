"""Prompt templates: our own text, kept in files a user can replace, for every component that prompts a model.

    template = load_template("questioner", package="simulators.common")     # simulators/common/prompts/questioner.txt
    template = load_template(Path("my_questioner.txt"), package="simulators.common")   # a user's file
    prompt = template.render(caption="a red bus", question="is it moving?")

Templates use ``string.Template`` fields (``$caption``); each template declares the fields it may use, and an
unknown field is an error when the template is loaded, not a silent blank at run time. The exact template text is
part of each component's identity, so it lands in the run manifest and in every response-cache key.
"""

from __future__ import annotations

import string
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = self.used_fields() - set(self.fields)
        if unknown:
            raise ConfigError(
                f"prompt template {self.name}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"this template may use {', '.join('$' + field for field in self.fields)}"
            )

    def used_fields(self) -> set[str]:
        return {
            match.group("named") or match.group("braced")
            for match in string.Template.pattern.finditer(self.text)
            if match.group("named") or match.group("braced")
        }

    def render(self, **values: Any) -> str:
        return string.Template(self.text).safe_substitute({key: str(value) for key, value in values.items()}).strip()

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}


def load_template(source: str | Path, package: str, fields: Collection[str]) -> PromptTemplate:
    """A template packaged as ``<package>/prompts/<source>.txt``, or a user's text file."""
    return PromptTemplate(*read_template(source, package), tuple(fields))


def read_template(source: str | Path, package: str) -> tuple[str, str]:
    """The name and text of a template packaged as ``<package>/prompts/<source>.txt``, or of a user's text file."""
    path = Path(source)
    if path.suffix == ".txt" or path.exists():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read prompt template {path}: {error.strerror}") from None
    packaged = resources.files(package) / "prompts" / f"{source}.txt"
    if not packaged.is_file():
        raise ConfigError(f"no packaged prompt template named {source!r} in {package} and no such file")
    return str(source), packaged.read_text(encoding="utf-8")
