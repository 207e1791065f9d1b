"""``harness.file_digests.files_fingerprint``: the full-content fingerprint the HF backends (and diffusion pipelines)
identify weights by, memoised per file so that only a file's first use reads it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import file_digests
from harness.file_digests import files_fingerprint
from harness.hashing import sha256_file


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


def test_every_byte_counts(tmp_path: Path) -> None:
    data = bytearray(b"0123456789" * 300_000)  # 3 MB: a change 1.5 MB in, far from either end
    base = files_fingerprint([_write(tmp_path / "a" / "m.bin", bytes(data))], tmp_path / "memo")
    middle = bytearray(data)
    middle[len(data) // 2] = ord("x")
    assert files_fingerprint([_write(tmp_path / "m" / "m.bin", bytes(middle))], tmp_path / "memo") != base


def test_a_second_call_reads_the_memo_not_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Path] = []
    monkeypatch.setattr(file_digests, "sha256_file", lambda path: hashed.append(Path(path)) or sha256_file(path))
    files = [_write(tmp_path / "model" / "model.safetensors", b"w" * 5000), _write(tmp_path / "model" / "c.json", b"{}")]
    memo = tmp_path / "memo"
    first = files_fingerprint(files, memo)
    assert sorted(hashed) == sorted(path.resolve() for path in files)
    assert len(list((memo / "file-digests").rglob("*.json"))) == 2
    hashed.clear()
    assert files_fingerprint(files, memo) == first and hashed == []

    # A rewrite changes the mtime (and here the content at equal size): the file is hashed again.
    _write(files[0], b"v" * 5000)
    os.utime(files[0], ns=(files[0].stat().st_atime_ns, files[0].stat().st_mtime_ns + 10**9))
    assert files_fingerprint(files, memo) != first and hashed == [files[0].resolve()]


def test_a_damaged_memo_entry_is_rehashed(tmp_path: Path) -> None:
    files = [_write(tmp_path / "m.bin", b"abc")]
    first = files_fingerprint(files, tmp_path / "memo")
    (entry,) = (tmp_path / "memo" / "file-digests").rglob("*.json")
    entry.write_text("{not json")
    assert files_fingerprint(files, tmp_path / "memo") == first
    assert json.loads(entry.read_text())["sha256"] == sha256_file(files[0])


def test_the_memo_defaults_to_the_shared_cache(tmp_path: Path, isolated_cache: Path) -> None:
    files_fingerprint([_write(tmp_path / "m.bin", b"abc")])
    assert len(list((isolated_cache / "file-digests").rglob("*.json"))) == 1
