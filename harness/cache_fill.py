"""The one rule every cache here follows when a batch asks for many keys at once.

    filled = fill_missing(keys, cache.get, compute, store=cache.put)
    filled.outputs, filled.hits, filled.computed

Look every key up; call ``compute`` ONCE with the first position of each distinct missing key (so identical
requests in a batch are computed once); store what ``should_store`` accepts (failures are not stored, so they are
retried later); return one output per key, in order, with the number of keys found and of distinct keys computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Output = TypeVar("Output")


@dataclass(frozen=True)
class Filled(Generic[Output]):
    outputs: list[Output]
    hits: int
    computed: int


def fill_missing(
    keys: Sequence[str],
    lookup: Callable[[str], Output | None],
    compute: Callable[[list[int]], Sequence[Output]],
    store: Callable[[str, Output], None],
    should_store: Callable[[Output], bool] = lambda output: True,
) -> Filled[Output]:
    found: list[Output | None] = [lookup(key) for key in keys]
    hits = sum(output is not None for output in found)
    first_missing: dict[str, int] = {}
    for index, (key, output) in enumerate(zip(keys, found)):
        if output is None and key not in first_missing:
            first_missing[key] = index
    if not first_missing:
        return Filled(found, hits, 0)  # type: ignore[arg-type]
    positions = list(first_missing.values())
    computed = list(compute(positions))
    if len(computed) != len(positions):
        raise ValueError(f"computed {len(computed)} outputs for {len(positions)} missing keys")
    by_key = dict(zip(first_missing, computed))
    for key, output in by_key.items():
        if should_store(output):
            store(key, output)
    outputs = [by_key[key] if output is None else output for key, output in zip(keys, found)]
    return Filled(outputs, hits, len(positions))
