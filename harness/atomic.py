"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

    with atomic_writer(Path("model.pth")) as stream:      # streamed (a large download)
        for chunk in chunks:
            stream.write(chunk)
    atomic_write_text(Path("manifest.json"), text)         # whole buffers

Cache entries that must never be used damaged are written with their digest and read back through a check:

    write_checked(Path("ab/abcd.png"), data, {"key": "abcd"})     # ab/abcd.png, then its record ab/abcd.json
    image = read_checked(Path("ab/abcd.png"), "abcd", decode)     # None when missing or failing a check

A record holds the entry's key, the sha256 and length of its data and whatever the cache adds (a shape, a size). An
entry whose record does not match (another key, another digest, a missing digest, unreadable or undecodable data) is
reported with a warning naming its file and read as missing, so the caller regenerates it and overwrites it. Nothing
is deleted on read: with several processes sharing a cache, the data without its record is an entry another writer
may still be finishing (the record is written last), so it is a plain miss, not damage.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

from harness.errors import raise_storage_error
from harness.hashing import sha256_bytes

log = logging.getLogger(__name__)

Entry = TypeVar("Entry")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files get the mode a plain open() would give them (0666 less the umask), so a cache a group shares stays readable
# by the group; mkstemp alone would leave every file 0600.
FILE_MODE = 0o666 & ~_umask()
HOST = socket.gethostname().replace(".", "-")
STALE_SECONDS = 24 * 3600  # a temporary file of another host is left alone until it is a day old


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary stream to a temporary file beside ``path``, renamed onto ``path`` only when the block completes;
    on any error (or interrupt) the temporary file is removed and ``path`` is untouched. The temporary file's name
    holds the writer's host and pid (``.NAME.HOST.PID.XXXX.tmp``), so ``remove_stale_temporaries`` can tell one
    whose writer died from one another process is still writing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{HOST}.{os.getpid()}.",
                                             suffix=".tmp")
    except OSError as error:
        raise_storage_error(path, error)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fchmod(stream.fileno(), FILE_MODE)
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise_storage_error(path, error)
        raise


def remove_stale_temporaries(folder: Path, recursive: bool = False) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder`` (and, ``recursive``, in every folder below it):
    those of this host whose pid is gone, and those of any host older than a day; never one another process may
    still be writing."""
    removed = []
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        parts = path.name.split(".")
        try:
            host, pid = parts[-4], int(parts[-3])
            if host == HOST and _alive(pid):
                continue
            if host != HOST and time.time() - path.stat().st_mtime < STALE_SECONDS:
                continue
            path.unlink()
        except (IndexError, ValueError, FileNotFoundError):
            continue  # not one of ours, or already gone
        removed.append(path)
    if removed:
        log.info("removed %d temporary files that killed writers left in %s", len(removed), folder)
    return removed


_swept: set[Path] = set()


def sweep_cache_once(root: Path) -> None:
    """``remove_stale_temporaries`` over a cache's whole tree, the first time this process opens it (each cache is
    opened by several components of a run, and a walk of 100k entries is not free)."""
    root = Path(root).absolute()
    if root in _swept:
        return
    _swept.add(root)
    if root.is_dir():
        remove_stale_temporaries(root, recursive=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class _WriteErrors:
    """A stream that remembers the OSError its ``write`` raised: torch.save reports a failed write as a RuntimeError
    without it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.stream.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.stream.flush()


def atomic_torch_save(value: Any, path: Path) -> None:
    """``torch.save(value)`` to ``path`` through ``atomic_writer``, a failed write named as any other."""
    import torch

    with atomic_writer(path) as stream:
        recorder = _WriteErrors(stream)
        try:
            torch.save(value, recorder)  # type: ignore[arg-type] - torch needs write() and flush() only
        except RuntimeError:
            if recorder.error is not None:
                raise recorder.error from None
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as stream:
        stream.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def array_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def atomic_save_array(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, array_bytes(array))


def record_path(path: Path) -> Path:
    """Where the record of the checked entry at ``path`` lives."""
    return path.with_suffix(".json")


def digest_facts(data: bytes) -> dict[str, Any]:
    return {"sha256": sha256_bytes(data), "bytes": len(data)}


def verify_digest(data: bytes, record: Mapping[str, Any], what: str | Path) -> bytes:
    """``data`` when its sha256 is the one ``record`` holds; ValueError naming ``what`` otherwise (no digest too)."""
    if record.get("sha256") != sha256_bytes(data):
        raise ValueError(f"the sha256 of {what} does not match its record")
    return data


def write_checked(path: Path, data: bytes, facts: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path``, then its record (``facts`` with the data's digest) beside it, each atomically.
    The record goes last, so a reader that finds one finds the data it describes, or newer data another writer is
    replacing it with, which fails the digest and is regenerated."""
    atomic_write_bytes(path, data)
    atomic_write_text(record_path(path), json.dumps({**facts, **digest_facts(data)}, sort_keys=True))


def read_checked(path: Path, key: str, decode: Callable[[bytes, Mapping[str, Any]], Entry]) -> Entry | None:
    """``decode(data, record)`` of the entry ``write_checked`` stored at ``path`` for ``key``, or None when it is
    missing, half written or fails a check. ``decode`` raises ValueError when the data disagree with the record."""
    def open_entry(record: Mapping[str, Any]) -> Entry:
        return decode(verify_digest(path.read_bytes(), record, path), record)

    return read_record(record_path(path), key, open_entry)


def read_record(path: Path, key: str, open_entry: Callable[[Mapping[str, Any]], Entry]) -> Entry | None:
    """``open_entry(record)`` for the JSON record at ``path`` when it is ``key``'s; None when there is no record (a
    plain miss) or, with a warning naming the file, when it is unreadable or ``open_entry`` raises OSError or
    ValueError (a damaged entry, regenerated by the caller)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(raw)  # bytes, so that text that is not UTF-8 is a ValueError here, i.e. damage
        if not isinstance(record, dict) or record.get("key") != key:
            raise ValueError(f"the record is not the one of key {key}")
        return open_entry(record)
    except (OSError, ValueError) as error:
        log.warning("damaged cache entry %s (%s): regenerating it", path, error)
        return None
