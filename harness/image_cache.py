"""On-disk cache of generated images, content-addressed and shared by every run and retriever.

    cache = ImageCache(context.cache_dir)
    keys = [cache.key({"generator": generator_identity, "prompt": prompt, "seed": seed}) for prompt, seed in items]
    images = cache.get_or_generate(keys, lambda missing: generate([items[i] for i in missing]))

A key holds everything that changes the image (pipeline identity and fingerprint, scheduler, steps, guidance, size,
dtype, prompt, seed), never the run, the batch or the cache location, so runs over the same prompts share images.
Each entry is a PNG file written atomically and then a record beside it with the PNG's sha256 and size
(``harness.atomic.write_checked``). A PNG without its record counts as a plain miss: with several Ray actors sharing
the cache it may be an entry another actor is still finishing, so it is never deleted, only regenerated and
overwritten atomically. An entry whose record does not match (a truncated, bit-flipped or replaced PNG, a record of
another key or without a digest, a PNG of another size) is logged as damaged and regenerated the same way,
never used. Identical keys in one call are generated once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from harness.atomic import read_checked, record_path, sweep_cache_once, write_checked
from harness.cache_fill import fill_missing
from harness.hashing import stable_hash

Generate = Callable[[list[int]], Sequence[Image.Image]]


class ImageCache:
    def __init__(self, cache_dir: Path, namespace: str = "images") -> None:
        self.root = Path(cache_dir) / namespace
        sweep_cache_once(self.root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        return stable_hash(parts)

    def path(self, key: str) -> Path:
        """Where the PNG of ``key`` lives (whether or not it exists yet)."""
        return self.root / key[:2] / f"{key}.png"

    def contains(self, key: str) -> bool:
        """Whether ``key`` has a whole entry (its PNG and its record), without reading or checking it."""
        return self.path(key).is_file() and record_path(self.path(key)).is_file()

    def get(self, key: str) -> Image.Image | None:
        """The cached image, fully decoded, or None when the entry is missing or fails its checks."""
        return read_checked(self.path(key), key, _decode_png)

    def put(self, key: str, image: Image.Image) -> None:
        """Store ``image`` as PNG; the digest record is written last, so an entry without one is never trusted."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        facts = {"key": key, "width": image.width, "height": image.height, "mode": image.mode}
        write_checked(self.path(key), buffer.getvalue(), facts)

    def get_or_generate(self, keys: Sequence[str], generate: Generate) -> list[Image.Image]:
        """Cached images for ``keys``; ``generate(positions)`` is called once, with the positions of the distinct
        missing keys (the first position of each), and must return one image per position, in order. Nothing is
        called when every key is cached."""
        filled = fill_missing(keys, self.get, generate, self.put)
        self.hits += filled.hits
        self.misses += filled.computed
        return filled.outputs


def _decode_png(data: bytes, record: Mapping[str, Any]) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as stored:
            stored.load()
            image = stored.copy()
    except (SyntaxError, AttributeError, Image.DecompressionBombError) as error:
        # What PIL raises besides OSError and ValueError for bytes it cannot decode.
        raise ValueError(f"undecodable PNG: {error}") from error
    if [image.width, image.height] != [record.get("width"), record.get("height")]:
        raise ValueError(f"a {image.width}x{image.height} image where the record says otherwise")
    return image
