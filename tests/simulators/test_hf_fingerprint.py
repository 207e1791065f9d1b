"""``harness.hashing.files_fingerprint``: the sampled content fingerprint the HF backends identify weights by."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hashing import files_fingerprint


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_same_files_elsewhere_and_in_any_order_agree(tmp_path: Path) -> None:
    first = [_write(tmp_path / "a" / "model.safetensors", b"w" * 100), _write(tmp_path / "a" / "config.json", b"{}")]
    second = [_write(tmp_path / "b" / "config.json", b"{}"), _write(tmp_path / "b" / "model.safetensors", b"w" * 100)]
    assert files_fingerprint(first) == files_fingerprint(second) == files_fingerprint(first[::-1])
    assert len(files_fingerprint(first)) == 64


def test_name_size_and_small_file_content_count(tmp_path: Path) -> None:
    base = files_fingerprint([_write(tmp_path / "x" / "model.bin", b"abcdef")])
    assert files_fingerprint([_write(tmp_path / "y" / "other.bin", b"abcdef")]) != base
    assert files_fingerprint([_write(tmp_path / "z" / "model.bin", b"abcdefg")]) != base
    assert files_fingerprint([_write(tmp_path / "w" / "model.bin", b"abXdef")]) != base  # whole file read
    assert files_fingerprint([]) != base


def test_large_files_are_sampled_at_both_ends(tmp_path: Path) -> None:
    data = bytearray(b"0123456789" * 100)  # 1,000 bytes, sampled 100 at each end
    base = files_fingerprint([_write(tmp_path / "a" / "m.bin", bytes(data))], sample_bytes=100)
    head, tail, middle = bytearray(data), bytearray(data), bytearray(data)
    head[5], tail[-5], middle[500] = ord("x"), ord("x"), ord("x")
    assert files_fingerprint([_write(tmp_path / "h" / "m.bin", bytes(head))], sample_bytes=100) != base
    assert files_fingerprint([_write(tmp_path / "t" / "m.bin", bytes(tail))], sample_bytes=100) != base
    # The documented limit of a fingerprint: a change in the unread middle at equal size goes unseen.
    assert files_fingerprint([_write(tmp_path / "m" / "m.bin", bytes(middle))], sample_bytes=100) == base


def test_bad_sample_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        files_fingerprint([_write(tmp_path / "m.bin", b"x")], sample_bytes=0)
