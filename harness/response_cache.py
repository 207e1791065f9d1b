"""On-disk cache of generated text (questions, answers, reformulations), shared by every run.

    cache = ResponseCache(context.cache_dir)
    keys = [cache.key(model=bot_identity, prompt=prompt, decoding={"max_new_tokens": 32, "greedy": True})
            for prompt in prompts]
    outputs = cache.get_or_compute(keys, lambda missing: generate([prompts[i] for i in missing]))

A key holds everything that changes the output: the model's identity, the full prompt (text or chat messages,
images by content hash) and the decoding parameters, seed included for sampled outputs. Entries are written
atomically; an unreadable entry counts as a miss and is regenerated. Failures (``TurnFailure``) are never cached, so
a resumed run retries them. Identical keys within one batch are computed once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.cache_fill import fill_missing
from harness.hashing import canonical_json, stable_hash
from harness.protocols import TurnFailure

Output = str | TurnFailure


class ResponseCache:
    def __init__(self, cache_dir: Path, namespace: str = "responses") -> None:
        self.root = Path(cache_dir) / namespace
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: Mapping[str, Any], prompt: Any, decoding: Mapping[str, Any]) -> str:
        return stable_hash({"model": model, "prompt": prompt, "decoding": decoding})

    def get(self, key: str) -> str | None:
        try:
            payload = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        response = payload.get("response") if isinstance(payload, dict) else None
        return response if isinstance(response, str) and payload.get("key") == key else None

    def put(self, key: str, response: str) -> None:
        atomic_write_text(self._path(key), canonical_json({"key": key, "response": response}))

    def get_or_compute(self, keys: Sequence[str], compute: Callable[[list[int]], Sequence[Output]]) -> list[Output]:
        """Cached outputs for ``keys``; ``compute(indexes)`` is called once with the positions of the distinct
        missing keys and must return one output per position, in order."""
        filled = fill_missing(keys, self.get, compute, self.put, should_store=lambda output: isinstance(output, str))
        self.hits += filled.hits
        self.misses += filled.computed
        return filled.outputs

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"
