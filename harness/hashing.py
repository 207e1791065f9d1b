"""Stable identities: file digests, canonical hashes of configuration data, and per-item seeds.

    >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    True
    >>> derive_seed(0, "dialogue-7", 3) == derive_seed(0, "dialogue-7", 3)
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def derive_seed(global_seed: int, *parts: object) -> int:
    """A 63-bit seed for one item (a dialogue, a round, an image) that depends only on the global seed and the
    item's identity, never on batch order, worker or resume point."""
    digest = hashlib.sha256(canonical_json([global_seed, *[str(part) for part in parts]]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def files_fingerprint(paths: Sequence[Path], sample_bytes: int = 1 << 20) -> str:
    """A fast content fingerprint of model files too large to hash whole (an 11B model's shards).

    sha256 over each file's name, size and its first and last ``sample_bytes`` (the whole file when it is no larger
    than ``2 * sample_bytes``). Files are taken in order of name, so the same files in another folder, or listed in
    another order, give the same fingerprint. It is a fingerprint, not a full digest: two files of equal name and
    size that differ only in the unread middle get the same value. That is enough to tell checkpoints (and their
    revisions) apart, since any retrained or converted tensor changes sizes, headers or the sampled ends; use
    ``sha256_file`` where a full digest is needed.
    """
    if sample_bytes < 1:
        raise ValueError(f"sample_bytes must be at least 1, got {sample_bytes}")
    digest = hashlib.sha256()
    for path in sorted((Path(path) for path in paths), key=lambda path: (path.name, str(path))):
        size = path.stat().st_size
        digest.update(canonical_json([path.name, size]).encode("utf-8"))
        with open(path, "rb") as handle:
            if size <= 2 * sample_bytes:
                digest.update(handle.read())
            else:
                digest.update(handle.read(sample_bytes))
                handle.seek(size - sample_bytes)
                digest.update(handle.read(sample_bytes))
    return digest.hexdigest()
