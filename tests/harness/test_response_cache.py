"""ResponseCache: one computation per distinct key, failures never stored, damaged entries recomputed, never used."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from harness.protocols import TurnFailure
from harness.response_cache import Output, ResponseCache


class Recorder:
    """A compute callable that answers ``answer <position>`` and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, positions: list[int]) -> list[Output]:
        self.calls.append(list(positions))
        return [f"answer {position}" for position in positions]


def _key(prompt: str) -> str:
    return ResponseCache.key(model={"name": "tiny"}, prompt=prompt, decoding={"greedy": True})


def _entry(cache: ResponseCache, key: str) -> Path:
    return cache.root / key[:2] / f"{key}.json"


def test_identical_keys_are_computed_once_and_failures_are_retried(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    keys = [_key("a"), _key("b"), _key("a")]
    failure = TurnFailure("timeout")

    def compute(positions: list[int]) -> list[Output]:
        return ["is it a dog?", failure][: len(positions)]

    assert cache.get_or_compute(keys, compute) == ["is it a dog?", failure, "is it a dog?"]
    assert cache.get(keys[0]) == "is it a dog?" and cache.get(keys[1]) is None
    recorder = Recorder()
    assert ResponseCache(tmp_path).get_or_compute(keys, recorder) == ["is it a dog?", "answer 1", "is it a dog?"]
    assert recorder.calls == [[1]]


@pytest.mark.parametrize("damage", ["truncate", "bit-flip", "not-json", "wrong-key", "no-response", "no-digest"])
def test_damaged_entry_is_reported_and_recomputed_over(tmp_path: Path, damage: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache(tmp_path)
    key = _key("a")
    cache.put(key, "a brown dog")
    entry = _entry(cache, key)
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:-7])
    elif damage == "bit-flip":  # "a brown dog" -> "a brown doe": still valid JSON of the right key
        entry.write_text(entry.read_text().replace("a brown dog", "a brown doe"))
    elif damage == "not-json":
        entry.write_bytes(b"\xff\xfe")
    else:
        stored = json.loads(entry.read_text())
        if damage == "wrong-key":
            stored["key"] = _key("b")
        else:  # an entry written before digests were ("no-digest") or one without its text
            del stored["sha256" if damage == "no-digest" else "response"]
        entry.write_text(json.dumps(stored))
    with caplog.at_level(logging.WARNING, logger="harness.atomic"):
        assert cache.get(key) is None
    assert f"damaged cache entry {entry}" in caplog.text

    recorder = Recorder()
    assert cache.get_or_compute([key], recorder) == ["answer 0"]
    assert recorder.calls == [[0]]
    assert cache.get(key) == "answer 0"  # overwritten with a whole entry
    assert cache.get_or_compute([key], recorder) == ["answer 0"] and recorder.calls == [[0]]
