"""The ``harness data`` commands: list, fetch and validate benchmark files, caption a search space, convert VisDial.

    $ harness data list
    $ harness data fetch chatir --to data/chatir
    $ harness data validate --data-dir data/chatir --image-root ~/coco
    $ harness data validate --benchmark my_dialogues.json --search-space my_space.json
    $ harness data caption --data-dir data/chatir --image-root ~/coco --captioner blip2 --out captions.json
    $ harness data convert visdial visdial_1.0_val.json --image-pattern 'val2014/COCO_val2014_{image_id:012d}.jpg' ...

``data`` is a click group that the harness CLI mounts lazily; it also runs on its own with
``python -m benchmarks.cli``. User errors (``HarnessError``) print as a one-line message without a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks.fetch import fetch_chatir
from benchmarks.known import KNOWN_BENCHMARKS, RAW_BASE_URL, SEARCH_SPACE, UPSTREAM
from benchmarks.validate import resolve_benchmarks, validate_benchmarks
from harness.command_line import LazyGroup
from harness.errors import ConfigError, HarnessError


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HarnessError as error:
            raise click.ClickException(str(error)) from None

    return run


@click.group("data", cls=LazyGroup,
             lazy_subcommands={"reformulate": "retrievers.dar.reformulate_file:reformulate"})
def data() -> None:
    """Benchmark data: list the known files, download them, validate them, convert VisDial, caption a search space,
    reformulate dialogues (DAR's R1)."""


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
@click.option("--benchmark", "benchmarks", multiple=True, metavar="NAME|FILE",
              help="A published name (needs --data-dir) or any ChatIR-format file; repeat. Default: every published "
                   "file under --data-dir.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Upstream layout: the published files and the 50k search space.")
@click.option("--search-space", type=click.Path(dir_okay=False, path_type=Path),
              help="Search-space file (default: --data-dir's; without either, the checks that need one are skipped).")
@click.option("--image-root", type=click.Path(file_okay=False, path_type=Path),
              help="Check every image of the search space exists here, stays inside it and decodes.")
@click.option("--no-decode", is_flag=True, help="Only check that the images exist (no decoding).")
@click.option("--live-answerer", is_flag=True,
              help="The run re-asks the recorded questions (--questioner replay): rounds without '?' are errors.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def validate(benchmarks: tuple[str, ...], data_dir: Path | None, search_space: Path | None, image_root: Path | None,
             no_decode: bool, live_answerer: bool, quiet: bool) -> None:
    """Check benchmark files (exit status 1 when there are errors; warnings report quirks, info what was checked)."""
    try:
        resolve_benchmarks(benchmarks, data_dir)  # a name or path that is neither is a usage error (status 2)
    except HarnessError as error:
        raise click.UsageError(str(error)) from None
    report = validate_benchmarks(benchmarks, data_dir=data_dir, search_space=search_space, image_root=image_root,
                                 decode=not no_decode, live_answerer=live_answerer, progress=not quiet)
    click.echo(report.render())
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    data()


@data.command("caption")
@click.option("--benchmark", help="A published name (needs --data-dir) or a ChatIR-format file: its search space is "
                                  "captioned (and its targets checked to lie in it).")
@click.option("--search-space", type=click.Path(dir_okay=False, path_type=Path),
              help="Search-space JSON list to caption (default: --data-dir's published 50k search space).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder in the upstream ChatIR layout, for its search space.")
@click.option("--image-root", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder the search-space image paths are relative to.")
@click.option("--captioner", default="blip2", show_default=True, help="Registered captioner (blip2, openai).")
@click.option("--captioner-model", help="Captioner model source: hub id, local directory, or API model name.")
@click.option("--captioner-prompt", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Prompt template file replacing the packaged captioning prompt.")
@click.option("--captioner-arg", "captioner_arg", multiple=True, metavar="KEY=VALUE",
              help="Extra captioner argument (repeatable), e.g. max_new_tokens=20 or dtype=bfloat16.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Captions file to write.")
@click.option("--batch-size", default=64, show_default=True, type=int, help="Images per captioning batch.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Shared cache (default $HARNESS_CACHE or ~/.cache/itir-harness).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def caption(benchmark: str | None, search_space: Path | None, data_dir: Path | None, image_root: Path, captioner: str,
            captioner_model: str | None, captioner_prompt: Path | None, captioner_arg: tuple[str, ...], out: Path,
            batch_size: int, device: str, cache_dir: Path | None, quiet: bool) -> None:
    """Caption every search-space image (PlugIR's candidate captions, for `harness run --questioner plugir
    --candidate-captions FILE`); resumable: finished captions are cached."""
    from benchmarks.captions import caption_search_space
    from benchmarks.chatir import read_search_space
    from benchmarks.known import locate
    from harness.command_line import parse_argument
    from harness.config import default_cache_dir
    from harness.devices import resolve_device
    from harness.library_output import silence_library_progress
    from harness.protocols import RunContext
    from harness.registry import REGISTRY
    from harness.runner import open_benchmark

    if quiet:
        silence_library_progress()
    if benchmark is not None:
        try:
            loaded = open_benchmark(benchmark, data_dir, search_space, image_root)
        except ConfigError as error:  # a missing option: a usage error, as the other option checks here
            raise click.UsageError(str(error)) from None
        space, search_space = loaded.search_space, Path(loaded.paths["search_space"])
    else:
        if search_space is None:
            if data_dir is None:
                raise click.UsageError("give --search-space FILE, or --data-dir for the published 50k search space")
            search_space = locate(SEARCH_SPACE, data_dir, "caption")
        space = read_search_space(search_space, image_root)
    arguments = dict(parse_argument(text) for text in captioner_arg)
    arguments.update({key: value for key, value in (("model", captioner_model),
                                                    ("prompt", str(captioner_prompt) if captioner_prompt else None))
                      if value is not None})
    built, _ = REGISTRY.build("captioner", captioner, **arguments)
    context = RunContext(device=resolve_device(device), cache_dir=cache_dir or default_cache_dir(),
                         progress=not quiet)
    summary = caption_search_space(space, search_space, built, out, context, batch_size)
    click.echo(f"wrote {summary.images} captions to {summary.path} (manifest: {summary.manifest}); "
               f"{summary.usage.get('cache_hits', 0)} from the cache")


@data.group("convert")
def convert() -> None:
    """Convert public dialogue data into ChatIR-format files."""


@convert.command("visdial")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--image-pattern", "image_patterns", multiple=True, required=True,
              help="Image path per image_id, a Python format (repeatable; the first that exists wins), e.g. "
                   "'train2014/COCO_train2014_{image_id:012d}.jpg'.")
@click.option("--image-root", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder the image paths are relative to; without it the first pattern is used unchecked.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ChatIR-format dialogue file to write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def convert_visdial_command(source: Path, image_patterns: tuple[str, ...], image_root: Path | None, out: Path,
                            quiet: bool) -> None:
    """Convert a VisDial v1.0 JSON (train, val or test) into a ChatIR-format file: caption, then "question? answer"
    per round, as ChatIR's val file writes them."""
    from benchmarks.visdial import convert_visdial

    summary = convert_visdial(source, out, image_patterns, image_root, progress=not quiet)
    by_pattern = ", ".join(f"{count} x {pattern}" for pattern, count in summary.images_by_pattern.items())
    click.echo(f"wrote {summary.dialogues} dialogues to {summary.path} (images: {by_pattern})")
    if summary.unanswered_rounds:
        click.echo(f"{summary.unanswered_rounds} unanswered last rounds (VisDial's test split) were left out")


@click.group("dialogues")
def dialogues() -> None:
    """Dialogues generated by live runs."""


@dialogues.command("export")
@click.argument("run", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="ChatIR-format JSON file to write.")
@click.option("--skip-failed", is_flag=True, help="Export the finished dialogues of a run that has failed ones.")
@click.option("--reformulated", is_flag=True,
              help="Write the S_t of a DAR/ADaFuSE run (or the reconstructed captions of a plugir run) instead, as a "
                   "reformulated file for --dar-queries or --query-mode entry.")
@_user_errors
def export(run: Path, out: Path, skip_failed: bool, reformulated: bool) -> None:
    """Write a live RUN's generated dialogues as a ChatIR-format file (replay it with `harness run --benchmark FILE`),
    or with --reformulated a DAR/ADaFuSE RUN's captions S_t, one per round (rank them again with --dar-queries FILE:
    the same fused ranks, no LLM call)."""
    from benchmarks.export import export_dialogues, export_reformulated

    if reformulated and skip_failed:
        raise click.UsageError("--reformulated writes every dialogue in record order; --skip-failed cannot apply")
    summary = export_reformulated(run, out) if reformulated else export_dialogues(run, out, skip_failed)
    click.echo(f"wrote {summary.exported} dialogues to {summary.path}")
    if summary.skipped_failed:
        click.echo(f"left out {len(summary.skipped_failed)} failed dialogues: {', '.join(summary.skipped_failed[:10])}")


@dialogues.command("stats")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the measures as JSON (source -> measure -> value).")
@_user_errors
def stats(sources: tuple[Path, ...], as_json: bool) -> None:
    """Dialogue-quality measures of ChatIR-format files and run directories, side by side (rules printed below)."""
    from benchmarks.stats import format_stats, measure_sources

    measured = measure_sources(sources)
    if as_json:
        click.echo(json.dumps({item.label: item.measures for item in measured}, indent=1))
    else:
        click.echo(format_stats(measured))
