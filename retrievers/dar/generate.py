"""Replay-mode DAR image generation as a job of its own: every image the DAR runs over some benchmarks will ask for,
drawn once into the shared image cache, before and apart from retrieval (generation does not depend on the
retriever's encoder, so every DAR variant over the same prompts reuses them).

    harness dar generate --benchmark visdial-val --benchmark flan-blip2 --data-dir DATA --dar-variant paper \\
        --retriever-arg diffusion=sd3 --executor ray --ray-address auto --gpus-per-worker 1
    counts = generate_dar_images({"variant": "paper", "llm": "hf-seq2seq"}, dialogues, rounds=10)

Two phases, each over an executor (in-process, or Ray actors that each load their model once):
1. prompts: chunks of dialogues -> DAR's captions S_t (R1; or the ``queries`` file), K image prompts per caption
   (R2, or the caption itself) through the shared response cache, and each image's cache key, computed by the
   workers (the key holds the dtype, which ``auto`` resolves on the worker's device, not the driver's). The driver
   keeps the distinct keys: identical dialogue prefixes across dialogues and benchmarks are drawn once.
2. images: the requests not yet cached, in chunks -> ``DiffusionGenerator.cached_generate`` (one pipeline per
   worker / GPU), which writes each image atomically into the cache under the same key a DAR run computes; a
   worker whose own keys differ from phase 1's (a worker on another kind of device) stops the job.

The settings are ``retrievers.dar.retriever.build_dar``'s arguments, so the job builds the very reformulator and image
source a run with those arguments builds; a later ``harness run --retriever dar`` with them finds every image cached.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from harness.atomic import atomic_write_text
from harness.command_line import parse_argument
from harness.config import default_cache_dir
from harness.devices import resolve_device
from harness.errors import ConfigError, HarnessError
from harness.executors import Executor, make_executor
from harness.image_cache import ImageCache
from harness.protocols import RunContext
from harness.turn_validity import InvalidTurn
from harness.types import Dialogue, DialogueState, batched
from retrievers.dar.retriever import DARRetriever, GeneratedImages, build_dar, prompt_lines


@dataclass(frozen=True)
class GenerationCounts:
    """What the job found and did: image requests (dialogue-rounds x K), distinct (prompt, replicate) requests,
    those already cached, those drawn now."""

    image_requests: int
    distinct_requests: int
    cached: int
    generated: int


def _build(dar_args: Mapping[str, Any]) -> DARRetriever:
    retriever = build_dar(**dict(dar_args))
    if not isinstance(retriever.image_source, GeneratedImages):
        raise ConfigError("DAR generation needs a diffusers pipeline; these settings read a pre-generated folder "
                          "(images=...)")
    return retriever


@dataclass(frozen=True, order=True)
class KeyedRequest:
    """One image DAR draws: its prompt, replicate index (which of the K images of the prompt) and cache key, and
    the (dialogue, round) that asked for it (identical requests of other dialogues are the same image)."""

    prompt: str
    replicate: int
    key: str
    dialogue_id: str = field(default="", compare=False)
    round: int = field(default=-1, compare=False)


def _image_source(dar_args: Mapping[str, Any], cache_dir: Path, device: str) -> GeneratedImages:
    source = _build(dar_args).image_source
    assert isinstance(source, GeneratedImages)
    source.load(RunContext(device=resolve_device(device), cache_dir=cache_dir, progress=False))
    return source


def _keyed(source: GeneratedImages, requests: Sequence[tuple[str, int]]) -> list[KeyedRequest]:
    assert source.generator is not None
    keys = source.generator.requests([prompt for prompt, _ in requests], [copy for _, copy in requests],
                                     global_seed=source.seed)
    return [KeyedRequest(prompt, copy, key.key) for (prompt, copy), key in zip(requests, keys)]


class PromptWorkerFactory:
    """Builds (once per worker) DAR's prompt side (the reformulator and the query file) and the image keys; a
    worker maps a chunk of dialogues to its keyed image requests."""

    def __init__(self, dar_args: Mapping[str, Any], rounds: int, cache_dir: Path, device: str) -> None:
        self.dar_args, self.rounds, self.cache_dir, self.device = dict(dar_args), rounds, cache_dir, device

    def __call__(self) -> Callable[[Sequence[Dialogue]], list[KeyedRequest]]:
        retriever = _build(self.dar_args)
        context = RunContext(device=resolve_device(self.device), cache_dir=self.cache_dir, progress=False)
        if retriever.reformulator is not None:
            retriever.reformulator.load(context)
        if retriever.queries is not None:
            retriever.load_queries()
        source = _image_source(self.dar_args, self.cache_dir, self.device)

        def keyed(dialogues: Sequence[Dialogue]) -> list[KeyedRequest]:
            placed = dar_image_requests(retriever, dialogues, self.rounds)
            requests = _keyed(source, [(prompt, replicate) for _, _, prompt, replicate in placed])
            return [replace(request, dialogue_id=dialogue_id, round=round_)
                    for request, (dialogue_id, round_, _, _) in zip(requests, placed)]

        return keyed


class ImageWorkerFactory:
    """Builds (once per worker) DAR's diffusers generator; a worker draws a chunk of keyed requests into the shared
    image cache and returns how many it drew (the rest were cached meanwhile)."""

    def __init__(self, dar_args: Mapping[str, Any], cache_dir: Path, device: str) -> None:
        self.dar_args, self.cache_dir, self.device = dict(dar_args), cache_dir, device

    def __call__(self) -> Callable[[Sequence[KeyedRequest]], int]:
        source = _image_source(self.dar_args, self.cache_dir, self.device)
        generator, cache = source.generator, ImageCache(self.cache_dir)
        assert generator is not None

        def draw(requests: Sequence[KeyedRequest]) -> int:
            mine = _keyed(source, [(request.prompt, request.replicate) for request in requests])
            if [request.key for request in mine] != [request.key for request in requests]:
                raise HarnessError(
                    "an image worker computes other image keys than the prompt workers did (its device or dtype "
                    f"differs: this worker has {generator.key_identity()['dtype']} on {generator.device}); give "
                    "--device and diffusion_dtype explicitly so that every worker draws the same images"
                )
            before = generator.generated
            generator.cached_generate(cache, [request.prompt for request in requests],
                                      [request.replicate for request in requests], global_seed=source.seed)
            return generator.generated - before

        return draw


def dar_image_requests(retriever: DARRetriever, dialogues: Sequence[Dialogue],
                       rounds: int) -> list[tuple[str, int, str, int]]:
    """The (dialogue id, round, prompt, replicate) of every image DAR draws for ``dialogues`` at rounds
    0..``rounds``, in order."""
    states = [DialogueState(dialogue.dialogue_id, dialogue.target, 0, round_, dialogue.turns[: round_ + 1])
              for dialogue in dialogues for round_ in range(min(rounds, len(dialogue.turns) - 1) + 1)]
    if not states:
        return []
    if retriever.queries is not None:
        retriever._check_query_records(states)
    captions = retriever._captions_up_to_round(states)
    # A state whose S_t or image prompts stay invalid draws no image: its dialogue fails when the run ranks it.
    valid = [row for row, caption in enumerate(captions) if not isinstance(caption[-1], InvalidTurn)]
    prompts = retriever._image_prompts([states[row] for row in valid], [captions[row] for row in valid])
    return [(states[row].dialogue_id, states[row].round, prompt, replicate)
            for row, state_prompts in zip(valid, prompts) if not isinstance(state_prompts, InvalidTurn)
            for replicate, prompt in enumerate(prompt_lines(state_prompts))]


def images_per_round(retriever: DARRetriever) -> int:
    """K, the images DAR draws per dialogue-round."""
    count = getattr(retriever, "images_per_round", None)
    return int(count if count is not None else retriever.schedule.images_per_round)  # type: ignore[attr-defined]


def generate_dar_images(
    dar_args: Mapping[str, Any],
    dialogues: Sequence[Dialogue],
    rounds: int = 10,
    cache_dir: Path | None = None,
    device: str = "auto",
    executor: Executor | None = None,
    dialogues_per_chunk: int = 64,
    images_per_chunk: int = 64,
    dry_run: bool = False,
    echo: Callable[[str], None] = lambda text: None,
    export_images: Path | None = None,
) -> GenerationCounts:
    """Draw every missing image the DAR settings ``dar_args`` ask for over ``dialogues`` into the image cache; with
    ``export_images``, then place each (dialogue, round)'s image there as ``{index}_{round}.png``."""
    if export_images is not None:
        _check_exportable(dar_args, dialogues)
        if dry_run:
            echo("--dry-run draws nothing, so nothing is exported")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    executor = executor or make_executor("in-process")
    requests: list[KeyedRequest] = []
    for chunk_requests in executor.map(PromptWorkerFactory(dar_args, rounds, cache_dir, device),
                                       batched(list(dialogues), dialogues_per_chunk)):
        requests.extend(chunk_requests)
    total = len(requests)
    distinct = sorted({request.key: request for request in requests}.values())
    cache = ImageCache(cache_dir)
    missing = [request for request in distinct if not cache.contains(request.key)]
    echo(f"{total} image requests, {len(distinct)} distinct, {len(distinct) - len(missing)} cached, "
         f"{len(missing)} to draw")
    generated = 0
    if missing and not dry_run:
        for drawn in executor.map(ImageWorkerFactory(dar_args, cache_dir, device), batched(missing, images_per_chunk)):
            generated += drawn
    if export_images is not None and not dry_run:
        exported = export_generated_images(requests, dialogues, rounds, cache, export_images)
        echo(f"{exported.linked} images linked and {exported.copied} copied into {export_images} "
             f"({exported.unchanged} already there)")
        if exported.missing:
            echo(f"{len(exported.missing)} (dialogue, round) pairs have no image: their S_t or image prompts stayed "
                 f"invalid (listed in {exported.listing})")
    return GenerationCounts(total, len(distinct), len(distinct) - len(missing), generated)


@dataclass(frozen=True)
class ExportCounts:
    linked: int
    copied: int
    unchanged: int
    missing: tuple[tuple[str, int], ...]
    listing: Path


def export_generated_images(requests: Sequence[KeyedRequest], dialogues: Sequence[Dialogue], rounds: int,
                            cache: ImageCache, folder: Path) -> ExportCounts:
    """Each (dialogue, round)'s cached PNG as ``folder/{index}_{round}.png``, the layout ``train adafuse`` and
    ``--dar-images`` read: a hard link where the file system allows one (no second copy), else a copy; a file
    already holding the same bytes is left alone. ``export.json`` in the folder lists what it holds and the pairs
    that have no image."""
    folder.mkdir(parents=True, exist_ok=True)
    key_of = {(request.dialogue_id, request.round): request.key for request in requests}
    counts = {"linked": 0, "copied": 0, "unchanged": 0}
    missing: list[tuple[str, int]] = []
    for dialogue in dialogues:
        for round_ in range(min(rounds, len(dialogue.turns) - 1) + 1):
            key = key_of.get((dialogue.dialogue_id, round_))
            stem = f"{dialogue.dialogue_id}_{round_}"
            # An older image of this pair in another format (or one no longer drawn) would be read in its place.
            for stale in (folder / f"{stem}{suffix}" for suffix in (".jpg", ".jpeg")):
                stale.unlink(missing_ok=True)
            if key is None or not cache.contains(key):
                (folder / f"{stem}.png").unlink(missing_ok=True)
                missing.append((dialogue.dialogue_id, round_))
                continue
            counts[_place(cache.path(key), folder / f"{stem}.png")] += 1
    listing = folder / "export.json"
    atomic_write_text(listing, json.dumps({"images": sum(counts.values()), "rounds": rounds,
                                           "missing": [list(pair) for pair in missing]}, indent=1) + "\n")
    return ExportCounts(counts["linked"], counts["copied"], counts["unchanged"], tuple(missing), listing)


def _place(source: Path, target: Path) -> str:
    """Link (else copy) ``source`` to ``target`` atomically; ``unchanged`` when it already holds those bytes."""
    if target.exists() and (os.path.samefile(source, target) or filecmp.cmp(source, target, shallow=False)):
        return "unchanged"
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
        how = "linked"
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, temporary)
        how = "copied"
    os.replace(temporary, target)
    return how


def _check_exportable(dar_args: Mapping[str, Any], dialogues: Sequence[Dialogue]) -> None:
    count = images_per_round(_build(dar_args))
    if count != 1:
        raise ConfigError(f"--export-images writes one image per (dialogue, round), as train adafuse and --dar-images "
                          f"read them, but these settings draw {count} (images_per_round): use --dar-variant "
                          "released or --retriever-arg images_per_round=1")
    ids = [dialogue.dialogue_id for dialogue in dialogues]
    if ids != [str(index) for index in range(len(ids))]:
        raise ConfigError("--export-images names files by dialogue index, as train adafuse and --dar-images read "
                          "them: give one --benchmark, and its dialogues from the first on (ids 0, 1, 2, ...)")


@click.command("generate")
@click.option("--benchmark", "benchmarks", multiple=True, required=True,
              help="Known benchmark name or ChatIR-format dialogue file (repeatable).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder of the known benchmarks.")
@click.option("--dar-variant", type=click.Choice(["paper", "released"]), help="DAR fusion variant (sets K, prompts).")
@click.option("--dar-queries", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Reformulated-dialogue file supplying the captions.")
@click.option("--retriever-arg", multiple=True, metavar="KEY=VALUE",
              help="Any other build_dar argument, as `harness run --retriever dar` takes it (repeatable).")
@click.option("--rounds", default=10, show_default=True, help="Rounds after the caption.")
@click.option("--limit", type=int, help="Only the first N dialogues of each benchmark.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (per worker).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), help="Shared cache (default as `harness run`).")
@click.option("--executor", default="in-process", show_default=True, type=click.Choice(["in-process", "ray"]))
@click.option("--ray-address", help="Ray cluster to join (auto, ray://host:10001).")
@click.option("--workers", type=int, help="Ray workers (default: fill the cluster).")
@click.option("--gpus-per-worker", type=float, default=0.0, show_default=True, help="GPUs per Ray worker (fractions share one).")
@click.option("--images-per-chunk", default=64, show_default=True, help="Images per work item.")
@click.option("--dry-run", is_flag=True, help="Count the requests and cached images; draw nothing.")
@click.option("--export-images", type=click.Path(path_type=Path, file_okay=False),
              help="Then place every (dialogue, round)'s image here as {index}_{round}.png (hard links where possible), "
                   "the layout train adafuse and --dar-images read.")
@click.option("--plugin", "plugins", multiple=True, help="Module or .py file to import first.")
@click.option("--search-space", hidden=True, help="Ignored: drawing ranks nothing (kept so older commands still run).")
def generate(benchmarks: tuple[str, ...], data_dir: Path | None, dar_variant: str | None,
             dar_queries: Path | None, retriever_arg: tuple[str, ...], rounds: int, limit: int | None, device: str,
             cache_dir: Path | None, executor: str, ray_address: str | None, workers: int | None,
             gpus_per_worker: float, images_per_chunk: int, dry_run: bool, export_images: Path | None,
             plugins: tuple[str, ...], search_space: str | None) -> None:
    """Draw every image the DAR settings need for BENCHMARKs into the shared image cache, and print the counts."""
    from harness.runner import load_dialogues, load_plugins

    load_plugins(plugins)
    if search_space is not None:
        click.echo("--search-space is ignored: drawing images ranks nothing", err=True)
    dar_args = dict(parse_argument(text) for text in retriever_arg)
    if dar_variant is not None:
        dar_args["variant"] = dar_variant
    if dar_queries is not None:
        dar_args["queries"] = str(dar_queries)
    dialogues: list[Dialogue] = []
    for name in benchmarks:
        loaded = load_dialogues(name, data_dir)  # drawing ranks nothing: no search space needed
        dialogues.extend(loaded[:limit] if limit else loaded)
    chosen = make_executor(executor, ray_address, workers, gpus_per_worker, device=device)
    counts = generate_dar_images(dar_args, dialogues, rounds, cache_dir, device, chosen,
                                 images_per_chunk=images_per_chunk, dry_run=dry_run, echo=click.echo,
                                 export_images=export_images)
    click.echo(f"{len(dialogues)} dialogues, {counts.image_requests} image requests: {counts.distinct_requests} "
               f"distinct, {counts.cached} cached before, {counts.generated} generated now")
