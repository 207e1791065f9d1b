"""Decoding image files for any component that looks at images (retrievers, answerer bots).

    images = load_rgb([root / "unlabeled2017/000000185565.jpg"])    # list of RGB PIL images
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from harness.errors import DataError

_LOAD_WORKERS = 8  # decoding releases the GIL, so a few threads keep a GPU fed from JPEG files


def load_rgb(paths: Sequence[Path]) -> list[Image.Image]:
    """Decode ``paths`` (in parallel threads, order kept) as RGB images; DataError names an unreadable file."""
    with ThreadPoolExecutor(max_workers=min(_LOAD_WORKERS, max(1, len(paths)))) as pool:
        return list(pool.map(_load_one, paths))


def require_one_image_per_prompt(prompts: Sequence[str], images: Sequence[Image.Image]) -> None:
    """What every vision generator checks first: its batch pairs prompt i with image i."""
    if len(images) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} images")


def _load_one(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(path, f"cannot read image: {error}") from None
