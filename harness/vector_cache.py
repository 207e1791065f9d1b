"""On-disk cache of single embedding vectors (for example a generated image's embedding under one encoder).

    cache = VectorCache(context.cache_dir)
    keys = [stable_hash({"encoder": encoder.image_identity(), "image": digest}) for digest in digests]
    matrix = cache.get_or_compute(keys, lambda missing: encode([images[i] for i in missing]))   # (N, D) float32

An unreadable entry counts as missing and is recomputed; identical keys in one call are computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.atomic import atomic_save_array


class VectorCache:
    def __init__(self, cache_dir: Path, namespace: str = "vectors") -> None:
        self.root = Path(cache_dir) / namespace
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        try:
            vector = np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vector if vector.ndim == 1 else None

    def get_or_compute(self, keys: Sequence[str], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """(len(keys), D) float32; ``compute(positions)`` gets the positions of the distinct missing keys and returns
        their vectors as rows, in order."""
        found = [self.get(key) for key in keys]
        first_missing: dict[str, int] = {}
        for index, (key, vector) in enumerate(zip(keys, found)):
            if vector is None and key not in first_missing:
                first_missing[key] = index
        self.hits += sum(vector is not None for vector in found)
        self.misses += len(first_missing)
        if first_missing:
            computed = np.asarray(compute(list(first_missing.values())), dtype=np.float32)
            if computed.shape[0] != len(first_missing):
                raise ValueError(f"compute returned {computed.shape[0]} vectors for {len(first_missing)} keys")
            by_key = dict(zip(first_missing, computed))
            for key, vector in by_key.items():
                atomic_save_array(self._path(key), vector)
            found = [by_key[key] if vector is None else vector for key, vector in zip(keys, found)]
        return np.stack(found).astype(np.float32) if found else np.zeros((0, 0), dtype=np.float32)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"
