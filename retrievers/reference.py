"""The reference retrievers: exactly known output (oracle) and chance (random), for lower and upper bounds, tests and
checking an install in seconds.

    harness run --retriever oracle --benchmark visdial-val --data-dir DATA --out runs/oracle
    harness run --retriever oracle --retriever-arg rule="max(0, 20 - 3*round)" ...
    harness run --retriever oracle --retriever-arg rank_file=runs/chatir/ranks.jsonl ...   # replays a run's ranks
    harness run --retriever random --retriever-arg seed=3 ...

They never look at images or text, so they need no ``--image-root`` and no model.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, DataError
from harness.hashing import derive_seed
from harness.protocols import RunContext
from harness.types import DialogueState, RankBatch, SearchSpace, parse_ranks

_ALLOWED_CALLS = {"max": max, "min": min, "abs": abs}
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
    ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd,
)


class RankRule:
    """An integer expression in ``round`` (and ``index``, the dialogue's position in the benchmark), e.g.
    ``max(0, 20 - 3*round)``. Only + - * // %, integers and max/min/abs are allowed."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as error:
            raise ConfigError(f"oracle rule {text!r} is not an expression: {error.msg}") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ConfigError(f"oracle rule {text!r} uses {type(node).__name__}, which is not allowed")
            if isinstance(node, ast.Name) and node.id not in {"round", "index", *_ALLOWED_CALLS}:
                raise ConfigError(f"oracle rule {text!r} names {node.id!r}; only round and index are defined")
            if isinstance(node, ast.Constant) and not isinstance(node.value, int):
                raise ConfigError(f"oracle rule {text!r} holds {node.value!r}; only integers are allowed")
        self._code = compile(tree, "<oracle rule>", "eval")

    def __call__(self, round_: int, index: int) -> int:
        return int(eval(self._code, {"__builtins__": {}}, {**_ALLOWED_CALLS, "round": round_, "index": index}))


class OracleRetriever:
    """Places each target at the rank a rule or a rank file says; a rank outside the search space (or not an
    integer) is an error naming the rule, or the file, line and field, never clamped."""

    def __init__(self, rule: RankRule | None, rank_file: Path | None) -> None:
        self.rule = rule
        self.rank_file = rank_file
        self._file_ranks, self._lines = _read_rank_file(rank_file) if rank_file is not None else ({}, {})
        self._size = 0

    def identity(self) -> Mapping[str, Any]:
        return {"name": "oracle", "rule": self.rule.text if self.rule else None, "rank_file": str(self.rank_file)}

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        self._size = len(search_space)
        for dialogue_id, ranks in self._file_ranks.items():
            try:
                parse_ranks(list(ranks), self._size)
            except (TypeError, ValueError) as error:
                raise DataError(self.rank_file, f"line {self._lines[dialogue_id]}: {error} of "
                                f"{self._size} images", field="ranks") from None

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        ranks = []
        for state in states:
            if self.rule is not None:
                rank = self.rule(state.round, _index_of(state.dialogue_id))
                if not 0 <= rank < self._size:
                    raise ConfigError(f"oracle rule {self.rule.text!r} gives rank {rank} at round {state.round} "
                                      f"(dialogue {state.dialogue_id}), outside the search space of {self._size}")
            else:
                rank = self._from_file(state)
            ranks.append(rank)
        return RankBatch(ranks=tuple(ranks))

    def _from_file(self, state: DialogueState) -> int:
        try:
            dialogue_ranks = self._file_ranks[state.dialogue_id]
        except KeyError:
            raise DataError(self.rank_file, f"no ranks for dialogue {state.dialogue_id!r}") from None
        if state.round >= len(dialogue_ranks):
            raise DataError(self.rank_file, f"dialogue {state.dialogue_id!r} has no rank for round {state.round}")
        return dialogue_ranks[state.round]


class RandomRetriever:
    """A uniformly random rank per (dialogue, round), from its own ``seed`` and the run's ``--seed``, so that batch
    order and resume do not matter and another run seed gives other ranks."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._run_seed = 0
        self._size = 0

    def identity(self) -> Mapping[str, Any]:
        return {"name": "random", "seed": self.seed}

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        self._size = len(search_space)
        self._run_seed = context.seed

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        return RankBatch(
            ranks=tuple(
                int(np.random.default_rng(derive_seed(self.seed, self._run_seed, state.dialogue_id, state.round))
                    .integers(self._size))
                for state in states
            )
        )


def build_oracle(rule: str | None = "max(0, 20 - 3*round)", rank_file: str | None = None) -> OracleRetriever:
    if rank_file is not None:
        return OracleRetriever(rule=None, rank_file=Path(rank_file))
    if rule is None:
        raise ConfigError("the oracle retriever needs a rule or a rank_file")
    return OracleRetriever(rule=RankRule(rule), rank_file=None)


def build_random(seed: int = 0) -> RandomRetriever:
    return RandomRetriever(seed=int(seed))


def _index_of(dialogue_id: str) -> int:
    return int(dialogue_id) if dialogue_id.isdigit() else 0


def _read_rank_file(path: Path) -> tuple[dict[str, list[int]], dict[str, int]]:
    """A JSON-lines file of ``{"dialogue_id": ..., "ranks": [...]}`` (a run's ``ranks.jsonl`` qualifies): the ranks
    by dialogue id (the last line of an id wins, as in a run directory), and the line each came from."""
    ranks: dict[str, list[int]] = {}
    lines_of: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"cannot read rank file {path}: {error.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
            dialogue_id = str(payload["dialogue_id"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(path, f"line {number} is not a rank record ({error})") from None
        try:
            ranks[dialogue_id] = list(parse_ranks(payload.get("ranks")))
        except (TypeError, ValueError) as error:
            raise DataError(path, f"line {number}: {error}", field="ranks") from None
        lines_of[dialogue_id] = number
    return ranks, lines_of
