"""ImageCache: round trip, one generation per distinct key, damaged entries detected and regenerated, half-written
entries left alone, atomic writes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.image_cache import ImageCache


def _image(value: int, size: tuple[int, int] = (12, 8)) -> Image.Image:
    rng = np.random.default_rng(value)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def _files(root: Path) -> list[str]:
    return sorted(path.name for path in root.rglob("*") if path.is_file()) if root.exists() else []


class Recorder:
    """A generate callable that draws image ``100 + position`` and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, positions: list[int]) -> list[Image.Image]:
        self.calls.append(list(positions))
        return [_image(100 + position) for position in positions]


def test_key_is_stable_and_order_free() -> None:
    assert ImageCache.key({"prompt": "a dog", "seed": 1}) == ImageCache.key({"seed": 1, "prompt": "a dog"})
    assert ImageCache.key({"prompt": "a dog", "seed": 1}) != ImageCache.key({"prompt": "a dog", "seed": 2})


def test_put_then_get_returns_the_same_pixels(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    key = cache.key({"prompt": "a dog", "seed": 1})
    assert cache.get(key) is None
    cache.put(key, _image(1))
    stored = cache.get(key)
    assert stored is not None and stored.size == (12, 8)
    np.testing.assert_array_equal(_pixels(stored), _pixels(_image(1)))
    assert cache.path(key).is_file() and cache.path(key).parent.parent == tmp_path / "images"


def test_identical_keys_are_generated_once_and_cached_keys_never(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    keys = [cache.key({"prompt": prompt}) for prompt in ("a", "b", "a", "c", "b")]
    cache.put(keys[3], _image(7))
    generate = Recorder()
    images = cache.get_or_generate(keys, generate)
    assert generate.calls == [[0, 1]]  # the first position of "a" and of "b"; "c" was cached
    assert (cache.hits, cache.misses) == (1, 2)
    np.testing.assert_array_equal(_pixels(images[2]), _pixels(images[0]))
    np.testing.assert_array_equal(_pixels(images[4]), _pixels(images[1]))
    np.testing.assert_array_equal(_pixels(images[3]), _pixels(_image(7)))

    again = cache.get_or_generate(keys, generate)
    assert generate.calls == [[0, 1]]  # nothing generated the second time
    assert (cache.hits, cache.misses) == (6, 2)
    for first, second in zip(images, again):
        np.testing.assert_array_equal(_pixels(first), _pixels(second))


def test_generate_must_return_one_image_per_position(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    with pytest.raises(ValueError, match="computed 1 outputs for 2 missing keys"):
        cache.get_or_generate(["k1", "k2"], lambda positions: [_image(0)])
    assert _files(cache.root) == []


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bit-flip", "other-image", "no-png", "bad-record",
                                    "wrong-key", "no-digest", "wrong-size"])
def test_damaged_entry_is_reported_and_regenerated_over(tmp_path: Path, damage: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    cache = ImageCache(tmp_path)
    key = cache.key({"prompt": "a dog"})
    cache.put(key, _image(1))
    png, record = cache.path(key), cache.path(key).with_suffix(".json")
    if damage == "truncate":
        png.write_bytes(png.read_bytes()[:40])
    elif damage == "garbage":
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    elif damage == "bit-flip":  # in the pixel data: still a PNG of the right size, but not the one recorded
        _flip_byte(png, len(png.read_bytes()) // 2)
    elif damage == "other-image":  # a valid PNG, but not the one recorded
        _image(2).save(png, format="PNG")
    elif damage == "no-png":
        png.unlink()
    elif damage == "bad-record":
        record.write_text("{not json")
    elif damage == "wrong-key":
        record.write_text(record.read_text().replace(key, "0" * 64))
    elif damage == "no-digest":
        stored = json.loads(record.read_text())
        del stored["sha256"]
        record.write_text(json.dumps(stored))
    else:  # a record that agrees with the bytes but not with the image they hold
        record.write_text(record.read_text().replace('"width": 12', '"width": 13'))
    with caplog.at_level(logging.WARNING, logger="harness.atomic"):
        assert cache.get(key) is None
    assert f"damaged cache entry {record}" in caplog.text

    generate = Recorder()
    images = cache.get_or_generate([key], generate)
    assert generate.calls == [[0]]
    np.testing.assert_array_equal(_pixels(images[0]), _pixels(_image(100)))
    np.testing.assert_array_equal(_pixels(cache.get(key)), _pixels(_image(100)))  # overwritten with a whole entry
    assert cache.get_or_generate([key], generate) and generate.calls == [[0]]


def test_png_without_record_is_a_plain_miss_that_deletes_nothing(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Two Ray actors share the cache: actor A has written its PNG but not yet its record when B looks the key up."""
    cache = ImageCache(tmp_path)
    key = cache.key({"prompt": "a dog"})
    cache.put(key, _image(1))
    png, record = cache.path(key), cache.path(key).with_suffix(".json")
    record_text = record.read_text()
    assert cache.contains(key)
    record.unlink()  # A is between its two writes
    assert not cache.contains(key)  # `harness dar generate` counts it as still to draw

    with caplog.at_level(logging.WARNING, logger="harness.atomic"):
        assert cache.get(key) is None  # B: a miss
    assert caplog.text == "" and png.is_file()  # not damage, and A's PNG is left alone
    record.write_text(record_text)  # A finishes
    np.testing.assert_array_equal(_pixels(cache.get(key)), _pixels(_image(1)))

    record.unlink()  # the same, but now B regenerates the entry before A finishes
    generate = Recorder()
    images = cache.get_or_generate([key], generate)
    assert generate.calls == [[0]]
    np.testing.assert_array_equal(_pixels(images[0]), _pixels(_image(100)))
    np.testing.assert_array_equal(_pixels(cache.get(key)), _pixels(_image(100)))
    assert not [path for path in png.parent.iterdir() if path.name.endswith(".tmp")]


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ImageCache(tmp_path)
    key = cache.key({"prompt": "a dog"})

    def failing_fsync(descriptor: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        cache.put(key, _image(1))
    assert _files(cache.root) == []  # neither the PNG nor a temporary file
    monkeypatch.undo()
    assert cache.get(key) is None


def test_failed_generation_caches_nothing(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)

    def broken(positions: list[int]) -> list[Image.Image]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cache.get_or_generate(["k1", "k2"], broken)
    assert _files(cache.root) == []
