"""Decoding image files for any component that looks at images (retrievers, answerer bots), and checking them.

    images = load_rgb([root / "unlabeled2017/000000185565.jpg"])    # list of RGB PIL images
    check_image(root / "unlabeled2017/000000185565.jpg").problem    # None, or why a run could not use it

An image of more than ``REFUSED_PIXELS`` (twice PIL's ``MAX_IMAGE_PIXELS``: 179 Mpx) is refused by name, as PIL
refuses it (a decompression bomb would otherwise take the memory of the machine); one above ``MAX_IMAGE_PIXELS``
decodes, and validation warns of it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from harness.errors import DataError

_LOAD_WORKERS = 8  # decoding releases the GIL, so a few threads keep a GPU fed from JPEG files
LARGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # PIL warns above this many pixels
REFUSED_PIXELS = 2 * LARGE_PIXELS  # and refuses above this many


@dataclass(frozen=True)
class ImageCheck:
    """What decoding one file showed: why a run could not use it (None when it decodes), its size in pixels (0 when
    unknown) and the sha256 of its bytes (for finding one image under two paths)."""

    problem: str | None
    pixels: int
    sha256: str


def load_rgb(paths: Sequence[Path]) -> list[Image.Image]:
    """Decode ``paths`` (in parallel threads, order kept) as RGB images; DataError names an unreadable file."""
    with ThreadPoolExecutor(max_workers=min(_LOAD_WORKERS, max(1, len(paths)))) as pool:
        return list(pool.map(_load_one, paths))


def require_one_image_per_prompt(prompts: Sequence[str], images: Sequence[Image.Image]) -> None:
    """What every vision generator checks first: its batch pairs prompt i with image i."""
    if len(images) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} images")


def check_image(path: Path) -> ImageCheck:
    """Decode ``path`` completely (a truncated file fails only at its end) as a run would; never raises for the
    file's content."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return ImageCheck(f"cannot read the file: {error.strerror or error}", 0, "")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = image.width * image.height
            image.convert("RGB")
    except Image.DecompressionBombError as error:
        return ImageCheck(_oversized(error), 0, digest)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        return ImageCheck(f"cannot decode the image: {error}", 0, digest)
    return ImageCheck(None, pixels, digest)


def _load_one(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Image.DecompressionBombError as error:
        raise DataError(path, _oversized(error)) from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(path, f"cannot read image: {error}") from None


def _oversized(error: Exception) -> str:
    return (f"is refused as too large to decode ({error}); resize it below {REFUSED_PIXELS:,} pixels "
            "(`harness data validate --image-root` lists every such image)")
