"""Models a bench runs when the user names none: registered fixtures, written into a work folder once.

    random_model_source("random:flan-t5-xl", work_dir, "cuda")   # fixture random-flan-t5-xl in work_dir/flan-t5-xl
    fixture_model("tiny-blip", work_dir / "tiny-blip", seed=1)   # a tiny seeded model

``random:NAME`` is the published full-size architecture of NAME with random weights (fixture ``random-NAME``): the
cost of the real model without a download. A fixture is written into a ``.partial`` folder that is renamed when
complete, so a folder that exists is whole, and an interrupted write is started again.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from harness.registry import REGISTRY, RegistryError

RANDOM_PREFIX = "random:"


def fixture_model(name: str, directory: Path, announce: str | None = None, **arguments: Any) -> Path:
    """``directory`` holding fixture ``name``, written by its registered writer unless it is there already
    (``announce`` names it in a line printed before a write: full-size models take minutes)."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    if announce is not None:
        click.echo(f"writing {announce} to {directory} ...")
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        REGISTRY.resolve("fixture", name)(partial, **arguments)
    partial.rename(directory)
    return directory


def random_model_source(source: str, work_dir: Path, device: str) -> str:
    """The folder of a ``random:NAME`` source, written under ``work_dir`` on first use; any other source as given."""
    if not source.startswith(RANDOM_PREFIX):
        return source
    name = "random-" + source.removeprefix(RANDOM_PREFIX)
    try:
        REGISTRY.resolve("fixture", name)
    except RegistryError:
        known = ", ".join(RANDOM_PREFIX + fixture.removeprefix("random-") for fixture in REGISTRY.names("fixture")
                          if fixture.startswith("random-"))
        raise click.BadParameter(f"{source!r} is no random full-size model; known: {known}") from None
    target = Path(work_dir) / source.removeprefix(RANDOM_PREFIX)
    return str(fixture_model(name, target, f"{source} (the published architecture, random weights)", device=device))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars (writing shards, loading weights) while a bench prints its figures; the
    previous setting is restored after, so a caller in the same process is left as it was."""
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
