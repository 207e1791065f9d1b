"""A run directory: ``manifest.json`` (what was run), ``ranks.jsonl`` (one line per finished dialogue, appended as
dialogues finish), ``trace.jsonl`` (what produced each dialogue), ``costs.jsonl`` (what each invocation spent) and
``metrics.json`` (derived from the ranks, recomputable at any time).

    store = RunStore(Path("runs/chatir-visdial"))
    store.open(manifest)                      # new run, or resume: refuses a manifest that disagrees
    done = store.completed_ids()              # dialogues a resumed run skips
    store.append([record, ...])               # flushed and fsynced: a SIGKILL loses at most the line being written
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text, remove_stale_temporaries
from harness.errors import ConfigError, DataError, raise_storage_error
from harness.secrets import environment_secrets, scrub_secrets
from harness.types import RunRecord, parse_ranks

MANIFEST = "manifest.json"
RANKS = "ranks.jsonl"
TRACE = "trace.jsonl"
METRICS = "metrics.json"
COSTS = "costs.jsonl"  # one line per invocation: what it spent (harness.usage)
LOCK = ".lock"  # held (flock) by the one process writing the run


log = logging.getLogger(__name__)


class RunStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    @property
    def trace_path(self) -> Path:
        return self.directory / TRACE

    @property
    def ranks_path(self) -> Path:
        return self.directory / RANKS

    @property
    def metrics_path(self) -> Path:
        return self.directory / METRICS

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory for one writer: a second process is refused, naming the holder's pid. The lock
        is the operating system's (flock), so it goes with the process that held it, however that process ends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(f"{self.directory} is being written by another harness process (pid {holder}); "
                              "wait for it to finish, or use another --out") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.directory} is not a run directory (no {MANIFEST})") from None
        except json.JSONDecodeError as error:
            raise DataError(self.manifest_path, f"invalid JSON: {error}") from None

    def open(self, manifest: Mapping[str, Any]) -> bool:
        """Start a new run or resume one. Returns True when resuming. A stored manifest whose ``identity`` section
        differs from the new one is refused, naming every setting that differs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.directory)
        if not self.exists():
            atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
            self.ranks_path.touch()
            self.trace_path.write_text("")
            return False
        stored = self.read_manifest()
        differences = describe_differences(stored.get("identity", {}), manifest["identity"])
        if differences and not self.records():
            # Nothing was computed under the old settings (say, a command that failed before its first dialogue),
            # so there is nothing to protect: start afresh with the new settings.
            atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
            self.ranks_path.write_text("")
            self.trace_path.write_text("")
            return False
        if differences:
            raise ConfigError(
                f"{self.directory} holds a run with different settings; use another --out or the original "
                "settings to resume it. Differences (stored -> new):\n  " + "\n  ".join(differences)
            )
        self._drop_torn_last_line()
        self._drop_orphan_traces()
        return True

    def records(self, search_space: int | None = None, rounds: int | None = None) -> list[RunRecord]:
        """Every record, the last one per dialogue winning (a failed dialogue retried on resume is superseded);
        with ``search_space`` (its size) every rank is checked to lie in it, with ``rounds`` every finished record
        to hold a rank for rounds 0..rounds."""
        latest: dict[str, RunRecord] = {}
        for record in self._all_records(search_space, rounds):
            latest[record.dialogue_id] = record
        return list(latest.values())

    def _all_records(self, search_space: int | None = None, rounds: int | None = None) -> Iterator[RunRecord]:
        """Every record line in order, superseded attempts included (see ``records`` for the checks)."""
        if not self.ranks_path.is_file():
            return
        with open(self.ranks_path, "rb") as stream:
            for line_number, raw in enumerate(stream, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    if not raw.endswith(b"\n"):
                        break  # a line torn by a crash mid-write, mid-character too
                    raise DataError(self.ranks_path, f"line {line_number} is not UTF-8 text (byte {error.start} of the "
                                    "line); the file was damaged outside the harness") from None
                if not line.strip():
                    continue
                try:
                    record = RunRecord.from_json(line)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                    if not line.endswith("\n"):
                        break  # a line torn by a crash mid-write; the next open() removes it
                    raise DataError(self.ranks_path, f"line {line_number} is not a run record: {error}") from None
                if search_space is not None:
                    try:
                        parse_ranks(list(record.ranks), search_space)
                    except (TypeError, ValueError) as error:
                        raise DataError(self.ranks_path, f"line {line_number}: {error}", field="ranks") from None
                if rounds is not None and record.status == "ok" and len(record.ranks) != rounds + 1:
                    raise DataError(self.ranks_path, f"line {line_number}: {len(record.ranks)} ranks, but the run has "
                                    f"rounds 0..{rounds} ({rounds + 1} ranks)", field="ranks")
                yield record

    def checked_records(self) -> list[RunRecord]:
        """``records()`` with every rank checked against the search-space size and the rounds the manifest records
        (a manifest from an older version without the size: a warning, and non-negative integers only)."""
        manifest = self.read_manifest()
        size = manifest.get("benchmark", {}).get("search_space")
        if size is None:
            log.warning("%s: the manifest does not record the search-space size (a run from an older version), so "
                        "ranks are checked to be non-negative integers only", self.directory)
        return self.records(search_space=size, rounds=manifest.get("identity", {}).get("rounds"))

    def completed_ids(self) -> set[str]:
        return {record.dialogue_id for record in self.records() if record.status == "ok"}

    def append(self, records: Iterable[RunRecord]) -> None:
        """Append the records' traces to trace.jsonl, then the records to ranks.jsonl: a crash between the two
        leaves a trace line no record matches, which the next open drops (its dialogue is evaluated again)."""
        records = list(records)
        # What a bot or an LLM wrote may hold an API key a server echoed: it reaches neither file. A trace line
        # digests its record's line as stored (scrubbed), which is what reading the record back reproduces.
        secrets = environment_secrets()
        lines = [scrub_secrets(record.to_json(), secrets) for record in records]
        traces = "".join(scrub_secrets(json.dumps({
            "dialogue_id": record.dialogue_id, "record_sha256": _line_digest(line),
            "rounds": list(record.trace)}, ensure_ascii=False), secrets) + "\n"
            for record, line in zip(records, lines) if record.trace is not None)
        if traces:
            self._append_text(self.trace_path, traces)
        if lines:
            self._append_text(self.ranks_path, "".join(line + "\n" for line in lines))

    @staticmethod
    def _append_text(path: Path, lines: str) -> None:
        try:
            with open(path, "a", encoding="utf-8") as stream:
                stream.write(lines)
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as error:
            # A line cut short by the failed write is dropped when the run resumes.
            raise_storage_error(path, error)

    @property
    def costs_path(self) -> Path:
        return self.directory / COSTS

    def append_costs(self, entry: Mapping[str, Any]) -> None:
        self._append_text(self.costs_path, json.dumps(entry, sort_keys=True) + "\n")

    def costs(self) -> list[dict[str, Any]]:
        """Every invocation's costs line (a line torn by a crash is skipped)."""
        if not self.costs_path.is_file():
            return []
        entries = []
        for line in self.costs_path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s: a damaged line is skipped", self.costs_path)
        return entries

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2, sort_keys=True))

    def update_manifest(self, section: str, value: Any) -> None:
        manifest = self.read_manifest()
        manifest[section] = value
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    def traces(self, records: Iterable[RunRecord] | None = None) -> dict[str, list[dict[str, Any]]]:
        """The trace rounds of ``records`` (default: the latest record of every dialogue), by dialogue id. A trace
        line belongs to the record whose ranks.jsonl line it digests, so a retried dialogue's earlier attempt never
        stands in for its latest one; a record with no trace line (a run from before traces) is left out."""
        wanted = {_digest(record): record.dialogue_id for record in (self.records() if records is None else records)}
        return {wanted[entry["record_sha256"]]: list(entry.get("rounds", ()))
                for entry in self._trace_entries() if entry.get("record_sha256") in wanted}

    def _trace_entries(self) -> list[dict[str, Any]]:
        if not self.trace_path.is_file():
            return []
        entries = []
        for line in self.trace_path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # torn by a crash mid-write
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataError(self.trace_path, f"a line is not JSON ({error}); the file was damaged outside the "
                                "harness") from None
        return entries

    def _drop_orphan_traces(self) -> None:
        """Keep the trace lines of stored records only (in order): a line torn by a crash, or written just before a
        crash stopped its record, goes; a superseded attempt of a retried dialogue stays (it is history)."""
        if not self.trace_path.is_file():
            return
        digests = {_digest(record) for record in self._all_records()}
        entries = self._trace_entries()
        kept = [entry for entry in entries if entry.get("record_sha256") in digests]
        text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in kept)
        if text.encode("utf-8") != self.trace_path.read_bytes():
            atomic_write_text(self.trace_path, text)

    def _drop_torn_last_line(self) -> None:
        if not self.ranks_path.is_file():
            self.ranks_path.touch()
            return
        data = self.ranks_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.ranks_path, "r+b") as stream:
                stream.truncate(keep)


def _digest(record: RunRecord) -> str:
    """What ties a trace line to its record: the sha256 of the record's ranks.jsonl line."""
    return _line_digest(record.to_json())


def _line_digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def describe_differences(stored: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable list of the settings that differ between two nested JSON-like values."""
    if isinstance(stored, Mapping) and isinstance(new, Mapping):
        differences: list[str] = []
        for key in sorted(set(stored) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                differences.append(f"{path}: (absent) -> {json.dumps(new[key])}")
            elif key not in new:
                differences.append(f"{path}: {json.dumps(stored[key])} -> (absent)")
            else:
                differences.extend(describe_differences(stored[key], new[key], path))
        return differences
    if stored != new:
        return [f"{prefix}: {json.dumps(stored)} -> {json.dumps(new)}"]
    return []
