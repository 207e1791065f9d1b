"""A write that fails for want of room (here a file-size limit, RLIMIT_FSIZE, in a real subprocess) is a named error
that says the run resumes, and the resumed run equals an uninterrupted one."""

import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.conftest import write_small_benchmark

ROOT = Path(__file__).resolve().parents[2]


def limited(size: int) -> Callable[[], None]:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return set_limit


def harness(*arguments: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *arguments],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          preexec_fn=limited(limit) if limit else None, check=False)


def test_a_file_size_limit_during_a_run_is_named_and_the_run_resumes(tmp_path: Path) -> None:
    benchmark = write_small_benchmark(tmp_path / "bench", count=120, space=200)
    arguments = ["run", "--retriever", "random", "--benchmark", str(benchmark.dialogues), "--search-space",
                 str(benchmark.search_space), "--batch-size", "1", "--quiet", "--device", "cpu"]
    clean = tmp_path / "clean"
    assert harness(*arguments, "--out", str(clean)).returncode == 0
    manifest, ranks = (clean / "manifest.json").stat().st_size, (clean / "ranks.jsonl").stat().st_size
    assert manifest < ranks // 2, "the limit must let the manifest through and stop the run's records"

    stopped = tmp_path / "stopped"
    result = harness(*arguments, "--out", str(stopped), limit=ranks // 2)
    assert result.returncode != 0
    assert re.search(rf"cannot write {re.escape(str(stopped))}/(ranks|trace)\.jsonl: the file would pass a file-size "
                     "limit", result.stderr)
    assert "(EFBIG)" in result.stderr and "a run or a training resumes where it stopped" in result.stderr
    assert "Traceback" not in result.stderr
    kept = (stopped / "ranks.jsonl").read_text().splitlines()
    assert 0 < len(kept) < benchmark.count

    assert harness(*arguments, "--out", str(stopped)).returncode == 0
    assert (stopped / "ranks.jsonl").read_text() == (clean / "ranks.jsonl").read_text()
    assert (stopped / "trace.jsonl").read_text() == (clean / "trace.jsonl").read_text()


WRITE_PAST_THE_LIMIT = {
    # torch.save reports a failed write as a RuntimeError without its cause; training checkpoints go through
    # atomic_torch_save, which names it like any other write.
    "torch": "import torch\nfrom harness.atomic import atomic_torch_save\n"
             "write = lambda: atomic_torch_save({'x': torch.zeros(100_000)}, target)",
    "bytes": "from harness.atomic import atomic_write_bytes\nwrite = lambda: atomic_write_bytes(target, b'x' * 100_000)",
}


@pytest.mark.parametrize("writer", list(WRITE_PAST_THE_LIMIT))
def test_an_atomic_write_past_the_limit_is_named_and_leaves_nothing_behind(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "cache" / "entry.bin"
    program = ("import sys\nfrom pathlib import Path\nfrom harness.errors import StorageError\n"
               f"target = Path(sys.argv[1])\n{WRITE_PAST_THE_LIMIT[writer]}\n"
               "try:\n    write()\nexcept StorageError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", program, str(target)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, preexec_fn=limited(10_000), check=True)
    assert result.stdout.startswith(f"cannot write {target}: the file would pass a file-size limit")
    assert list(target.parent.iterdir()) == []  # neither the entry nor its temporary file
