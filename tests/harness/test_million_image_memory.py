"""A run over a 1M-image search space stays within the embeddings' size plus 1.5 GB of peak resident memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

IMAGES = 1_000_000
WIDTH = 256
DIALOGUES = 256
HEADROOM = 1.5 * 2**30

RANDOM_EMBEDDINGS_PLUGIN = f'''
import torch
from harness.ranking import rank_targets
from harness.registry import register

class RandomEmbeddings:
    """Seeded random unit embeddings for every image and every (dialogue, round) query, ranked by the harness."""

    def identity(self):
        return {{"name": "million-random-embeddings"}}

    def prepare(self, search_space, context):
        generator = torch.Generator().manual_seed(12345)
        self.images = torch.randn(len(search_space), {WIDTH}, generator=generator)
        self.images /= self.images.norm(dim=1, keepdim=True)  # in place: one copy of the embeddings

    def rank(self, states):
        queries = torch.stack([
            torch.randn({WIDTH}, generator=torch.Generator().manual_seed(int(state.dialogue_id) * 100 + state.round))
            for state in states
        ])
        return rank_targets(queries, self.images, [state.target_index for state in states]).batch()

@register("retriever", "million-random-embeddings")
def build():
    return RandomEmbeddings()
'''


@pytest.mark.slow
def test_million_image_run_peak_memory(tmp_path: Path) -> None:
    paths = [f"images/{index // 1000:04d}/{index:07d}.jpg" for index in range(IMAGES)]
    search_space = tmp_path / "search_space.json"
    search_space.write_text(json.dumps(paths))
    records = [{"img": paths[index * 3331], "dialog": [f"caption {index}"] + [f"q{r}? a{r}" for r in range(1, 11)]}
               for index in range(DIALOGUES)]
    dialogues = tmp_path / "dialogues.json"
    dialogues.write_text(json.dumps(records))
    del paths, records
    plugin = tmp_path / "million.py"
    plugin.write_text(RANDOM_EMBEDDINGS_PLUGIN)
    out = tmp_path / "run"
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--plugin", str(plugin),
               "--retriever", "million-random-embeddings", "--benchmark", str(dialogues),
               "--search-space", str(search_space), "--out", str(out), "--device", "cpu", "--batch-size", "128", "--quiet"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(command, env=environment)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    assert len((out / "ranks.jsonl").read_text().splitlines()) == DIALOGUES
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    embeddings = IMAGES * WIDTH * 4
    print(f"peak resident memory {peak / 2**30:.2f} GiB, embeddings {embeddings / 2**30:.2f} GiB")
    assert peak <= embeddings + HEADROOM
