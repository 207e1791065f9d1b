"""The Ray executor on a local two-CPU cluster: live, PlugIR and DAR runs give byte-identical ranks and metrics to the
in-process executor (and traces), a worker killed mid-run loses and duplicates nothing, a worker's own error is raised as itself,
and without Ray the option says what to install."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness.config import RunSpec
from harness.errors import ConfigError, HarnessError
from harness.executors import InProcessExecutor, make_executor
from harness.registry import REGISTRY
from harness.runner import run_evaluation

KILLER_PLUGIN = textwrap.dedent(
    '''
    """Test-only retriever: places each target at (target_index + round) mod N; in ``die`` mode the ``die_at``-th
    rank() call of the whole cluster (counted in a shared file; whichever worker makes it) kills its own process,
    once (the marker file says it happened)."""
    import os

    from harness.errors import ConfigError
    from harness.registry import register
    from harness.types import RankBatch


    class Killer:
        def __init__(self, marker, mode, die_at):
            self.marker, self.mode, self.die_at, self.size = marker, mode, die_at, 0

        def identity(self):
            return {"name": "killer", "mode": self.mode}

        def prepare(self, search_space, context):
            self.size = len(search_space)

        def rank(self, states):
            if self.mode == "die" and self._count_call() >= self.die_at:
                try:
                    handle = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.write(handle, str(os.getpid()).encode())
                    os.close(handle)
                    os._exit(1)
            if self.mode == "raise":
                raise ConfigError("the killer retriever refuses to rank")
            return RankBatch(ranks=tuple((state.target_index + state.round) % self.size for state in states))

        def _count_call(self):
            # One byte per call, appended atomically by whichever process calls: the file's size is the count.
            handle = os.open(self.marker + ".calls", os.O_CREAT | os.O_APPEND | os.O_WRONLY)
            os.write(handle, b".")
            os.close(handle)
            return os.path.getsize(self.marker + ".calls")


    @register("retriever", "killer")
    def build_killer(marker: str = "", mode: str = "die", die_at: int = 1):
        return Killer(marker, mode, die_at)
    '''
)


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'itir-harness[ray]')")
    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ray-tiny")
    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(root / "benchmark", dialogues=10, distractors=6)
    return {
        "dialogues": synthetic.dialogue_file,
        "search_space": synthetic.search_space_file,
        "image_root": synthetic.image_root,
        "blip": REGISTRY.resolve("fixture", "tiny-blip")(root / "tiny-blip"),
        "flan": REGISTRY.resolve("fixture", "tiny-flan-t5")(root / "tiny-flan-t5"),
        "blip2": REGISTRY.resolve("fixture", "tiny-blip2")(root / "tiny-blip2"),
        "plugin": _write(root / "killer_plugin.py", KILLER_PLUGIN),
        "root": root,
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _spec(tiny: dict[str, Path], out: Path, **settings) -> RunSpec:
    base = {
        "retriever": "cocoft",
        "retriever_args": {"model": str(tiny["blip"])},
        "benchmark": str(tiny["dialogues"]),
        "search_space": tiny["search_space"],
        "image_root": tiny["image_root"],
        "out": out,
        "device": "cpu",
        "batch_size": 3,
        "rounds": 3,
        "cache_dir": out.parent / f"{out.name}-cache",
        "progress": False,
    }
    base.update(settings)
    return RunSpec(**base)


def _assert_identical(first: Path, second: Path) -> None:
    assert (first / "ranks.jsonl").read_bytes() == (second / "ranks.jsonl").read_bytes()
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert (first / "trace.jsonl").read_bytes() == (second / "trace.jsonl").read_bytes()
    assert (first / "trace.jsonl").stat().st_size > 0


def test_live_run_on_ray_matches_in_process(ray_cluster, tiny, tmp_path):
    bots = {
        "questioner": "flan", "questioner_args": {"model": str(tiny["flan"])},
        "answerer": "blip2", "answerer_args": {"model": str(tiny["blip2"])},
    }
    local = run_evaluation(_spec(tiny, tmp_path / "local", **bots))
    spread = run_evaluation(_spec(tiny, tmp_path / "ray", executor="ray", workers=2, **bots))
    assert spread.evaluated == local.evaluated == 10
    _assert_identical(tmp_path / "local", tmp_path / "ray")
    records = [json.loads(line) for line in (tmp_path / "ray" / "ranks.jsonl").read_text().splitlines()]
    assert len({record["dialogue_id"] for record in records}) == 10 and all(record["dialog"] for record in records)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["spec"]["executor"] == "ray" and "executor" not in manifest["identity"]
    assert manifest["components"]["identities"]["source"]["name"] == "live"


def test_a_plugir_run_on_ray_binds_each_workers_view_and_matches_in_process(ray_cluster, tiny, tmp_path):
    captions = tiny["root"] / "benchmark" / "captions.json"
    bots = {
        "questioner": "plugir", "answerer": "scripted",
        "questioner_args": {"llm": "scripted", "candidate_captions": str(captions), "top": 10, "skip": 2,
                            "clusters": 3, "questions": 2, "on_invalid": "keep"},
    }
    local = run_evaluation(_spec(tiny, tmp_path / "local", rounds=2, **bots))
    spread = run_evaluation(_spec(tiny, tmp_path / "ray", rounds=2, executor="ray", workers=2, **bots))
    assert spread.evaluated == local.evaluated == 10
    _assert_identical(tmp_path / "local", tmp_path / "ray")
    trace = json.loads((tmp_path / "ray" / "trace.jsonl").read_text().splitlines()[0])["rounds"]
    assert trace[1]["question"]["details"]["candidate_count"] == 10


def test_dar_run_on_ray_matches_in_process(ray_cluster, tiny, tmp_path):
    sd21 = REGISTRY.resolve("fixture", "tiny-sd21")(tiny["root"] / "tiny-sd21")
    dar = {
        "base": "cocoft", "model": str(tiny["blip"]), "variant": "released", "llm": "scripted",
        "diffusion_model": str(sd21), "size": 32, "steps": 2, "diffusion_batch_size": 2,
    }
    settings = {"retriever": "dar", "retriever_args": dar, "rounds": 2, "limit": 6}
    run_evaluation(_spec(tiny, tmp_path / "local", **settings))
    run_evaluation(_spec(tiny, tmp_path / "ray", executor="ray", workers=2, **settings))
    _assert_identical(tmp_path / "local", tmp_path / "ray")
    images = list((tmp_path / "ray-cache" / "images").rglob("*.png"))
    assert len(images) == len(list((tmp_path / "local-cache" / "images").rglob("*.png"))) > 0


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster, tiny, tmp_path):
    from harness.ray_executor import RayExecutor

    marker = tmp_path / "killed"
    # 5 chunks of 2 dialogues x 4 rounds: the 14th rank() call is in the 4th chunk, after earlier chunks are stored.
    killer = {"marker": str(marker), "mode": "die", "die_at": 14}
    spec = _spec(tiny, tmp_path / "run", retriever="killer", retriever_args=killer,
                 plugins=(str(tiny["plugin"]),), batch_size=2)
    executor = RayExecutor(workers=2)
    result = run_evaluation(spec, executor=executor)
    assert marker.is_file() and executor.replaced == 1
    lines = (tmp_path / "run" / "ranks.jsonl").read_text().splitlines()
    ids = [json.loads(line)["dialogue_id"] for line in lines]
    assert sorted(ids, key=int) == [str(index) for index in range(10)]  # every dialogue, exactly once
    assert result.evaluated == 10 and result.metrics["dialogues"] == 10

    # The same retriever with no death in process gives the same records.
    local = _spec(tiny, tmp_path / "local", retriever="killer", retriever_args=killer,
                  plugins=(str(tiny["plugin"]),), batch_size=2)
    run_evaluation(local)
    _assert_identical(tmp_path / "run", tmp_path / "local")


def test_a_workers_own_error_is_raised_as_itself_and_not_retried(ray_cluster, tiny, tmp_path):
    from harness.ray_executor import RayExecutor

    spec = _spec(tiny, tmp_path / "run", retriever="killer", retriever_args={"mode": "raise"},
                 plugins=(str(tiny["plugin"]),))
    executor = RayExecutor(workers=2)
    with pytest.raises(ConfigError, match="refuses to rank"):
        run_evaluation(spec, executor=executor)
    assert executor.replaced == 0
    assert (tmp_path / "run" / "ranks.jsonl").read_text() == ""


def test_a_run_started_in_process_resumes_on_ray(ray_cluster, tiny, tmp_path):
    oracle = {"retriever": "oracle", "retriever_args": {"rule": "max(0, 9 - 2*round)"}}
    first = run_evaluation(_spec(tiny, tmp_path / "run", limit=4, **oracle))
    assert first.evaluated == 4
    spread = _spec(tiny, tmp_path / "run", executor="ray", workers=2, **oracle)
    assert spread.identity() == _spec(tiny, tmp_path / "run", **oracle).identity()
    second = run_evaluation(spread)
    assert (second.evaluated, second.reused) == (6, 4)
    run_evaluation(_spec(tiny, tmp_path / "local", **oracle))
    _assert_identical(tmp_path / "run", tmp_path / "local")


def test_without_ray_the_option_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(HarnessError, match=r"pip install 'itir-harness\[ray\]'"):
        make_executor("ray")
    assert isinstance(make_executor("in-process"), InProcessExecutor)


def test_workers_reserve_gpus_only_where_models_go_to_cuda(ray_cluster):
    from harness.ray_executor import RayExecutor

    assert RayExecutor(device="cpu")._gpus_per_worker() == 0
    assert RayExecutor(device="auto")._gpus_per_worker() == 0  # this cluster has no GPU
    assert RayExecutor(device="cuda", gpus_per_worker=0.5)._gpus_per_worker() == 0.5
    with pytest.raises(HarnessError, match="has no GPU"):
        RayExecutor(device="cuda")._gpus_per_worker()
    with pytest.raises(ConfigError, match="use --device cuda"):
        RayExecutor(device="cuda:1")


def test_ray_settings_are_checked_and_left_out_of_the_identity(tmp_path):
    spec = RunSpec(retriever="oracle", benchmark="b.json", out=tmp_path, executor="ray", ray_address="auto",
                   workers=4, gpus_per_worker=0.25)
    assert spec.identity() == RunSpec(retriever="oracle", benchmark="b.json", out=tmp_path).identity()
    with pytest.raises(ConfigError, match="executor must be one of"):
        RunSpec(retriever="oracle", benchmark="b.json", out=tmp_path, executor="dask")
    with pytest.raises(ConfigError, match="apply to the ray executor"):
        RunSpec(retriever="oracle", benchmark="b.json", out=tmp_path, workers=2)


@pytest.mark.slow  # four tiny evaluations, two of them on fresh actors: ~20 s on two CPUs
def test_ray_bench_compares_executors_on_identical_records(ray_cluster, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["bench", "ray", "--dialogues", "8", "--rounds", "2", "--batch-size", "2",
                                       "--work-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ray, 2 worker(s)" in result.output and "records identical to in-process: yes" in result.output
