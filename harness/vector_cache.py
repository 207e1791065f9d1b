"""On-disk cache of single embedding vectors (for example a generated image's embedding under one encoder).

    cache = VectorCache(context.cache_dir)
    keys = [stable_hash({"encoder": encoder.image_identity(), "image": digest}) for digest in digests]
    matrix = cache.get_or_compute(keys, lambda missing: encode([images[i] for i in missing]))   # (N, D) float32

Each entry is a ``.npy`` file written atomically and then a record beside it with its sha256, shape and dtype
(``harness.atomic.write_checked``). An entry that fails a check (a truncated, bit-flipped or replaced file, a record
of another key, a shape or dtype the record does not give) is logged as damaged and recomputed, never used; one
without a record, which includes every entry stored before records were, is a plain miss and is recomputed too.
Either way the new vector overwrites the old file. Identical keys in one call are computed once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import array_bytes, read_checked, sweep_cache_once, write_checked
from harness.cache_fill import fill_missing


class VectorCache:
    def __init__(self, cache_dir: Path, namespace: str = "vectors") -> None:
        self.root = Path(cache_dir) / namespace
        sweep_cache_once(self.root)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        """The cached float32 vector, or None when the entry is missing or fails its checks."""
        return read_checked(self._path(key), key, _decode_vector)

    def put(self, key: str, vector: np.ndarray) -> None:
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        if vector.ndim != 1:
            raise ValueError(f"a vector cache stores 1-D vectors, got shape {vector.shape}")
        write_checked(self._path(key), array_bytes(vector),
                      {"key": key, "shape": list(vector.shape), "dtype": str(vector.dtype)})

    def get_or_compute(self, keys: Sequence[str], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """(len(keys), D) float32; ``compute(positions)`` gets the positions of the distinct missing keys and returns
        their vectors as rows, in order."""
        filled = fill_missing(keys, self.get, lambda missing: list(np.asarray(compute(missing), dtype=np.float32)),
                              self.put)
        self.hits += filled.hits
        self.misses += filled.computed
        return np.stack(filled.outputs).astype(np.float32) if keys else np.zeros((0, 0), dtype=np.float32)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"


def _decode_vector(data: bytes, record: Mapping[str, Any]) -> np.ndarray:
    vector = np.load(io.BytesIO(data), allow_pickle=False)
    if vector.ndim != 1 or list(vector.shape) != record.get("shape") or str(vector.dtype) != record.get("dtype"):
        raise ValueError(f"an array of shape {vector.shape} and dtype {vector.dtype} where the record says "
                         f"{record.get('shape')} and {record.get('dtype')}")
    return vector
