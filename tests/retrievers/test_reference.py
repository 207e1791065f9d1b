"""The oracle retriever refuses ranks it would otherwise have to clamp or round, naming the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError, DataError
from harness.protocols import RunContext
from harness.types import Dialogue, DialogueState, SearchSpace
from retrievers.reference import build_oracle

SPACE = SearchSpace(tuple(f"{index}.png" for index in range(50)), None)


def _oracle_file(tmp_path: Path, ranks: object, line: int = 2) -> Path:
    path = tmp_path / "ranks.jsonl"
    records = [{"dialogue_id": str(index), "ranks": [3, 2, 1]} for index in range(line - 1)]
    records.append({"dialogue_id": "x", "ranks": ranks})
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.mark.parametrize(("ranks", "message"), [
    ([3, -1, 0], "rank -1 of round 1 is outside the search space"),
    ([3, 1.5, 0], "rank 1.5 of round 1 is not an integer"),
    ([3, True, 0], "rank True of round 1 is not an integer"),
    ("3,2,1", "ranks must be a list of integers"),
])
def test_a_rank_file_with_a_rank_no_search_space_holds_is_refused(tmp_path, ranks, message):
    path = _oracle_file(tmp_path, ranks, line=3)
    with pytest.raises(DataError, match=message) as error:
        build_oracle(rank_file=str(path))
    assert str(error.value).startswith(f"{path}, field 'ranks': line 3: ")


def test_a_rank_beyond_the_search_space_is_refused_when_its_size_is_known(tmp_path):
    path = _oracle_file(tmp_path, [3, 60000, 49], line=2)
    oracle = build_oracle(rank_file=str(path))
    with pytest.raises(DataError, match=r"line 2: rank 60000 of round 1 is outside the search space \(0..49\)"):
        oracle.prepare(SPACE, RunContext(device="cpu", cache_dir=tmp_path))


def test_a_rule_outside_the_search_space_is_refused_not_clamped(tmp_path):
    oracle = build_oracle(rule="60 - round")
    oracle.prepare(SPACE, RunContext(device="cpu", cache_dir=tmp_path))
    dialogue = Dialogue("7", "0.png", ("caption",))
    with pytest.raises(ConfigError, match="gives rank 60 at round 0"):
        oracle.rank([DialogueState.at_round(dialogue, 0, 0)])
