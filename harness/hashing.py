"""Stable identities: file digests, canonical hashes of configuration data, and per-item seeds.

    >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    True
    >>> derive_seed(0, "dialogue-7", 3) == derive_seed(0, "dialogue-7", 3)
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal data always gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode("utf-8"))


def derive_seed(global_seed: int, *parts: object) -> int:
    """A 63-bit seed for one item (a dialogue, a round, an image) that depends only on the global seed and the
    item's identity, never on batch order, worker or resume point."""
    digest = hashlib.sha256(canonical_json([global_seed, *[str(part) for part in parts]]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def files_fingerprint(paths: Sequence[Path], memo_dir: Path | None = None) -> str:
    """A content fingerprint of model files (weights, configs, tokenizer): sha256 over each file's name, size and
    full sha256, in order of name, so the same files in another folder, or listed in another order, agree.

    Every byte counts (a same-size fine-tune that only changes tensors in the middle gets another value), yet only
    the first use of a file reads it: its sha256 is memoised under ``memo_dir/file-digests`` (default: the shared
    cache folder) keyed by (absolute path, size, mtime_ns), so a rewritten file is hashed again and an unchanged
    11B checkpoint is not read at every load.
    """
    if memo_dir is None:
        from harness.config import default_cache_dir  # imported here: harness.config imports more than hashing may

        memo_dir = default_cache_dir()
    digest = hashlib.sha256()
    for path in sorted((Path(path) for path in paths), key=lambda path: (path.name, str(path))):
        size = path.stat().st_size
        digest.update(canonical_json([path.name, size, _memoised_sha256(path, memo_dir)]).encode("utf-8"))
    return digest.hexdigest()


def _memoised_sha256(path: Path, memo_dir: Path) -> str:
    """``sha256_file(path)``, read from (or written to) its memo entry for the file's current path, size and mtime."""
    # harness.atomic imports this module, so it can only be imported once both are loaded.
    from harness.atomic import atomic_write_text, read_record

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
