"""Atomic writes honour the umask (a shared cache stays readable), and the temporary files a killed writer leaves are
removed only when that writer is gone, never while another process may still be writing one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from harness.atomic import HOST, atomic_write_text, remove_stale_temporaries
from tests.conftest import REPO_ROOT

WRITE = "import sys; from pathlib import Path; from harness.atomic import atomic_write_text; " \
        "atomic_write_text(Path(sys.argv[1]), 'x')"


def test_written_files_get_the_mode_the_umask_gives(tmp_path):
    for mask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        target = tmp_path / f"file-{mask:o}.json"
        subprocess.run([sys.executable, "-c", f"import os; os.umask({mask}); " + WRITE, str(target)], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        assert stat.S_IMODE(target.stat().st_mode) == mode, oct(mask)


def test_only_temporary_files_of_gone_writers_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid is now free
    dead = tmp_path / f".ranks.jsonl.{HOST}.{finished.pid}.abc123.tmp"
    alive = tmp_path / f".manifest.json.{HOST}.{os.getpid()}.def456.tmp"
    other_host_fresh = tmp_path / ".metrics.json.other-node.12.ghi789.tmp"
    other_host_old = tmp_path / ".metrics.json.other-node.13.jkl012.tmp"
    foreign = tmp_path / ".someone-elses.tmp"
    for path in (dead, alive, other_host_fresh, other_host_old, foreign):
        path.write_text("partial")
    day_old = time.time() - 2 * 24 * 3600
    os.utime(other_host_old, (day_old, day_old))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, other_host_old])
    assert alive.exists() and other_host_fresh.exists() and foreign.exists()
    atomic_write_text(tmp_path / "new.json", "{}")  # a writer's own temporary file is gone once it is done
    assert not list(tmp_path.glob(".new.json.*"))


@pytest.mark.parametrize("cache", ["image", "vector", "response", "embedding"])
def test_every_cache_sweeps_the_temporaries_of_gone_writers_from_its_whole_tree(tmp_path, cache):
    from harness.embedding_cache import EmbeddingCache
    from harness.image_cache import ImageCache
    from harness.response_cache import ResponseCache
    from harness.vector_cache import VectorCache

    opens = {"image": ImageCache, "vector": VectorCache, "response": ResponseCache, "embedding": EmbeddingCache}
    namespace = {"image": "images", "vector": "vectors", "response": "responses", "embedding": "embeddings"}[cache]
    shard = tmp_path / namespace / "ab"
    shard.mkdir(parents=True)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = shard / f".abcd.png.{HOST}.{finished.pid}.x1.tmp"
    alive = shard / f".abce.png.{HOST}.{os.getpid()}.x2.tmp"
    for path in (dead, alive):
        path.write_text("partial")
    opens[cache](tmp_path)
    assert not dead.exists() and alive.exists()
