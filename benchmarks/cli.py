"""The ``harness data`` commands: list, fetch and validate benchmark files.

    $ harness data list
    $ harness data fetch chatir --to data/chatir
    $ harness data validate --data-dir data/chatir --image-root ~/coco

``data`` is a click group that the harness CLI mounts lazily; it also runs on its own with
``python -m benchmarks.cli``. User errors (``HarnessError``) print as a one-line message without a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks.fetch import fetch_chatir
from benchmarks.known import KNOWN_BENCHMARKS, RAW_BASE_URL, SEARCH_SPACE, UPSTREAM
from benchmarks.validate import validate_data_dir
from harness.errors import HarnessError


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HarnessError as error:
            raise click.ClickException(str(error)) from None

    return run


@click.group("data")
def data() -> None:
    """Benchmark data: list the known files, download them, validate them."""


@data.command("list")
def list_benchmarks() -> None:
    """Print the known benchmarks with their upstream file, record count and sha256."""
    click.echo(f"upstream: {UPSTREAM}")
    for known in KNOWN_BENCHMARKS.values():
        click.echo(f"{known.name}: {known.description}")
        click.echo(
            f"  {known.dialogues.relative_path}  {known.dialogues.records:,} dialogues  {known.dialogues.sha256}"
        )
    click.echo("search space (shared by all):")
    click.echo(f"  {SEARCH_SPACE.relative_path}  {SEARCH_SPACE.records:,} images  {SEARCH_SPACE.sha256}")


@data.group("fetch")
def fetch() -> None:
    """Download published benchmark files."""


@fetch.command("chatir")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to fill.")
@click.option("--base-url", default=RAW_BASE_URL, show_default=True, help="Where the upstream layout is served.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the server.")
@_user_errors
def fetch_chatir_command(to: Path, base_url: str, timeout: float) -> None:
    """Download the four ChatIR dialogue files and the 50k search space, verified by sha256."""
    for path in fetch_chatir(to, base_url=base_url, timeout=timeout):
        click.echo(str(path))


@data.command("validate")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Upstream layout.")
@click.option("--image-root", type=click.Path(file_okay=False, path_type=Path), help="Check the images exist here.")
@click.option(
    "--benchmark", "benchmarks", multiple=True, type=click.Choice(list(KNOWN_BENCHMARKS)), help="Repeat; default all."
)
@_user_errors
def validate(data_dir: Path, image_root: Path | None, benchmarks: tuple[str, ...]) -> None:
    """Check the benchmark files (exit status 1 when there are errors; warnings report the known quirks)."""
    report = validate_data_dir(data_dir, image_root=image_root, benchmarks=benchmarks or None)
    click.echo(report.render())
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    data()
