"""One writer per run directory: a second process is refused with the holder's pid before it touches anything, and
the lock goes with a process that dies (real processes, not threads)."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from harness.cli import main
from tests.conftest import REPO_ROOT

HOLD = """
import sys, time
from harness.store import RunStore
with RunStore(sys.argv[1]).locked():
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_is_refused_and_a_dead_holder_frees_the_run(small_benchmark, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        arguments = ["run", "--retriever", "oracle", "--benchmark", str(small_benchmark.dialogues), "--search-space",
                     str(small_benchmark.search_space), "--out", str(out), "--quiet"]
        refused = CliRunner().invoke(main, arguments)
        assert refused.exit_code == 2
        assert f"is being written by another harness process (pid {holder.pid})" in refused.output
        assert not (out / "manifest.json").exists() and not (out / "ranks.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    finished = CliRunner().invoke(main, arguments)  # the kill released the lock
    assert finished.exit_code == 0, finished.output
    assert len((out / "ranks.jsonl").read_text().splitlines()) == small_benchmark.count
