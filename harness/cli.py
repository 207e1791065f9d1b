"""The ``harness`` command.

    harness demo                                   # offline pipeline check on tiny models, 30-90 s on 2 CPU cores
    harness list                                   # registered retrievers, bots, benchmarks, fixtures
    harness data validate --data-dir DATA          # check the ChatIR files and search space
    harness run --retriever chatir --retriever-model chatir_weights.ckpt --benchmark visdial-val \\
                --data-dir DATA --image-root COCO --out runs/chatir-visdial
    harness metrics runs/chatir-visdial            # the per-round table of a stored run

Subcommands owned by plug-in packages (``data``, ``convert``, ``bench encoder``) are imported only when used, so
``harness list`` and ``harness metrics`` start without importing torch.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from harness.command_line import LazyGroup, parse_argument
from harness.config import DEVICES_HELP, QUERY_MODES, RunSpec, build_spec, read_config_file
from harness.errors import HarnessError
from harness.library_output import route_library_logs, silence_library_progress
from harness.registry import KINDS, REGISTRY, RegistryError

log = logging.getLogger("harness")
# Retrievers built on DAR's pipeline (reformulation, generated images): the --dar-* options apply to them.
DAR_PIPELINES = ("dar", "adafuse")
MODEL_COMMANDS = ("run", "demo", "train", "bench", "convert", "dar")  # the subcommands that load model libraries
MAX_REASONS_SHOWN = 10  # distinct failure reasons printed after a run, most frequent first


class HarnessFailure(click.ClickException):
    """A user-facing error: printed as ``error: ...`` without a traceback, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class HarnessGroup(LazyGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (HarnessError, RegistryError) as error:
            raise HarnessFailure(str(error)) from error


@click.group(
    cls=HarnessGroup,
    lazy_subcommands={
        "data": "benchmarks.cli:data",
        "dialogues": "benchmarks.cli:dialogues",
        "convert": "retrievers.dual_encoders.cli:convert",
        "report": "reports.cli:report",
        "view": "reports.cli:view",
        "export": "reports.cli:export",
        "bench": "harness.bench.cli:bench",
    },
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages, and the model libraries' warnings.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Evaluate interactive text-to-image retrieval with replayed or simulated dialogues."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand in MODEL_COMMANDS:  # the others need no model library, so none is imported for them
        route_library_logs(verbose)
        if not sys.stderr.isatty():  # their bars redraw with carriage returns, which a log file keeps as debris
            silence_library_progress()


@main.command("list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
def list_command(kind: str | None) -> None:
    """Print the registered plug-ins (all kinds, or one KIND)."""
    for each_kind in [kind] if kind else KINDS:
        click.echo(f"{each_kind}s:")
        for name in REGISTRY.names(each_kind):
            click.echo(f"  {name:<22} {REGISTRY.describe(each_kind, name)}")


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


@main.command("run")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML or JSON file of run settings; flags override it.")
@click.option("--retriever", help="Registered retriever name (see `harness list retriever`).")
@click.option("--retriever-model", help="Model source for the retriever: hub id, local transformers directory, or original checkpoint file (.pth/.ckpt).")
@click.option("--retriever-arg", "retriever_arg", multiple=True, metavar="KEY=VALUE", help="Extra retriever argument (repeatable), e.g. dtype=float16.")
@click.option("--questioner", help="Live run: questioner bot (flan, hf-chat, openai, replay, scripted; see `harness list questioner`).")
@click.option("--questioner-model", help="Questioner model source: hub id, local directory, or API model name.")
@click.option("--questioner-prompt", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Prompt template file replacing the packaged one.")
@click.option("--questioner-arg", "questioner_arg", multiple=True, metavar="KEY=VALUE", help="Extra questioner argument (repeatable), e.g. max_new_tokens=24.")
@click.option("--candidate-captions", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="plugir questioner: captions of the search-space images (JSON; `harness data caption` writes one).")
@click.option("--answerer", help="Live run: answerer bot (blip2, openai, replay, scripted).")
@click.option("--answerer-model", help="Answerer model source: hub id, local directory, or API model name.")
@click.option("--answerer-prompt", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Prompt template file replacing the packaged one.")
@click.option("--answerer-arg", "answerer_arg", multiple=True, metavar="KEY=VALUE", help="Extra answerer argument (repeatable).")
@click.option("--base-url", help="OpenAI-compatible endpoint for the openai bots (e.g. a vLLM server: http://localhost:8000/v1).")
@click.option("--api-key-env", help="Environment variable holding the API key of the openai bots (default OPENAI_API_KEY).")
@click.option("--dar-base", help="DAR: base encoder preset (zs, cocoft, chatir, clip).")
@click.option("--dar-variant", type=click.Choice(["paper", "released"]), help="DAR: fusion variant (see README).")
@click.option("--dar-queries", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="DAR: reformulated-dialogue file supplying the captions.")
@click.option("--dar-images", type=click.Path(path_type=Path, file_okay=False, exists=True), help="DAR: folder of pre-generated {dialogue_index}_{round}.jpg images.")
@click.option("--fusion-checkpoint", type=click.Path(path_type=Path, exists=True), help="ADaFuSE: `harness train adafuse` output folder (or its best/), or the authors' state dict (adafuse.pt); the --dar-* options apply too.")
@click.option("--benchmark", help="Known benchmark name (visdial-val, chatgpt-blip2, human-blip2, flan-blip2), all (the four, each into OUT/<name>), or a ChatIR-format dialogue file.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder in the upstream ChatIR layout (dialogues/, ChatIR_Protocol/).")
@click.option("--search-space", type=click.Path(path_type=Path, dir_okay=False), help="Search-space JSON list (needed with a dialogue FILE; overrides the known one).")
@click.option("--image-root", type=click.Path(path_type=Path, file_okay=False), help="Folder the image paths are relative to (e.g. the COCO root holding unlabeled2017/).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run directory (created; an existing one is resumed).")
@click.option("--rounds", type=int, help="Dialogue rounds after the caption (default 10).")
@click.option("--query-mode", type=click.Choice(QUERY_MODES), help="join: turns 0..t joined with ', ' (ChatIR); entry: turn t only (reformulated dialogues).")
@click.option("--device", help=f"{DEVICES_HELP} (default auto).")
@click.option("--batch-size", type=int, help="Dialogues per round-synchronous batch (default 64).")
@click.option("--seed", type=int, help="Global seed (default 0).")
@click.option("--keep-top", type=int, help="Best images per round kept in trace.jsonl, by the harness's ranking (default 10; 0: none).")
@click.option("--limit", type=int, help="Evaluate only the first N dialogues.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), help="Shared cache of embeddings (default $HARNESS_CACHE or ~/.cache/itir-harness).")
@click.option("--plugin", "plugins", multiple=True, help="Module or .py file to import first (registers plug-ins).")
@click.option("--executor", type=click.Choice(["in-process", "ray"]), help="Where chunks run (default in-process; ray needs `pip install 'itir-harness[ray]'`).")
@click.option("--ray-address", help="Ray cluster to join (auto, ray://host:10001; default: the connected one, else a local one).")
@click.option("--workers", type=int, help="Ray workers (default: fill the cluster).")
@click.option("--gpus-per-worker", type=float, help="GPUs each Ray worker reserves; fractions let small models share a GPU (default 0).")
@click.option("--max-api-calls", type=int, help="Stop issuing requests once this invocation sent N API calls (finished dialogues are stored; run again to resume).")
@click.option("--max-total-tokens", type=int, help="Stop issuing requests once this invocation spent N prompt + completion tokens (API and local models).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_command(
    config_file: Path | None,
    retriever_model: str | None,
    retriever_arg: tuple[str, ...],
    questioner_model: str | None,
    questioner_prompt: Path | None,
    questioner_arg: tuple[str, ...],
    candidate_captions: Path | None,
    answerer_model: str | None,
    answerer_prompt: Path | None,
    answerer_arg: tuple[str, ...],
    base_url: str | None,
    api_key_env: str | None,
    dar_base: str | None,
    dar_variant: str | None,
    dar_queries: Path | None,
    dar_images: Path | None,
    fusion_checkpoint: Path | None,
    quiet: bool,
    **flags: Any,
) -> None:
    """Evaluate a retriever on a benchmark and print accumulated Hits@k. Without bots the benchmark's recorded
    dialogues are replayed; with --questioner and --answerer every round is generated live."""

    file_values = read_config_file(config_file) if config_file else {}
    flag_values = {key: value for key, value in flags.items() if value not in (None, ())}
    endpoint = {"base_url": base_url, "api_key_env": api_key_env}
    dar_options = {"base": dar_base, "variant": dar_variant, "queries": _text(dar_queries), "images": _text(dar_images)}
    names = {role: flag_values.get(role, file_values.get(role)) for role in ("retriever", "questioner", "answerer")}
    for role, model, prompt, extra in (
        ("retriever", retriever_model, None, retriever_arg),
        ("questioner", questioner_model, questioner_prompt, questioner_arg),
        ("answerer", answerer_model, answerer_prompt, answerer_arg),
    ):
        arguments = dict(file_values.get(f"{role}_args", {}))
        arguments.update(parse_argument(text) for text in extra)
        overrides = {"model": model, "prompt": _text(prompt)}
        if names[role] == "openai" or (role == "questioner" and names[role] == "plugir"):
            overrides.update(endpoint)
        if role == "questioner":
            overrides["candidate_captions"] = _text(candidate_captions)
        if role == "retriever" and names[role] in DAR_PIPELINES:
            overrides.update(dar_options)
        if role == "retriever" and names[role] == "adafuse":
            overrides["fusion_checkpoint"] = _text(fusion_checkpoint)
        arguments.update({key: value for key, value in overrides.items() if value is not None})
        if arguments:
            flag_values[f"{role}_args"] = arguments
    if (base_url or api_key_env) and not {"openai", "plugir"} & {names["questioner"], names["answerer"]}:
        raise click.UsageError("--base-url and --api-key-env apply to the openai (or plugir) questioner or answerer")
    if candidate_captions is not None and names["questioner"] != "plugir":
        raise click.UsageError("--candidate-captions applies to --questioner plugir")
    if any(value is not None for value in dar_options.values()) and names["retriever"] not in DAR_PIPELINES:
        raise click.UsageError("the --dar-* options apply to --retriever dar or adafuse")
    if fusion_checkpoint is not None and names["retriever"] != "adafuse":
        raise click.UsageError("--fusion-checkpoint applies to --retriever adafuse")
    if quiet:
        flag_values["progress"] = False
        silence_library_progress()
    spec, overridden = build_spec(file_values, flag_values)
    if overridden:
        log.info("flags override config-file settings: %s", ", ".join(overridden))
    for each in _per_benchmark(spec):
        _run_one(each)


def _per_benchmark(spec: RunSpec) -> list[RunSpec]:
    """``--benchmark all``: the four known benchmarks, each into its own ``OUT/<name>`` run directory."""
    from dataclasses import replace

    if spec.benchmark != "all":
        return [spec]
    if spec.search_space is not None:
        raise click.UsageError("--search-space applies to a dialogue file, not to --benchmark all")
    return [replace(spec, benchmark=name, out=spec.out / name) for name in REGISTRY.suite("benchmark", "all")]


def _run_one(spec: RunSpec) -> None:
    from harness.dialogue_quality import QUALITY_METRIC
    from harness.runner import run_evaluation
    from harness.tables import format_quality_table, format_round_table
    from harness.usage import format_costs, summed_costs

    try:
        result = run_evaluation(spec)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; finished dialogues are stored in {spec.out}. Run the same command to resume.", err=True)
        sys.exit(130)
    click.echo(f"\n{spec.retriever} on {spec.benchmark}: {result.metrics['dialogues']} dialogues "
               f"({result.evaluated} evaluated now, {result.reused} reused from {result.directory})")
    if result.failed:
        click.echo(f"{result.failed} dialogues FAILED and are excluded from the metrics; rerun to retry them. "
                   "Reasons:")
        for reason, count in list(result.failure_reasons.items())[:MAX_REASONS_SHOWN]:
            click.echo(f"  {count:>6} x {reason}")
        if len(result.failure_reasons) > MAX_REASONS_SHOWN:
            click.echo(f"  ... and {len(result.failure_reasons) - MAX_REASONS_SHOWN} other reasons "
                       f"(the error of each dialogue is in {result.directory / 'ranks.jsonl'})")
    if result.failed and not result.metrics["dialogues"]:
        raise HarnessError(f"every one of the {result.failed} dialogues failed (reasons above); fix the cause and "
                           "run the same command again")
    click.echo(format_round_table(result.metrics))
    click.echo(format_quality_table(result.metrics[QUALITY_METRIC]))
    if result.costs:
        click.echo(format_costs(summed_costs([dict(result.costs)])))
    if result.stopped:
        click.echo(f"STOPPED: {result.stopped}. Finished dialogues are stored; run the same command again (with a "
                   "higher limit, or none) to resume.")


@main.command("metrics")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False, exists=True))
def metrics_command(runs: tuple[Path, ...]) -> None:
    """Recompute and print the metrics of stored RUN directories from their ranks.jsonl."""
    from harness.metrics import run_metrics
    from harness.run_dialogues import run_dialogues, run_quality
    from harness.store import RunStore
    from harness.tables import format_quality_table, format_round_table
    from harness.usage import format_costs, summed_costs

    for run in runs:
        store = RunStore(run)
        every_record = store.checked_records()
        records = [record for record in every_record if record.status == "ok"]
        if not records:
            raise HarnessError(f"{run} has no finished dialogues yet")
        metrics = run_metrics(records)
        click.echo(f"{run}: {len(records)} dialogues, BRI {metrics.get('BRI', float('nan')):.4f}")
        click.echo(format_round_table(metrics))
        costs = store.costs()
        if costs:
            click.echo(format_costs(summed_costs(costs)))
        try:
            dialogues, origin = run_dialogues(store, records)
        except HarnessError as error:
            click.echo(f"dialogue quality not measured: {error}\n")
            continue
        click.echo(f"{format_quality_table(run_quality(store, every_record, dialogues))}\n(of the {origin})\n")


@main.command("demo")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Write the demo's files here (default: a new folder under the system's temporary directory).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def demo_command(ctx: click.Context, out: Path | None, quiet: bool) -> None:
    """Offline pipeline check: tiny random-weight models of the real classes on a small synthetic benchmark."""
    from harness.demo import run_demo

    report = main.get_command(ctx, "report")
    assert report is not None
    if quiet:
        silence_library_progress()
    run_demo(out, progress=not quiet, report_command=report)


@main.group("train", cls=LazyGroup, lazy_subcommands={"adafuse": "retrievers.adafuse.cli:adafuse",
                                                     "chatir": "retrievers.dual_encoders.train_chatir:chatir"})
def train_group() -> None:
    """Train learned components (ADaFuSE fusion, ChatIR's text encoder)."""


@main.group("dar", cls=LazyGroup, lazy_subcommands={"generate": "retrievers.dar.generate:generate"})
def dar_group() -> None:
    """DAR jobs apart from retrieval: `generate` draws every image DAR runs will need into the shared cache."""
