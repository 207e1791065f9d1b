"""Content fingerprints of model files, each file's sha256 computed once and remembered on disk.

    files_fingerprint(sorted(Path("models/flan-t5-xl").iterdir()), cache_dir)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text, read_record
from harness.config import default_cache_dir
from harness.hashing import canonical_json, sha256_file, stable_hash


def files_fingerprint(paths: Sequence[Path], memo_dir: Path | None = None) -> str:
    """A content fingerprint of model files (weights, configs, tokenizer): sha256 over each file's name, size and
    full sha256, in order of name, so the same files in another folder, or listed in another order, agree.

    Every byte counts (a same-size fine-tune that only changes tensors in the middle gets another value), yet only
    the first use of a file reads it: its sha256 is memoised under ``memo_dir/file-digests`` (default: the shared
    cache folder) keyed by (absolute path, size, mtime_ns), so a rewritten file is hashed again and an unchanged
    11B checkpoint is not read at every load.
    """
    if memo_dir is None:
        memo_dir = default_cache_dir()
    digest = hashlib.sha256()
    for path in sorted((Path(path) for path in paths), key=lambda path: (path.name, str(path))):
        size = path.stat().st_size
        digest.update(canonical_json([path.name, size, _memoised_sha256(path, memo_dir)]).encode("utf-8"))
    return digest.hexdigest()


def _memoised_sha256(path: Path, memo_dir: Path) -> str:
    """``sha256_file(path)``, read from (or written to) its memo entry for the file's current path, size and mtime."""
    absolute = path.resolve()
    stat = absolute.stat()
    key = stable_hash([str(absolute), stat.st_size, stat.st_mtime_ns])
    entry = memo_dir / "file-digests" / key[:2] / f"{key}.json"

    def recorded(record: Mapping[str, Any]) -> str:
        digest = record.get("sha256")
        if isinstance(digest, str):
            return digest
        raise ValueError("the record holds no sha256")  # damage in the file: read_record warns and we hash again

    known = read_record(entry, key, recorded)
    if known is not None:
        return known
    digest = sha256_file(absolute)
    record = {"key": key, "path": str(absolute), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    atomic_write_text(entry, canonical_json(record))
    return digest
