"""A real `harness run` process killed with SIGKILL mid-run resumes to exactly the uninterrupted result."""

import json
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


SLOW_QUESTIONER_PLUGIN = '''
import time
from harness.fixtures.scripted import ScriptedQuestioner, DEFAULT_SCRIPT
from harness.registry import register

class SlowScripted(ScriptedQuestioner):
    def ask(self, states):
        time.sleep(0.05)
        return super().ask(states)

@register("questioner", "slow-scripted")
def build():
    return SlowScripted(DEFAULT_SCRIPT)
'''


def test_a_killed_live_dar_run_resumes_to_the_uninterrupted_trace(tmp_path):
    from PIL import Image

    from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
    from harness.fixtures.tiny_encoders import write_tiny_blip

    synthetic = write_synthetic_benchmark(tmp_path / "bench", dialogues=16, distractors=4, rounds=2)
    blip = write_tiny_blip(tmp_path / "blip")
    images = tmp_path / "generated"
    images.mkdir()
    for index in range(16):
        for round_ in range(3):
            Image.new("RGB", (32, 32), (index * 15, round_ * 80, 0)).save(images / f"{index}_{round_}.png")
    plugin = tmp_path / "slow_questioner.py"
    plugin.write_text(SLOW_QUESTIONER_PLUGIN)
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-c", "from harness.cli import main; main()", "run", "--plugin", str(plugin),
                "--retriever", "dar", "--dar-base", "cocoft", "--dar-variant", "released", "--dar-images", str(images),
                "--retriever-model", str(blip), "--retriever-arg", "llm=scripted", "--questioner", "slow-scripted",
                "--answerer", "scripted", "--benchmark", str(synthetic.dialogue_file), "--search-space",
                str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--rounds", "2",
                "--batch-size", "1", "--device", "cpu", "--quiet", "--out", str(out), "--cache-dir",
                str(out.parent / f"{out.name}-cache")]

    killed_run = tmp_path / "killed"
    process = subprocess.Popen(command(killed_run), env=environment)
    trace = killed_run / "trace.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if trace.is_file() and len(trace.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored = len((killed_run / "ranks.jsonl").read_text().splitlines())
    assert 2 <= stored < 16, "the kill should land mid-run"

    subprocess.run(command(killed_run), env=environment, check=True)
    clean_run = tmp_path / "clean"
    subprocess.run(command(clean_run), env=environment, check=True)
    assert trace.read_text().splitlines() == (clean_run / "trace.jsonl").read_text().splitlines()
    assert (killed_run / "ranks.jsonl").read_text() == (clean_run / "ranks.jsonl").read_text()
    first = json.loads(trace.read_text().splitlines()[0])
    assert [sorted(entry) for entry in first["rounds"]] == [["retriever", "round", "top"]] + [
        ["answer", "question", "retriever", "round", "top"]] * 2
