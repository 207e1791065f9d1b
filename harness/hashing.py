"""Stable identities: file digests, canonical hashes of configuration data, and per-item seeds.

    >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    True
    >>> derive_seed(0, "dialogue-7", 3) == derive_seed(0, "dialogue-7", 3)
    True
"""

from __future__ import annotations

import hashlib
import json
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
