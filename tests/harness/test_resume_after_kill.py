"""A real `harness run` process killed with SIGKILL mid-run resumes to exactly the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.conftest import write_small_benchmark

SLOW_PLUGIN = '''
import time
from harness.registry import register
from retrievers.reference import RandomRetriever

class SlowRandom(RandomRetriever):
    def rank(self, states):
        time.sleep(0.01)
        return super().rank(states)

@register("retriever", "slow-random")
def build(seed: int = 0):
    return SlowRandom(seed)
'''


def harness_command(benchmark, plugin: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", "run", "--plugin", str(plugin),
            "--retriever", "slow-random", "--benchmark", str(benchmark.dialogues),
            "--search-space", str(benchmark.search_space), "--out", str(out), "--batch-size", "1",
            "--device", "cpu", "--quiet"]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    benchmark = write_small_benchmark(tmp_path / "bench", count=30)
    plugin = tmp_path / "slow_random.py"
    plugin.write_text(SLOW_PLUGIN)
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    killed_run = tmp_path / "killed"
    process = subprocess.Popen(harness_command(benchmark, plugin, killed_run), env=environment)
    ranks = killed_run / "ranks.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ranks.is_file() and len(ranks.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored = len(ranks.read_text().splitlines())
    assert 5 <= stored < benchmark.count, "the kill should land mid-run"

    subprocess.run(harness_command(benchmark, plugin, killed_run), env=environment, check=True)
    clean_run = tmp_path / "clean"
    subprocess.run(harness_command(benchmark, plugin, clean_run), env=environment, check=True)
    assert ranks.read_text().splitlines() == (clean_run / "ranks.jsonl").read_text().splitlines()
    assert (killed_run / "metrics.json").read_text() == (clean_run / "metrics.json").read_text()
