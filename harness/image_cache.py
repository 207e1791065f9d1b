"""On-disk cache of generated images, content-addressed and shared by every run and retriever.

    cache = ImageCache(context.cache_dir)
    keys = [cache.key({"generator": generator_identity, "prompt": prompt, "seed": seed}) for prompt, seed in items]
    images = cache.get_or_generate(keys, lambda missing: generate([items[i] for i in missing]))

A key holds everything that changes the image (pipeline identity and fingerprint, scheduler, steps, guidance, size,
dtype, prompt, seed), never the run, the batch or the cache location, so runs over the same prompts share images.
Each entry is a PNG file written atomically and then a record beside it with the PNG's sha256; an entry whose
record is missing, whose bytes do not match the digest (a truncated or overwritten file) or that PIL cannot decode
is deleted and counts as a miss, so it is regenerated, never used. Identical keys in one call are generated once.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from harness.atomic import atomic_write_bytes, atomic_write_text
from harness.cache_fill import fill_missing
from harness.hashing import stable_hash

Generate = Callable[[list[int]], Sequence[Image.Image]]


class ImageCache:
    def __init__(self, cache_dir: Path, namespace: str = "images") -> None:
        self.root = Path(cache_dir) / namespace
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        return stable_hash(parts)

    def path(self, key: str) -> Path:
        """Where the PNG of ``key`` lives (whether or not it exists yet)."""
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> Image.Image | None:
        """The cached image, fully decoded, or None when the entry is missing or fails its checks (then deleted)."""
        image_path, record_path = self.path(key), self._record_path(key)
        if not image_path.is_file() and not record_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            data = image_path.read_bytes()
            if record.get("key") != key or hashlib.sha256(data).hexdigest() != record.get("sha256"):
                raise ValueError("digest mismatch")
            with Image.open(io.BytesIO(data)) as stored:
                stored.load()
                image = stored.copy()
        except (OSError, ValueError, SyntaxError, AttributeError, Image.DecompressionBombError):
            # Half an entry (a crash between the two writes) or a damaged one: drop it so it is regenerated.
            self.discard(key)
            return None
        return image

    def put(self, key: str, image: Image.Image) -> None:
        """Store ``image`` as PNG; the digest record is written last, so an entry without one is never trusted."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        atomic_write_bytes(self.path(key), data)
        record = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                  "width": image.width, "height": image.height, "mode": image.mode}
        atomic_write_text(self._record_path(key), json.dumps(record, sort_keys=True))

    def discard(self, key: str) -> None:
        self._record_path(key).unlink(missing_ok=True)
        self.path(key).unlink(missing_ok=True)

    def get_or_generate(self, keys: Sequence[str], generate: Generate) -> list[Image.Image]:
        """Cached images for ``keys``; ``generate(positions)`` is called once, with the positions of the distinct
        missing keys (the first position of each), and must return one image per position, in order. Nothing is
        called when every key is cached."""
        filled = fill_missing(keys, self.get, generate, self.put)
        self.hits += filled.hits
        self.misses += filled.computed
        return filled.outputs

    def _record_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"
