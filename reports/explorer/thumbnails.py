"""Small JPEGs of the images an explorer page shows, written into the explorer's folder (so it opens from disk, fast,
with the original images elsewhere or gone).

    thumbnails = Thumbnails(out, benchmark.search_space, image_sources)
    thumbnails.search_image(position=1532, size=TARGET_SIZE)   # "thumbs/3f0c....jpg", or None (with the reason kept)
    thumbnails.generated_image("dar-flan", key)

Search-space images are read through the search space's own ``resolve`` (so a path that escapes the image root
through ".." or a symbolic link is refused, as a run refuses it); generated images by their trace key, from the image
cache (a 64-hex key) or from the run's ``--dar-images`` folder (a file name that must stay inside it). Every image
that could not be shown is counted by reason, never an error: a page shows a labelled placeholder instead.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from harness.atomic import atomic_write_bytes
from harness.errors import DataError
from harness.image_cache import ImageCache
from harness.types import SearchSpace

TARGET_SIZE = 256
SMALL_SIZE = 128
FOLDER = "thumbs"
_CACHE_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class GeneratedImages:
    """Where a run's generated images are: its image cache, or its pre-generated folder."""

    cache_dir: Path | None
    pregenerated: Path | None

    def path(self, key: str) -> Path | None:
        if self.pregenerated is not None:
            candidate = (self.pregenerated / key).resolve()
            return candidate if self.pregenerated.resolve() in candidate.parents else None
        if self.cache_dir is not None and _CACHE_KEY.fullmatch(key):
            return ImageCache(self.cache_dir).path(key)
        return None


class Thumbnails:
    def __init__(self, out: Path, search_space: SearchSpace, generated: Mapping[str, GeneratedImages]) -> None:
        self.folder = Path(out) / FOLDER
        self.search_space = search_space
        self.generated = generated
        self.missing: Counter[str] = Counter()
        self.written = 0
        self._done: dict[tuple[str, int], str | None] = {}

    def search_image(self, position: int, size: int = SMALL_SIZE) -> str | None:
        """The thumbnail of search-space image ``position`` (relative to the explorer folder), or None."""
        path = self.search_space.paths[position]
        if self.search_space.image_root is None:
            self.missing["no image root (pass --image-root)"] += 1
            return None
        try:
            source = self.search_space.resolve(path)
        except DataError:
            self.missing["outside the image root"] += 1
            return None
        return self._thumbnail(source, size)

    def generated_image(self, system: str, key: str, size: int = SMALL_SIZE) -> str | None:
        images = self.generated.get(system)
        source = images.path(key) if images is not None else None
        if source is None:
            self.missing["generated image not located (its cache or folder)"] += 1
            return None
        return self._thumbnail(source, size)

    def _thumbnail(self, source: Path, size: int) -> str | None:
        if (str(source), size) in self._done:
            return self._done[(str(source), size)]
        name = hashlib.sha256(f"{source.resolve()}|{size}".encode()).hexdigest()[:24] + ".jpg"
        target = self.folder / name
        relative: str | None = f"{FOLDER}/{name}"
        if not target.is_file():
            try:
                with Image.open(source) as image:
                    image.draft("RGB", (size, size))  # a JPEG decodes at a fraction of its size: much faster
                    small = image.convert("RGB")
                small.thumbnail((size, size))
                self.folder.mkdir(parents=True, exist_ok=True)
                buffer = BytesIO()
                small.save(buffer, format="JPEG", quality=82)
                atomic_write_bytes(target, buffer.getvalue())
                self.written += 1
            except FileNotFoundError:
                self.missing["file not found"] += 1
                relative = None
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
                self.missing["not a readable image"] += 1
                relative = None
        self._done[(str(source), size)] = relative
        return relative
