"""Runs under the stable tie rule: a query that cannot be ranked fails its dialogue (never a hit), tied targets are
counted per round in ranks.jsonl, metrics.json and `harness metrics`, and a run stored under another tie rule is
refused on resume."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from click.testing import CliRunner

from harness.cli import main
from harness.protocols import RunContext
from harness.ranking import rank_targets
from harness.registry import REGISTRY
from harness.types import DialogueState, RankBatch, SearchSpace


class IntegerRetriever:
    """Ranks with the harness's ranking: images are random +-1 vectors (integer scores, ties everywhere), each query
    another image's vector; dialogue "1" has a zero query from round 2 on (a collapsed model)."""

    def identity(self) -> Mapping[str, Any]:
        return {"name": "integer-test"}

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 2, (len(search_space), 12), generator=generator).float() * 2 - 1

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        queries = torch.stack([
            torch.zeros(12) if state.dialogue_id == "1" and state.round >= 2
            else self.images[(state.target_index + state.round + 1) % len(self.images)]
            for state in states
        ])
        return rank_targets(queries, self.images, [state.target_index for state in states]).batch()


def _run(small_benchmark, out, *extra: str):
    REGISTRY.add("retriever", "integer-test", IntegerRetriever, replace=True)
    arguments = ["run", "--retriever", "integer-test", "--benchmark", str(small_benchmark.dialogues),
                 "--search-space", str(small_benchmark.search_space), "--out", str(out), "--quiet", *extra]
    return CliRunner().invoke(main, arguments, catch_exceptions=False)


def test_an_unrankable_query_fails_its_dialogue_and_ties_are_counted(small_benchmark, tmp_path):
    result = _run(small_benchmark, tmp_path / "run")
    assert result.exit_code == 0, result.output
    records = {record["dialogue_id"]: record for record in
               map(json.loads, (tmp_path / "run" / "ranks.jsonl").read_text().splitlines())}
    assert records["1"]["status"] == "failed"
    assert records["1"]["error"].startswith("round 2: every image scores the same")
    assert "1 dialogues FAILED" in result.output
    finished = [record for record in records.values() if record["status"] == "ok"]
    assert len(finished) == small_benchmark.count - 1
    assert all(len(record["tied"]) == 11 for record in finished)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = [100.0 * sum(record["tied"][round_] for record in finished) / len(finished) for round_ in range(11)]
    assert metrics["TiedTargets"] == expected and max(expected) > 0
    shown = CliRunner().invoke(main, ["metrics", str(tmp_path / "run")], catch_exceptions=False)
    assert "TiedTargets" in shown.output


def test_a_run_stored_under_another_tie_rule_is_refused_with_the_difference(small_benchmark, tmp_path):
    assert _run(small_benchmark, tmp_path / "run").exit_code == 0
    manifest_path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["identity"]["tie_rule"]  # as runs made before the rule was part of the identity
    manifest_path.write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["run", "--retriever", "integer-test", "--benchmark",
                                       str(small_benchmark.dialogues), "--search-space",
                                       str(small_benchmark.search_space), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert 'tie_rule: (absent) -> "stable-descending"' in result.output
