"""Decoding and checking image files: every unusable file is named, a decompression bomb included."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from harness.errors import DataError
from harness.images import REFUSED_PIXELS, check_image, load_rgb


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims ``width`` x ``height`` pixels (how a decompression bomb starts)."""
    data = bytearray(png_bytes())
    header = struct.pack(">II", width, height) + bytes(data[24:29])  # IHDR: size, then depth, colour, ...
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_a_named_error(tmp_path: Path) -> None:
    bomb = write_png_claiming(tmp_path / "bomb.png", 15_000, 15_000)  # 225 Mpx
    with pytest.raises(DataError, match=r"bomb\.png.*too large to decode"):
        load_rgb([bomb])
    check = check_image(bomb)
    assert "too large to decode" in str(check.problem) and f"{REFUSED_PIXELS:,}" in str(check.problem)


def test_check_image_names_what_a_run_could_not_use(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes((4, 3)))
    text = tmp_path / "notes.png"
    text.write_text("these are notes, not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png_bytes((64, 64))[:-40])
    assert check_image(good).problem is None and check_image(good).pixels == 12
    assert "cannot decode" in str(check_image(text).problem)
    assert check_image(truncated).problem is not None
    assert "cannot read the file" in str(check_image(tmp_path / "absent.png").problem)
    assert check_image(good).sha256 == check_image(good).sha256 != check_image(text).sha256
