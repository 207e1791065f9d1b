"""On-disk cache of generated text (questions, answers, reformulations), shared by every run.

    cache = ResponseCache(context.cache_dir)
    keys = [cache.key(model=bot_identity, prompt=prompt, decoding={"max_new_tokens": 32, "greedy": True})
            for prompt in prompts]
    outputs = cache.get_or_compute(keys, lambda missing: generate([prompts[i] for i in missing]))

A key holds everything that changes the output: the model's identity, the full prompt (text or chat messages,
images by content hash) and the decoding parameters, seed included for sampled outputs. Each entry is one JSON file,
written atomically, holding the key, the response and the response's sha256 (so one write stores the entry and its
check together). An entry that is unreadable, of another key, without a response or whose response does not match
its digest is logged as damaged, counts as a miss and is regenerated and overwritten, never used; that includes
every entry stored before digests were. Failures (``TurnFailure``) are never cached, so a resumed run retries them.
Identical keys within one batch are computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text, digest_facts, read_record, sweep_cache_once, verify_digest
from harness.cache_fill import fill_missing
from harness.hashing import canonical_json, stable_hash
from harness.protocols import TurnFailure

Output = str | TurnFailure


class ResponseCache:
    def __init__(self, cache_dir: Path, namespace: str = "responses") -> None:
        self.root = Path(cache_dir) / namespace
        sweep_cache_once(self.root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: Mapping[str, Any], prompt: Any, decoding: Mapping[str, Any]) -> str:
        return stable_hash({"model": model, "prompt": prompt, "decoding": decoding})

    def get(self, key: str) -> str | None:
        """The cached response, or None when the entry is missing or fails its checks."""
        return read_record(self._path(key), key, _verified_response)

    def put(self, key: str, response: str) -> None:
        entry = {"key": key, "response": response, **digest_facts(response.encode("utf-8"))}
        atomic_write_text(self._path(key), canonical_json(entry))

    def get_or_compute(self, keys: Sequence[str], compute: Callable[[list[int]], Sequence[Output]]) -> list[Output]:
        """Cached outputs for ``keys``; ``compute(indexes)`` is called once with the positions of the distinct
        missing keys and must return one output per position, in order."""
        filled = fill_missing(keys, self.get, compute, self.put, should_store=lambda output: isinstance(output, str))
        self.hits += filled.hits
        self.misses += filled.computed
        return filled.outputs

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"


def _verified_response(entry: Mapping[str, Any]) -> str:
    response = entry.get("response")
    if isinstance(response, str):
        verify_digest(response.encode("utf-8"), entry, "the response")
        return response
    raise ValueError("the entry holds no response text")  # damage in the file, not a caller's wrong type
