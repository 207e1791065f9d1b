"""The evaluation loop: round-synchronous, batched, appending finished dialogues to the run directory.

    from harness.config import RunSpec
    from harness.runner import run_evaluation

    result = run_evaluation(RunSpec(retriever="oracle", benchmark="visdial-val", data_dir=Path("DATA"),
                                    out=Path("runs/oracle")))
    print(result.metrics["Hits@10"])

For every chunk of ``batch_size`` dialogues, round 0 ranks the captions; each later round asks the dialogue source
for the next turn of every running dialogue (one batched call), then ranks all of them (one batched call). A chunk's
records are appended to ``ranks.jsonl`` as soon as it finishes, so an interrupted run resumes where it stopped.

Chunks run on an executor (``spec.executor``: in-process by default, or ``ray``). The driver always opens the store,
builds and prepares the components first (so the search-space index and other shared caches are filled once, and
the manifest records what was built), then hands the executor a ``ChunkWorkerFactory``: in this process it reuses
the prepared components; pickled to a Ray worker it rebuilds them there from the spec, once per worker.
"""

from __future__ import annotations

import gc
import json
import logging
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config import RunSpec
from harness.devices import resolve_device
from harness.dialogue_quality import QUALITY_METRIC, looks_reformulated, question_free_share
from harness.errors import ConfigError, DataError, HarnessError
from harness.executors import Executor, make_executor
from harness.metrics import run_metrics
from harness.progress import progress_bar
from harness.protocols import DialogueSource, Retriever, RunContext, TracedTurn, TurnFailure
from harness.registry import REGISTRY, ComponentRecord
from harness.run_dialogues import replayed_rounds, run_quality
from harness.sources import LiveSource, ReplaySource
from harness.store import RunStore, describe_differences
from harness.types import PROMPTS_TRUNCATED, QUERY_TRUNCATED, Benchmark, Dialogue, DialogueState, RunRecord, batched
from harness.usage import Budget, BudgetReached, combine, totals, usage_of

log = logging.getLogger(__name__)

RECORDED_PACKAGES = ("itir-harness", "torch", "transformers", "numpy", "pillow", "safetensors", "tokenizers")


@dataclass(frozen=True)
class RunResult:
    directory: Path
    metrics: Mapping[str, Any]
    evaluated: int
    reused: int
    failed: int
    failure_reasons: Mapping[str, int] = field(default_factory=dict)  # each distinct stored error -> dialogues
    stopped: str | None = None  # why this invocation stopped before every dialogue was evaluated (a spending limit)
    costs: Mapping[str, Any] = field(default_factory=dict)  # what this invocation spent (its costs.jsonl line)


@dataclass(frozen=True)
class ChunkResult:
    """What a worker returns for a chunk: its records and what evaluating it spent (``harness.usage``)."""

    records: list[RunRecord]
    usage: Mapping[str, Any]


def load_benchmark(spec: RunSpec) -> Benchmark:
    """A registered benchmark name (``visdial-val``) or the path of any ChatIR-format dialogue file."""
    return open_benchmark(spec.benchmark, spec.data_dir, spec.search_space, spec.image_root)


def open_benchmark(name: str, data_dir: Path | None = None, search_space: Path | None = None,
                   image_root: Path | None = None) -> Benchmark:
    """The benchmark ``name`` (registered, under ``data_dir``) or dialogue file ``name`` (over ``search_space``, else
    ``data_dir``'s published one), with its search space under ``image_root``."""
    if name in REGISTRY.names("benchmark"):
        if data_dir is None:
            raise ConfigError(f"benchmark {name!r} needs --data-dir (the folder holding dialogues/)")
        benchmark, _ = REGISTRY.build("benchmark", name, data_dir=data_dir, image_root=image_root,
                                      search_space=search_space)
        return benchmark
    path = Path(name)
    if path.suffix == ".json" or path.exists():
        if search_space is None and data_dir is None:
            raise ConfigError(f"benchmark file {path} needs --search-space FILE (a JSON list of image paths), or "
                              "--data-dir for the published 50k search space")
        benchmark, _ = REGISTRY.build(
            "benchmark",
            "chatir-file",
            dialogues=path,
            search_space=search_space,
            image_root=image_root,
            data_dir=data_dir,
            expected_turns=None,  # any length; check_rounds tells a user whose file is shorter than --rounds
        )
        return benchmark
    REGISTRY.resolve("benchmark", name)  # raises with a did-you-mean list
    raise AssertionError("unreachable")


def load_dialogues(benchmark: str, data_dir: Path | None = None) -> tuple[Dialogue, ...]:
    """The dialogues of a registered benchmark (under ``data_dir``) or of any ChatIR-format file, for jobs that rank
    nothing (reformulation, image generation): a file needs no search space."""
    from harness.dialogue_files import read_chatir_dialogues

    if benchmark in REGISTRY.names("benchmark"):
        if data_dir is None:
            raise ConfigError(f"benchmark {benchmark!r} needs --data-dir (the folder holding dialogues/)")
        loaded, _ = REGISTRY.build("benchmark", benchmark, data_dir=data_dir)
        return loaded.dialogues
    path = Path(benchmark)
    if not path.exists():
        REGISTRY.resolve("benchmark", benchmark)  # raises with a did-you-mean list
    return read_chatir_dialogues(path, expected_turns=None)


def check_rounds(benchmark: Benchmark, dialogues: Sequence[Dialogue], rounds: int) -> None:
    for index, dialogue in enumerate(dialogues):
        if len(dialogue.turns) < rounds + 1:
            raise DataError(
                benchmark.paths.get("dialogues", benchmark.name),
                f"has {len(dialogue.turns)} turns but --rounds {rounds} needs {rounds + 1}",
                record=index,
                field="dialog",
            )


def evaluate_chunk(
    dialogues: Sequence[Dialogue],
    source: DialogueSource,
    retriever: Retriever,
    target_positions: Mapping[str, int],
    rounds: int,
    query_mode: str,
    search_space_size: int,
    before_round: Callable[[], None] | None = None,
    seconds: dict[str, float] | None = None,
) -> list[RunRecord]:
    """Run a chunk of dialogues through every round; one source call and one retriever call per round.
    ``before_round`` runs before each round's calls (a spending check that may raise ``BudgetReached``);
    ``seconds`` adds up the time the source and the retriever took."""
    seconds = {} if seconds is None else seconds
    turns = {dialogue.dialogue_id: [dialogue.caption] for dialogue in dialogues}
    notes: dict[str, list[Mapping[str, str]]] = {dialogue.dialogue_id: [{}] for dialogue in dialogues}
    query_note = getattr(source, "query_note", None)
    ranks: dict[str, list[int]] = {dialogue.dialogue_id: [] for dialogue in dialogues}
    side_ranks: dict[str, dict[str, list[int]]] = {dialogue.dialogue_id: {} for dialogue in dialogues}
    side_values: dict[str, dict[str, list[float]]] = {dialogue.dialogue_id: {} for dialogue in dialogues}
    tied: dict[str, list[bool]] = {dialogue.dialogue_id: [] for dialogue in dialogues}
    traces: dict[str, list[dict[str, Any]]] = {dialogue.dialogue_id: [] for dialogue in dialogues}
    failures: dict[str, str] = {}
    running = list(dialogues)
    for round_ in range(rounds + 1):
        if before_round is not None:
            before_round()
        if round_ > 0:
            previous = [_state(dialogue, turns, notes, target_positions, round_ - 1, query_mode, query_note)
                        for dialogue in running]
            started = time.perf_counter()
            produced = source.next_turns(previous)
            seconds["source"] = seconds.get("source", 0.0) + time.perf_counter() - started
            _check_length("dialogue source", produced, previous)
            still_running = []
            for dialogue, turn in zip(running, produced):
                if isinstance(turn, TurnFailure):
                    failures[dialogue.dialogue_id] = f"round {round_}: {turn.reason}"
                    traces[dialogue.dialogue_id].append({"round": round_, "failure": turn.reason, **turn.trace})
                else:
                    traced = turn if isinstance(turn, TracedTurn) else TracedTurn(turn, {})
                    turns[dialogue.dialogue_id].append(traced.text)
                    notes[dialogue.dialogue_id].append(dict(traced.notes))
                    traces[dialogue.dialogue_id].append({"round": round_, **traced.trace})
                    still_running.append(dialogue)
            running = still_running
            if not running:
                break
        states = [_state(dialogue, turns, notes, target_positions, round_, query_mode, query_note)
                  for dialogue in running]
        started = time.perf_counter()
        batch = retriever.rank(states)
        seconds["retriever"] = seconds.get("retriever", 0.0) + time.perf_counter() - started
        _check_length("retriever", batch.ranks, states)
        if batch.tied:
            _check_length("retriever's tied flags", batch.tied, states)
        for position, (dialogue, rank) in enumerate(zip(running, batch.ranks)):
            entry = _round_entry(traces[dialogue.dialogue_id], round_)
            if batch.traces:
                entry["retriever"] = dict(batch.traces[position])
            if batch.top and batch.top[position]:
                entry["top"] = list(batch.top[position])
            if position in batch.failures:
                failures[dialogue.dialogue_id] = f"round {round_}: {batch.failures[position]}"
                continue
            if not 0 <= rank < search_space_size:
                raise HarnessError(
                    f"retriever returned rank {rank} for dialogue {dialogue.dialogue_id} round {round_}; "
                    f"ranks are 0-based positions in a search space of {search_space_size}"
                )
            ranks[dialogue.dialogue_id].append(int(rank))
            for name, values in batch.side_ranks.items():
                side_ranks[dialogue.dialogue_id].setdefault(name, []).append(int(values[position]))
            for name, floats in batch.side_values.items():
                side_values[dialogue.dialogue_id].setdefault(name, []).append(float(floats[position]))
            if batch.tied:
                tied[dialogue.dialogue_id].append(bool(batch.tied[position]))
        running = [dialogue for position, dialogue in enumerate(running) if position not in batch.failures]
        if not running:
            break
    return [
        RunRecord(
            dialogue_id=dialogue.dialogue_id,
            target=dialogue.target,
            ranks=tuple(ranks[dialogue.dialogue_id]),
            side_ranks={name: tuple(values) for name, values in side_ranks[dialogue.dialogue_id].items()},
            side_values={name: tuple(values) for name, values in side_values[dialogue.dialogue_id].items()},
            dialog=tuple(turns[dialogue.dialogue_id]) if source.records_dialog else None,
            status="failed" if dialogue.dialogue_id in failures else "ok",
            error=failures.get(dialogue.dialogue_id),
            tied=tuple(tied[dialogue.dialogue_id]),
            trace=tuple(traces[dialogue.dialogue_id]),
        )
        for dialogue in dialogues
    ]


def run_context(spec: RunSpec, device: str, progress: bool) -> RunContext:
    """The context components are prepared in, on the driver and on every worker alike."""
    return RunContext(device=device, cache_dir=spec.cache_dir, seed=spec.seed, progress=progress,
                      keep_top=spec.keep_top)


def _round_entry(trace: list[dict[str, Any]], round_: int) -> dict[str, Any]:
    """The trace entry of ``round_`` (made here for round 0, which no bot produces)."""
    if not trace or trace[-1]["round"] != round_:
        trace.append({"round": round_})
    return trace[-1]


def run_evaluation(
    spec: RunSpec,
    executor: Executor | None = None,
    source: DialogueSource | None = None,
) -> RunResult:
    """Evaluate ``spec`` into ``spec.out``, resuming what is already stored there. ``executor`` replaces the one
    ``spec.executor`` names; a ``source`` given here must be picklable to run on a remote executor."""
    load_plugins(spec.plugins)
    benchmark = load_benchmark(spec)
    dialogues = list(benchmark.dialogues[: spec.limit] if spec.limit else benchmark.dialogues)
    search_space = benchmark.search_space
    target_positions = {dialogue.dialogue_id: search_space.position(dialogue.target) for dialogue in dialogues}

    # Components (and the executor) are built (cheaply: models load in prepare) before the run directory is touched,
    # so a bad argument leaves nothing behind.
    if executor is None:
        executor = make_executor(spec.executor, spec.ray_address, spec.workers, spec.gpus_per_worker,
                                 device=spec.device)
    retriever, retriever_record = REGISTRY.build("retriever", spec.retriever, **dict(spec.retriever_args))
    # A retriever with a query mode of its own (DAR, ADaFuSE) reads its captions so and ignores --query-mode.
    if getattr(retriever, "query_mode", None) is None:
        _warn_if_joining_captions(spec, str(benchmark.paths.get("dialogues", benchmark.name)), dialogues)
    bot_records: list[ComponentRecord] = []
    given_source = source
    if source is None:
        source, bot_records = _build_source(spec, benchmark, dialogues, retriever)
    device = resolve_device(spec.device)
    store = RunStore(spec.out)
    with store.locked():
        manifest = _new_manifest(spec, benchmark)
        resumed = store.open(manifest)
        done = store.completed_ids()
        pending = [dialogue for dialogue in dialogues if dialogue.dialogue_id not in done]
        if resumed:
            log.info("resuming %s: %d of %d dialogues already stored", spec.out, len(dialogues) - len(pending), len(dialogues))

        if pending:
            context = run_context(spec, device, spec.progress)
            # Prepared here first even when workers run elsewhere: the search-space index (and any other shared cache)
            # is built once, and the manifest records the components' identities before any record is written.
            retriever.prepare(search_space, context)
            source.prepare(benchmark, context)
            connect_retrieval(source, retriever)
            identities = _record_components(store, retriever, [retriever_record, *bot_records], source, context, resumed)
            factory = ChunkWorkerFactory(
                spec=spec,
                benchmark=benchmark,
                target_positions=target_positions,
                identities=identities,
                source=given_source,
            )
            if getattr(executor, "remote", False):
                # The workers load their own copies; the driver's models would only hold memory (a GPU's, perhaps).
                del retriever, source
                gc.collect()
                _release_accelerator_memory()
            else:
                factory.use_prepared(retriever, source)

            started, spent, evaluated = datetime.now(UTC), {}, 0
            stopped: str | None = None
            try:
                with progress_bar(len(pending), f"evaluating {spec.retriever}", "dialogue", spec.progress) as bar:
                    for result in executor.map(factory, batched(pending, spec.batch_size)):
                        store.append(result.records)
                        evaluated += len(result.records)
                        bar.update(len(result.records))
                        spent = combine(spent, result.usage)
                        factory.spent = totals(spent)
                        stopped = factory.budget.exceeded(factory.spent)
                        if stopped is not None:
                            break
            except BudgetReached as reached:  # mid-chunk: that chunk's dialogues are evaluated again on resume
                stopped = str(reached)
                spent = combine(spent, reached.usage)
            finally:
                costs = _costs_entry(started, evaluated, spent, stopped)
                store.append_costs(costs)
            if stopped is not None:
                log.warning("stopped: %s; %d dialogues evaluated now are stored (their responses are cached), %d "
                            "are left. Run the same command again, with a higher limit or none, to resume",
                            stopped, evaluated, len(pending) - evaluated)
            result = _finish(store, dialogues, evaluated=evaluated, reused=len(dialogues) - len(pending),
                             partial=stopped is not None)
            return replace(result, stopped=stopped, costs=costs)

        return _finish(store, dialogues, evaluated=0, reused=len(dialogues))


class ChunkWorkerFactory:
    """Makes the worker that evaluates chunks of dialogues; what an executor calls once per worker.

    In the driver's process it hands out the components the driver already prepared. Pickled (to a Ray actor) it
    carries only the spec, the loaded benchmark and the identities the driver recorded: the worker loads the
    plug-ins, builds and prepares its own components (models load once per worker, shared caches are read, not
    rebuilt) and refuses to run if they differ from the recorded ones (other weights on another node, say).
    """

    def __init__(
        self,
        spec: RunSpec,
        benchmark: Benchmark,
        target_positions: Mapping[str, int],
        identities: Mapping[str, Any] | None = None,
        source: DialogueSource | None = None,
    ) -> None:
        self.spec = spec
        self.budget = Budget(spec.max_api_calls, spec.max_total_tokens)
        # What this invocation spent before the chunk a worker starts: the driver's running total, shared in its
        # process; a Ray worker gets the total when it was made and counts from there.
        self.spent: dict[str, Any] = {}
        self.benchmark = benchmark
        self.target_positions = dict(target_positions)
        self.identities = identities
        self.source = source  # a source given to run_evaluation (else built from the spec)
        self._prepared: tuple[Retriever, DialogueSource] | None = None

    def use_prepared(self, retriever: Retriever, source: DialogueSource) -> None:
        """Serve these already prepared components (in this process only: they are never pickled)."""
        self._prepared = (retriever, source)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_prepared"] = None
        return state

    def __call__(self) -> Callable[[Sequence[Dialogue]], ChunkResult]:
        retriever, source = self._prepared if self._prepared is not None else self._build()
        spec, size = self.spec, len(self.benchmark.search_space)

        def spending() -> dict[str, Any]:
            return {"source": usage_of(source), "retriever": usage_of(retriever)}

        def work(chunk: Sequence[Dialogue]) -> ChunkResult:
            start, seconds = spending(), {}

            def check() -> None:
                if self.budget.limited:
                    delta = combine(spending(), start, -1)
                    reason = self.budget.exceeded(combine(self.spent, totals(delta)))
                    if reason is not None:
                        raise BudgetReached(reason, {**delta, "seconds": seconds})

            records = evaluate_chunk(chunk, source, retriever, self.target_positions, spec.rounds, spec.query_mode,
                                     size, before_round=check, seconds=seconds)
            return ChunkResult(records, {**combine(spending(), start, -1), "seconds": seconds})

        return work

    def _build(self) -> tuple[Retriever, DialogueSource]:
        spec = self.spec
        load_plugins(spec.plugins)
        retriever, _ = REGISTRY.build("retriever", spec.retriever, **dict(spec.retriever_args))
        source = self.source
        if source is None:
            dialogues = self.benchmark.dialogues[: spec.limit] if spec.limit else self.benchmark.dialogues
            source, _ = _build_source(spec, self.benchmark, dialogues, retriever)
        context = run_context(spec, resolve_device(spec.device), progress=False)
        retriever.prepare(self.benchmark.search_space, context)
        source.prepare(self.benchmark, context)
        connect_retrieval(source, retriever)
        if self.identities is not None:
            built = _jsonable({"retriever": dict(retriever.identity()), "source": dict(source.identity())})
            differences = describe_differences(self.identities, built)
            if differences:
                raise ConfigError(
                    f"a worker on {platform.node()} built components that differ from the driver's (driver -> "
                    "worker); give every node the same model files and the same --device:\n  " + "\n  ".join(differences)
                )
        return retriever, source


def load_plugins(plugins: Sequence[str]) -> None:
    """Import each plug-in once per process (a worker reusing a process, or a second run, does not register twice)."""
    for plugin in plugins:
        path = Path(plugin)
        if path.suffix == ".py":
            loaded = sys.modules.get(f"harness_plugin_{path.stem}")
            if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path.resolve():
                continue
        REGISTRY.load_plugin(plugin)


def _build_source(
    spec: RunSpec, benchmark: Benchmark, dialogues: Sequence[Dialogue], retriever: Retriever
) -> tuple[DialogueSource, list[ComponentRecord]]:
    if not spec.live:
        check_rounds(benchmark, dialogues, spec.rounds)
        return ReplaySource(dialogues), []
    questioner, questioner_record = REGISTRY.build("questioner", str(spec.questioner), **dict(spec.questioner_args))
    answerer, answerer_record = REGISTRY.build("answerer", str(spec.answerer), **dict(spec.answerer_args))
    # Checked here, before any model loads, rather than at the first answer, after minutes of loading.
    if getattr(answerer, "needs_images", False) and benchmark.search_space.image_root is None:
        raise ConfigError(f"the {spec.answerer} answerer looks at each dialogue's target image, so this run needs "
                          "--image-root (the folder the search-space image paths are relative to)")
    if getattr(questioner, "needs_retrieval", False) and not callable(getattr(retriever, "retrieval_view", None)):
        raise ConfigError(f"the {spec.questioner} questioner asks from what the retriever returns, but the "
                          f"{spec.retriever} retriever computes no scores to show it; use a retriever built on an "
                          "encoder (zs, cocoft, cocoft-large, chatir, clip, dar, adafuse)")
    read_notes = getattr(answerer, "reads_notes", ())
    written = getattr(questioner, "writes_notes", ())
    unread = [name for name in read_notes if name not in written]
    if unread:
        raise ConfigError(f"the {spec.answerer} answerer reads the {unread[0]!r} note (see_reconstruction), but the "
                          f"{spec.questioner} questioner writes none; use --questioner plugir or drop that argument")
    return LiveSource(questioner, answerer), [questioner_record, answerer_record]


def connect_retrieval(source: DialogueSource, retriever: Retriever) -> None:
    """Give a retrieval-aware questioner its view of the (prepared) retriever; other sources get nothing."""
    if not getattr(source, "needs_retrieval", False):
        return
    make_view = getattr(retriever, "retrieval_view", None)
    if not callable(make_view):
        raise ConfigError(f"the questioner asks from what the retriever returns, but {type(retriever).__name__} "
                          "computes no scores to show it (it has no retrieval_view())")
    source.bind_retrieval(make_view())  # type: ignore[attr-defined]


def _costs_entry(started: datetime, evaluated: int, spent: Mapping[str, Any], stopped: str | None) -> dict[str, Any]:
    """This invocation's line of costs.jsonl: what each component spent, the time per stage, the totals."""
    components = {**dict(spent.get("source", {})), "retriever": dict(spent.get("retriever", {}))}
    return {
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round((datetime.now(UTC) - started).total_seconds(), 3),
        "dialogues_evaluated": evaluated,
        "stopped": stopped,
        "stage_seconds": {name: round(value, 3) for name, value in spent.get("seconds", {}).items()},
        "components": components,
        "totals": totals(components),
    }


def _finish(store: RunStore, dialogues: Sequence[Dialogue], evaluated: int, reused: int,
            partial: bool = False) -> RunResult:
    by_id = {record.dialogue_id: record for record in store.checked_records()}
    selected = [by_id[d.dialogue_id] for d in dialogues if d.dialogue_id in by_id]
    succeeded = [record for record in selected if record.status == "ok"]
    failed = [record for record in selected if record.status != "ok"]
    missing = [d.dialogue_id for d in dialogues if d.dialogue_id not in by_id]
    if missing and not partial:
        raise HarnessError(f"{len(missing)} dialogues have no record in {store.ranks_path} (first: {missing[:5]})")
    metrics: dict[str, Any] = {}
    if succeeded:
        metrics = run_metrics(succeeded)
    metrics.update({"dialogues": len(succeeded), "failed_dialogues": [record.dialogue_id for record in failed]})
    by_id = {dialogue.dialogue_id: dialogue for dialogue in dialogues}
    metrics[QUALITY_METRIC] = run_quality(store, selected, [
        Dialogue(record.dialogue_id, record.target, record.dialog) if record.dialog is not None
        else replayed_rounds(by_id[record.dialogue_id], record) for record in succeeded])
    store.write_metrics(metrics)
    diagnostics = _truncation_diagnostics(succeeded)
    if diagnostics:
        store.update_manifest("diagnostics", diagnostics)
    reasons = Counter(record.error or "no reason recorded" for record in failed)
    return RunResult(store.directory, metrics, evaluated=evaluated, reused=reused, failed=len(failed),
                     failure_reasons=dict(reasons.most_common()))


def _warn_if_joining_captions(spec: RunSpec, benchmark: str, dialogues: Sequence[Dialogue]) -> None:
    """A reformulated-caption file replayed with ``join`` queries the concatenation of every caption so far (a
    paragraph of eleven captions at round 10), which is almost never what was meant."""
    if spec.query_mode != "join" or spec.questioner is not None or not looks_reformulated(dialogues):
        return
    longest = max((len(", ".join(dialogue.turns[: spec.rounds + 1])) for dialogue in dialogues), default=0)
    log.warning("%s looks like a reformulated-caption file (%.0f%% of its rounds hold no '?'): with the default "
                "--query-mode join each query glues every caption so far (up to %d characters at round %d); pass "
                "--query-mode entry to query each round's caption alone", benchmark,
                100 * question_free_share(dialogues), longest, spec.rounds)


def _truncation_diagnostics(records: Sequence[RunRecord]) -> dict[str, int]:
    """How many queries (and DAR's image prompts) were cut at a token limit, over every round of ``records``; each
    non-zero count is logged once per run."""
    diagnostics: dict[str, int] = {}
    queries = [value for record in records for value in record.side_values.get(QUERY_TRUNCATED, ())]
    if queries:
        diagnostics.update(queries_truncated=int(sum(queries)), queries=len(queries))
    prompts = [value for record in records for value in record.side_values.get(PROMPTS_TRUNCATED, ())]
    if prompts:
        diagnostics["image_prompts_truncated"] = int(sum(prompts))
    if diagnostics.get("queries_truncated"):
        log.warning("%d of %d queries were cut at the text encoder's token limit (the manifest records the limit "
                    "and the counts)", diagnostics["queries_truncated"], len(queries))
    if diagnostics.get("image_prompts_truncated"):
        log.warning("%d image prompts were cut at the diffusion pipeline's token limit; the images show only the "
                    "start of those prompts", diagnostics["image_prompts_truncated"])
    return diagnostics


def _state(
    dialogue: Dialogue, turns: Mapping[str, list[str]], notes: Mapping[str, list[Mapping[str, str]]],
    positions: Mapping[str, int], round_: int, query_mode: str, query_note: str | None
) -> DialogueState:
    return DialogueState(
        dialogue_id=dialogue.dialogue_id,
        target=dialogue.target,
        target_index=positions[dialogue.dialogue_id],
        round=round_,
        query_turns=tuple(turns[dialogue.dialogue_id][: round_ + 1]),
        query_mode=query_mode,
        notes=tuple(notes[dialogue.dialogue_id][: round_ + 1]),
        query_note=query_note,
    )


def _check_length(what: str, produced: Sequence[Any], states: Sequence[DialogueState]) -> None:
    if len(produced) != len(states):
        raise HarnessError(f"{what} returned {len(produced)} results for a batch of {len(states)} dialogues")


def _new_manifest(spec: RunSpec, benchmark: Benchmark) -> dict[str, Any]:
    identity = spec.identity()
    if spec.benchmark not in REGISTRY.names("benchmark"):
        # A file is identified by its content: the same file typed as another path (or moved) resumes the run.
        identity["benchmark"] = "file"
    identity["benchmark_files"] = {role: value for role, value in benchmark.files.items()}
    return {
        "identity": identity,
        "spec": spec.to_dict(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark": {"name": benchmark.name, "dialogues": len(benchmark), "search_space": len(benchmark.search_space),
                      "files": {role: str(path) for role, path in benchmark.paths.items()}},
        "environment": _environment(),
    }


def _record_components(
    store: RunStore,
    retriever: Retriever,
    records: Sequence[ComponentRecord],
    source: DialogueSource,
    context: RunContext,
    resumed: bool,
) -> dict[str, Any]:
    """Write what was built (arguments given and resolved, model fingerprints, prompts) into the manifest; on resume
    refuse components whose identity changed since the run started (new weights under the same path, say)."""
    components = {
        "built": [record.to_dict() for record in records],
        "identities": {"retriever": dict(retriever.identity()), "source": dict(source.identity())},
        "device": context.device,
        "device_name": _device_name(context.device),
    }
    stored = store.read_manifest().get("components")
    if resumed and stored is not None:
        differences = describe_differences(stored["identities"], components["identities"])
        if differences:
            raise ConfigError(
                f"{store.directory}: a component's weights, prompts or settings changed since this run started "
                "(stored -> new):\n  " + "\n  ".join(differences)
            )
    store.update_manifest("components", components)
    return _jsonable(components["identities"])


def _jsonable(value: Any) -> Any:
    """``value`` as the manifest stores it (tuples become lists), so identities compare as stored."""
    return json.loads(json.dumps(value, default=str))


def _release_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _environment() -> dict[str, Any]:
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()
