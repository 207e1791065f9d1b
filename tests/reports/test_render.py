"""Report files through the real `harness report` command: contents, CSV layout, a self-contained HTML file."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from reports.render import RESULTS_COLUMNS
from tests.reports.conftest import ROUNDS, RunFactory, ranks_from, register_fused, write_benchmark

FAST = ["--permutations", "2000", "--bootstrap", "300"]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@dataclass(frozen=True)
class Report:
    runs: tuple[Path, Path]
    out: Path
    output: str


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    """One report of a strong (fused, with text-only ranks) and a weak run, shared by the tests of its files."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as monkeypatch:
        register_fused(monkeypatch)
        factory = RunFactory(root, write_benchmark(root / "bench", 40))
        strong = factory.make("strong", ranks_from(seed=1, good=0.95), text_only=ranks_from(seed=3, good=0.6))
        weak = factory.make("weak", ranks_from(seed=2, good=0.1))
    out = root / "report"
    code, output = run_cli("report", str(strong), str(weak), "--out", str(out), "--metric", "Hits@1", "--metric",
                           "Hits@5", "--seed", "7", *FAST)
    assert code == 0, output
    return Report((strong, weak), out, output)


def test_report_command_writes_every_file(report):
    out = report.out
    assert "strong is significantly better" in report.output
    names = {path.name for path in out.iterdir()}
    assert {"report.md", "report.html", "table.tex", "results.csv", "tests.csv", "curve-hits-at-10.png",
            "curve-hits-at-1.png", "curve-hits-at-5.png", "curve-recall-at-10.png", "curve-mrr.png",
            "degradation.png"} <= names
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    markdown = (out / "report.md").read_text()
    for needle in ("exact McNemar", "2000 random permutations", "300 resamples", "seed 7", "Holm", "(count + 1)",
                   "Why never Wilcoxon", "## Methods", "| (a) strong |", "<sup>b</sup>", "![curve-hits-at-10]"):
        assert needle in markdown, needle
    latex = (out / "table.tex").read_text()
    assert "\\toprule" in latex and "\\textbf{" in latex and "$^{b}$" in latex


def test_results_csv_is_long_format_matching_the_run_metrics(report):
    out = report.out
    frame = pd.read_csv(out / "results.csv")
    assert tuple(frame.columns) == RESULTS_COLUMNS
    assert set(frame["system"]) == {"strong", "weak"} and set(frame["benchmark"]) == {"dialogues"}
    assert {"Hits@10", "Recall@10", "MRR", "MedR", "BRI", "Degradation"} <= set(frame["metric"])
    stored = json.loads((report.runs[0] / "metrics.json").read_text())
    hits = frame[(frame.system == "strong") & (frame.metric == "Hits@10")].sort_values("round")
    assert hits["round"].tolist() == list(range(ROUNDS + 1))
    assert hits["value"].tolist() == pytest.approx(stored["Hits@10"])
    assert (hits["ci_low"] <= hits["value"] + 1e-9).all() and (hits["value"] <= hits["ci_high"] + 1e-9).all()
    bri = frame[(frame.system == "strong") & (frame.metric == "BRI")]
    assert bri["round"].tolist() == list(range(ROUNDS + 1))  # BRI of rounds 0..t; the last is the dialogue BRI
    assert bri["value"].iloc[-1] == pytest.approx(stored["BRI"])
    assert frame[frame.metric == "MedR"]["ci_low"].isna().all()
    tests = pd.read_csv(out / "tests.csv")
    assert {"primary", "rank", "per-round"} == set(tests["family"])


def test_html_is_self_contained(report):
    page = (report.out / "report.html").read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE)
    assert references and all(reference.startswith("data:") for reference in references)
    assert page.count('src="data:image/png;base64,') == 8  # Hits@1, @5, @10, Recall@10, MRR, BRI, MedR, degradation
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert "Why never Wilcoxon" in page


def test_identical_runs_report_no_significance(run_factory, tmp_path):
    ranks = ranks_from(seed=4)
    runs = [run_factory.make("one", ranks), run_factory.make("two", ranks)]
    code, output = run_cli("report", *map(str, runs), "--out", str(tmp_path / "report"), *FAST)
    assert code == 0 and "no significant difference" in output and "+0.00 points" in output
    assert "<sup>" not in (tmp_path / "report" / "report.md").read_text()


def test_report_errors_are_clear(run_factory, tmp_path):
    a = run_factory.make("full", ranks_from(seed=1))
    b = run_factory.make("partial", ranks_from(seed=1), limit=20)
    code, output = run_cli("report", str(a), str(b), "--out", str(tmp_path / "r"))
    assert code == 2 and "error: runs full" in output and "different dialogue ids" in output
    code, output = run_cli("report", str(a), "--out", str(tmp_path / "r"), "--baseline", "nope")
    assert code == 2 and "'nope' is not one of the systems" in output
    code, output = run_cli("report", str(a), "--out", str(tmp_path / "r"), "--metric", "Hits@1,Hits@5")
    assert code == 2 and "unknown metric 'Hits@1,Hits@5'" in output


def test_failed_dialogues_warning_reaches_the_report(run_factory, tmp_path):
    ranks = ranks_from(seed=1)
    runs = [run_factory.make("clean", ranks), run_factory.make("flaky", ranks, failing=["2", "3"])]
    result = CliRunner().invoke(main, ["report", *map(str, runs), "--out", str(tmp_path / "r"), *FAST])
    assert result.exit_code == 0, result.output
    assert "warning: dialogues: 2 of 40 dialogues excluded" in result.output
    assert "2 of 40 dialogues excluded" in (tmp_path / "r" / "report.md").read_text()


def test_runs_table_shows_each_systems_query_mode(run_factory, tmp_path):
    joined = run_factory.make("joined", ranks_from(seed=1, good=0.5))
    entries = run_factory.make("entries", ranks_from(seed=2, good=0.5), query_mode="entry")
    code, output = run_cli("report", str(joined), str(entries), "--out", str(tmp_path / "report"), *FAST)
    assert code == 0, output
    markdown = (tmp_path / "report" / "report.md").read_text()
    runs = markdown.split("## Runs", 1)[1].splitlines()
    assert "| retriever | query mode |" in runs[2]
    assert "| oracle | join |" in runs[4] and runs[4].startswith("| joined |")
    assert "| oracle | entry |" in runs[5] and runs[5].startswith("| entries |")


def test_the_report_lists_each_systems_dialogue_quality(report):
    markdown = (report.out / "report.md").read_text()
    section = markdown.split("## Dialogue quality", 1)[1].split("## Methods", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| system | rounds | non_questions |")
    assert rows[1].startswith("| strong | 400 |") and rows[2].startswith("| weak | 400 |")  # 40 dialogues x 10 rounds
    assert "Rules: rounds: rounds after the caption" in section
    assert "<h2>Dialogue quality</h2>" in (report.out / "report.html").read_text()
