"""What a run spent: model and API calls, prompt and completion tokens, cache hits, images drawn, and wall time
per stage; and the limits (``--max-api-calls``, ``--max-total-tokens``) that stop a run once it has spent them.

    counter = UsageCounter()                                       # one per generator, shared by its redraw copies
    counter.add(api_calls=1, prompt_tokens=31, completion_tokens=7)
    usage_of(questioner)                                           # {"api_calls": 1, ..., "cache_hits": 4}
    Budget(max_api_calls=1000).exceeded({"api_calls": 1000})       # "1,000 API calls reached --max-api-calls 1,000"

Generators count what they send: an OpenAI-compatible back-end its requests (every attempt, retries included) and
the server's ``usage`` of each reply; a local model its generated prompts and the tokenizer's count of their input
and output tokens. Bots and retrievers add their cache hits. A component reports through ``usage()``; one without it
counts nothing. The limits are counted by the driver over this invocation and are not part of a run's identity.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError, HarnessError

TOKEN_FIELDS = ("prompt_tokens", "completion_tokens")


class UsageCounter:
    """Thread-safe counts (the OpenAI back-end sends requests from a thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, **amounts: int) -> None:
        with self._lock:
            self._counts.update({name: int(value) for name, value in amounts.items() if value})

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def usage_of(component: Any) -> dict[str, Any]:
    """``component.usage()`` where it has one, else nothing."""
    usage = getattr(component, "usage", None)
    return dict(usage()) if callable(usage) else {}


def combine(first: Mapping[str, Any], second: Mapping[str, Any], sign: int = 1) -> dict[str, Any]:
    """``first + sign * second``, field by field, through nested mappings (components, stages)."""
    combined: dict[str, Any] = dict(first)
    for name, value in second.items():
        if isinstance(value, Mapping):
            combined[name] = combine(combined.get(name, {}), value, sign)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            combined[name] = combined.get(name, 0) + sign * value
    return combined


def totals(usage: Mapping[str, Any]) -> dict[str, float]:
    """Every counted field summed over the (nested) components of ``usage``; seconds are time, not spending."""
    summed: Counter[str] = Counter()
    for name, value in usage.items():
        if name == "seconds":
            continue
        if isinstance(value, Mapping):
            summed.update(totals(value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and name != "seconds":
            summed[name] += value
    return dict(summed)


class BudgetReached(HarnessError):
    """A run spent what ``--max-api-calls`` or ``--max-total-tokens`` allow: the driver stores what finished.
    ``usage`` is what the chunk that stopped had spent, so the invocation's costs still count it."""

    def __init__(self, reason: str, usage: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.usage = dict(usage or {})

    def __reduce__(self) -> tuple[Any, ...]:  # keeps ``usage`` across a Ray worker's pickling
        return BudgetReached, (str(self), self.usage)


@dataclass
class Budget:
    max_api_calls: int | None = None
    max_total_tokens: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("--max-api-calls", self.max_api_calls), ("--max-total-tokens", self.max_total_tokens)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")

    @property
    def limited(self) -> bool:
        return self.max_api_calls is not None or self.max_total_tokens is not None

    def exceeded(self, spent: Mapping[str, float]) -> str | None:
        """Why no new request may be issued after ``spent`` (summed counts), or None."""
        calls = int(spent.get("api_calls", 0))
        tokens = int(sum(spent.get(name, 0) for name in TOKEN_FIELDS))
        if self.max_api_calls is not None and calls >= self.max_api_calls:
            return f"{calls:,} API calls reached --max-api-calls {self.max_api_calls:,}"
        if self.max_total_tokens is not None and tokens >= self.max_total_tokens:
            return f"{tokens:,} tokens reached --max-total-tokens {self.max_total_tokens:,}"
        return None


COST_FIELDS = ("api_calls", "model_calls", "prompt_tokens", "completion_tokens", "cache_hits", "images_generated",
               "image_cache_hits")


def summed_costs(entries: list[Mapping[str, Any]]) -> dict[str, float]:
    """A run's costs.jsonl lines summed: invocations, wall seconds, each counted field and each stage's seconds."""
    summed: Counter[str] = Counter({"invocations": len(entries)})
    for entry in entries:
        summed["wall_seconds"] += float(entry.get("wall_seconds", 0))
        summed.update({name: value for name, value in dict(entry.get("totals", {})).items()
                       if isinstance(value, int | float)})
        summed.update({f"{stage}_seconds": float(value) for stage, value in dict(entry.get("stage_seconds", {})).items()})
    return dict(summed)


def format_costs(summed: Mapping[str, float]) -> str:
    """One line of what a run spent, for ``harness run`` and ``harness metrics``."""
    counts = ", ".join(f"{int(summed[name]):,} {name.replace('_', ' ')}" for name in COST_FIELDS if summed.get(name))
    stages = ", ".join(f"{name.removesuffix('_seconds')} {value:.1f} s" for name, value in summed.items()
                       if name.endswith("_seconds") and name != "wall_seconds")
    invocations = int(summed.get("invocations", 0))
    return (f"spent ({invocations} invocation{'s' if invocations != 1 else ''}, {summed.get('wall_seconds', 0):.1f} s): "
            f"{counts or 'no model or API call'}" + (f"; {stages}" if stages else ""))
