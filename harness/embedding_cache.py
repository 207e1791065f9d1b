"""On-disk cache of search-space embeddings, built once in resumable shards and shared by every run.

    cache = EmbeddingCache(context.cache_dir)
    matrix = cache.load_or_build(
        {"encoder": encoder.identity(), "images": search_space.fingerprint},
        count=len(search_space), encode=lambda start, stop: encode_images(paths[start:stop]),
        batch_size=64, description="indexing search space",
    )

The key is a hash of everything that changes the embeddings (model fingerprint, preprocessing, dtype, image list),
never of the run or the cache location, so a changed model or image list can never reuse a stale matrix. A shard or
final matrix whose digest does not match its record is discarded and recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from harness.atomic import atomic_save_array, atomic_write_text, sweep_cache_once
from harness.hashing import canonical_json, sha256_file, stable_hash
from harness.progress import progress_bar

EncodeRange = Callable[[int, int], np.ndarray]


class EmbeddingCache:
    def __init__(self, cache_dir: Path, shard_items: int = 4096) -> None:
        self.root = Path(cache_dir) / "embeddings"
        sweep_cache_once(self.root)
        self.shard_items = shard_items

    def entry_dir(self, key_parts: Mapping[str, Any]) -> Path:
        return self.root / stable_hash(key_parts)

    def load_or_build(
        self,
        key_parts: Mapping[str, Any],
        count: int,
        encode: EncodeRange,
        batch_size: int,
        description: str = "embedding",
        progress: bool = True,
    ) -> np.ndarray:
        """The (count x dim) float32 matrix for ``key_parts``, computed with ``encode(start, stop)`` where missing."""
        entry = self.entry_dir(key_parts)
        final = self._load_verified(entry / "embeddings.npy", entry / "embeddings.json")
        if final is not None and final.shape[0] == count:
            return final
        entry.mkdir(parents=True, exist_ok=True)
        atomic_write_text(entry / "key.json", canonical_json(key_parts))
        shards: list[np.ndarray] = []
        with progress_bar(count, description, "img", progress) as bar:
            for shard_start in range(0, count, self.shard_items):
                shard_stop = min(count, shard_start + self.shard_items)
                name = f"shard-{shard_start:09d}-{shard_stop:09d}"
                shard = self._load_verified(entry / f"{name}.npy", entry / f"{name}.json")
                if shard is None:
                    parts = [
                        self._encode_checked(encode, start, min(shard_stop, start + batch_size), bar)
                        for start in range(shard_start, shard_stop, batch_size)
                    ]
                    shard = np.concatenate(parts, axis=0)
                    self._save_with_digest(entry / f"{name}.npy", entry / f"{name}.json", shard)
                else:
                    bar.update(shard.shape[0])
                shards.append(shard)
        matrix = np.concatenate(shards, axis=0) if shards else np.zeros((0, 0), dtype=np.float32)
        self._save_with_digest(entry / "embeddings.npy", entry / "embeddings.json", matrix)
        for shard_file in entry.glob("shard-*"):
            shard_file.unlink(missing_ok=True)
        return matrix

    @staticmethod
    def _encode_checked(encode: EncodeRange, start: int, stop: int, bar: tqdm) -> np.ndarray:
        block = np.asarray(encode(start, stop), dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != stop - start:
            raise ValueError(f"encoder returned shape {block.shape} for items {start}..{stop - 1}")
        bar.update(stop - start)
        return block

    @staticmethod
    def _save_with_digest(array_path: Path, record_path: Path, array: np.ndarray) -> None:
        atomic_save_array(array_path, np.ascontiguousarray(array, dtype=np.float32))
        record = {"sha256": sha256_file(array_path), "shape": list(array.shape)}
        atomic_write_text(record_path, json.dumps(record))

    @staticmethod
    def _load_verified(array_path: Path, record_path: Path) -> np.ndarray | None:
        if not (array_path.is_file() and record_path.is_file()):
            return None
        try:
            record = json.loads(record_path.read_text())
            if sha256_file(array_path) != record["sha256"]:
                return None
            array = np.load(array_path, allow_pickle=False)
        except (OSError, ValueError, KeyError):
            return None
        if list(array.shape) != record["shape"]:
            return None
        return array
