"""TREC export round trip: metrics recomputed from the written files with an independent parser match ours."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.metrics import hits_at_k, mrr, recall_at_k
from reports.trec import export_trec
from tests.reports.conftest import ROUNDS, ranks_from


def read_qrels(path: Path) -> dict[str, set[str]]:
    relevant: dict[str, set[str]] = defaultdict(set)
    for line in path.read_text().splitlines():
        qid, _, docno, grade = line.split()
        if int(grade) > 0:
            relevant[qid].add(docno)
    return relevant


def read_run(path: Path) -> dict[str, list[str]]:
    """Each query's documents in ranked order, by descending score as trec_eval orders them (ties: docno desc)."""
    scored: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        qid, q0, docno, _rank, score, _tag = line.split()
        assert q0 == "Q0"
        scored[qid].append((float(score), docno))
    return {qid: [docno for _, docno in sorted(items, reverse=True)] for qid, items in scored.items()}


def measures(qrels: dict[str, set[str]], run: dict[str, list[str]], k: int) -> tuple[float, float]:
    """Mean reciprocal rank and success@k over the qrels' queries (a query missing from the run scores 0)."""
    rr, success = [], []
    for qid, relevant in qrels.items():
        ranked = run.get(qid, [])
        position = next((i + 1 for i, docno in enumerate(ranked) if docno in relevant), None)
        rr.append(1.0 / position if position else 0.0)
        success.append(1.0 if position and position <= k else 0.0)
    return float(np.mean(rr)), float(np.mean(success))


def test_unlimited_depth_reproduces_mrr_recall_and_hits(run_factory, tmp_path):
    ranks = ranks_from(seed=6, good=0.6)
    files = export_trec(run_factory.make("sys", ranks), tmp_path / "trec", depth=None)
    assert len(files.rounds) == len(files.accumulated) == ROUNDS + 1 and files.queries == 40
    qrels = read_qrels(files.qrels)
    assert len(qrels) == 40 and all(len(targets) == 1 for targets in qrels.values())
    for round_ in range(ROUNDS + 1):
        rr, success = measures(qrels, read_run(files.rounds[round_]), 10)
        assert rr == pytest.approx(mrr(ranks)[round_])
        assert 100 * success == pytest.approx(recall_at_k(ranks, 10)[round_])
        _, success_5 = measures(qrels, read_run(files.accumulated[round_]), 5)
        assert 100 * success_5 == pytest.approx(hits_at_k(ranks, 5)[round_])


def test_depth_caps_the_files_but_keeps_success_at_k(run_factory, tmp_path):
    ranks = ranks_from(seed=7, good=0.5)
    files = export_trec(run_factory.make("sys", ranks), tmp_path / "trec", depth=10)
    qrels = read_qrels(files.qrels)
    for round_ in (0, 5, ROUNDS):
        run = read_run(files.rounds[round_])
        assert max(len(documents) for documents in run.values()) <= 10
        rr, success = measures(qrels, run, 10)
        assert 100 * success == pytest.approx(recall_at_k(ranks, 10)[round_])
        truncated = np.where(ranks[:, round_] < 10, 1.0 / (ranks[:, round_] + 1), 0.0)  # RR@10
        assert rr == pytest.approx(truncated.mean())
        _, hits = measures(qrels, read_run(files.accumulated[round_]), 10)
        assert 100 * hits == pytest.approx(hits_at_k(ranks, 10)[round_])


def test_export_command_and_failed_dialogues(run_factory, tmp_path):
    run = run_factory.make("flaky", ranks_from(seed=1), failing=["0"])
    result = CliRunner().invoke(main, ["export", "trec", str(run), "--out", str(tmp_path / "t"), "--depth", "0"])
    assert result.exit_code == 0, result.output
    assert "39 queries" in result.output and "1 failed dialogues skipped" in result.output
    first = (tmp_path / "t" / "round-00.run").read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[5] == "flaky"
    assert "0" not in read_qrels(tmp_path / "t" / "qrels.txt")
