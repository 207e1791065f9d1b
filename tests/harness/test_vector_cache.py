"""VectorCache: round trip, one computation per distinct key, and every kind of damaged entry recomputed, never used."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from harness.vector_cache import VectorCache

DIM = 8


def _vector(value: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(value).standard_normal(dim).astype(np.float32)


class Recorder:
    """A compute callable that returns vector ``100 + position`` as each row and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, positions: list[int]) -> np.ndarray:
        self.calls.append(list(positions))
        return np.stack([_vector(100 + position) for position in positions])


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _entry(cache: VectorCache, key: str) -> tuple[Path, Path]:
    array = cache.root / key[:2] / f"{key}.npy"
    return array, array.with_suffix(".json")


def test_identical_keys_are_computed_once_and_cached_keys_never(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path)
    cache.put("k3", _vector(7))
    compute = Recorder()
    matrix = cache.get_or_compute(["k1", "k2", "k1", "k3"], compute)
    assert compute.calls == [[0, 1]]
    assert matrix.dtype == np.float32 and matrix.shape == (4, DIM)
    np.testing.assert_array_equal(matrix, np.stack([_vector(100), _vector(101), _vector(100), _vector(7)]))

    again = VectorCache(tmp_path).get_or_compute(["k1", "k2", "k1", "k3"], compute)
    assert compute.calls == [[0, 1]]
    np.testing.assert_array_equal(again, matrix)
    assert cache.get_or_compute([], compute).shape == (0, 0)


@pytest.mark.parametrize("damage", ["truncate", "bit-flip", "wrong-length", "wrong-dtype", "no-array", "bad-record",
                                    "wrong-key", "no-digest", "record-shape"])
def test_damaged_entry_is_reported_and_recomputed_over(tmp_path: Path, damage: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    cache = VectorCache(tmp_path)
    cache.put("k1", _vector(1))
    cache.put("k2", _vector(2))
    array, record = _entry(cache, "k1")
    if damage == "truncate":
        array.write_bytes(array.read_bytes()[:-5])
    elif damage == "bit-flip":  # in the last float: still a loadable array of the right shape
        data = bytearray(array.read_bytes())
        data[-2] ^= 0x01
        array.write_bytes(bytes(data))
    elif damage == "wrong-length":  # np.stack with the other rows would fail on this one
        array.write_bytes(_npy(_vector(1, DIM + 3)))
    elif damage == "wrong-dtype":
        array.write_bytes(_npy(_vector(1).astype(np.float64)))
    elif damage == "no-array":
        array.unlink()
    elif damage == "bad-record":
        record.write_bytes(b"\xff\xfe not json")
    elif damage == "wrong-key":
        record.write_text(record.read_text().replace('"k1"', '"k9"'))
    else:  # "no-digest", or a shape the bytes do not have while their digest matches
        stored = json.loads(record.read_text())
        if damage == "no-digest":
            del stored["sha256"]
        else:
            stored["shape"] = [DIM + 3]
        record.write_text(json.dumps(stored))
    with caplog.at_level(logging.WARNING, logger="harness.atomic"):
        assert cache.get("k1") is None
    assert f"damaged cache entry {record}" in caplog.text

    compute = Recorder()
    matrix = cache.get_or_compute(["k1", "k2"], compute)
    assert compute.calls == [[0]]
    np.testing.assert_array_equal(matrix, np.stack([_vector(100), _vector(2)]))
    np.testing.assert_array_equal(cache.get("k1"), _vector(100))  # overwritten with a whole entry
    cache.get_or_compute(["k1", "k2"], compute)
    assert compute.calls == [[0]]


def test_array_without_record_is_a_plain_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An entry stored before records were (or one whose writer has not finished) is recomputed, not reported."""
    cache = VectorCache(tmp_path)
    array, record = _entry(cache, "k1")
    array.parent.mkdir(parents=True)
    array.write_bytes(_npy(_vector(1)))
    compute = Recorder()
    with caplog.at_level(logging.WARNING, logger="harness.atomic"):
        matrix = cache.get_or_compute(["k1"], compute)
    assert caplog.text == "" and compute.calls == [[0]]
    np.testing.assert_array_equal(matrix[0], _vector(100))
    assert record.is_file()
    np.testing.assert_array_equal(cache.get("k1"), _vector(100))


def test_only_vectors_are_stored(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1-D vectors"):
        VectorCache(tmp_path).put("k1", np.zeros((2, DIM)))
