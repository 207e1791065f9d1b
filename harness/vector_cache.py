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
from harness.cache_fill import fill_missing


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
        filled = fill_missing(keys, self.get, lambda missing: list(np.asarray(compute(missing), dtype=np.float32)),
                              lambda key, vector: atomic_save_array(self._path(key), vector))
        self.hits += filled.hits
        self.misses += filled.computed
        return np.stack(filled.outputs).astype(np.float32) if keys else np.zeros((0, 0), dtype=np.float32)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"
