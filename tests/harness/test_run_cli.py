"""End-to-end runs through the CLI with the shipped fake retrievers: exactly known metrics, resume, errors."""

import json
import re

import pytest
from click.testing import CliRunner

from harness.cli import main


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def benchmark_args(small_benchmark, out) -> list[str]:
    return ["--benchmark", str(small_benchmark.dialogues), "--search-space", str(small_benchmark.search_space),
            "--out", str(out), "--quiet", "--device", "cpu"]


def test_oracle_rule_gives_exactly_known_metrics(small_benchmark, tmp_path):
    code, output = run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run"))
    assert code == 0, output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # rule max(0, 20 - 3*round): ranks 20 17 14 11 8 5 2 0 0 0 0 for every dialogue
    assert metrics["Hits@10"] == [0.0] * 4 + [100.0] * 7
    assert metrics["Hits@5"] == [0.0] * 6 + [100.0] * 5
    assert metrics["Hits@1"] == [0.0] * 7 + [100.0] * 4
    assert metrics["MedR"][0] == 21.0
    assert metrics["dialogues"] == small_benchmark.count and metrics["failed_dialogues"] == []
    assert "Hits@10" in output and "100.00" in output
    lines = (tmp_path / "run" / "ranks.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["ranks"] == [20, 17, 14, 11, 8, 5, 2, 0, 0, 0, 0]


def test_rerun_reuses_everything_and_random_is_reproducible(small_benchmark, tmp_path):
    args = ["run", "--retriever", "random", "--retriever-arg", "seed=4", *benchmark_args(small_benchmark, tmp_path / "a")]
    assert run_cli(*args)[0] == 0
    first = (tmp_path / "a" / "ranks.jsonl").read_text()
    code, output = run_cli(*args)
    assert code == 0 and "0 evaluated now" in output
    assert (tmp_path / "a" / "ranks.jsonl").read_text() == first
    other = ["run", "--retriever", "random", "--retriever-arg", "seed=4", "--batch-size", "4",
             *benchmark_args(small_benchmark, tmp_path / "b")]
    assert run_cli(*other)[0] == 0
    assert (tmp_path / "b" / "ranks.jsonl").read_text() == first
    reseeded = ["run", "--retriever", "random", "--retriever-arg", "seed=4", "--seed", "5",
                *benchmark_args(small_benchmark, tmp_path / "c")]
    assert run_cli(*reseeded)[0] == 0
    assert (tmp_path / "c" / "ranks.jsonl").read_text() != first  # the run's --seed reaches the retriever


def test_limit_then_full_run_resumes_the_rest(small_benchmark, tmp_path):
    base = ["run", "--retriever", "random", *benchmark_args(small_benchmark, tmp_path / "run")]
    assert run_cli(*base, "--limit", "2")[0] == 0
    code, output = run_cli(*base)
    assert code == 0 and f"{small_benchmark.count - 2} evaluated now, 2 reused" in output


def test_resume_with_other_settings_is_refused(small_benchmark, tmp_path):
    base = ["run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run")]
    assert run_cli(*base)[0] == 0
    code, output = run_cli(*base, "--rounds", "5")
    assert code == 2 and "rounds: 10 -> 5" in output


def test_rank_file_oracle_replays_a_run(small_benchmark, tmp_path):
    assert run_cli("run", "--retriever", "random", *benchmark_args(small_benchmark, tmp_path / "a"))[0] == 0
    rank_file = tmp_path / "a" / "ranks.jsonl"
    code, _ = run_cli("run", "--retriever", "oracle", "--retriever-arg", f"rank_file={rank_file}",
                      *benchmark_args(small_benchmark, tmp_path / "b"))
    assert code == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == json.loads((tmp_path / "b" / "metrics.json").read_text())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--retriever", "oracel"], "did you mean 'oracle'"),
        (["--retriever", "oracle", "--retriever-arg", "rule=__import__('os')"], "only round and index"),
        (["--retriever", "oracle", "--rounds", "11"], "field 'dialog'"),
        (["--retriever", "oracle", "--fusion-checkpoint", "."], "applies to --retriever adafuse"),
        (["--retriever", "oracle", "--dar-base", "zs"], "apply to --retriever dar or adafuse"),
        (["--retriever", "oracle", "--workers", "2"], "apply to the ray executor"),
    ],
)
def test_bad_input_gets_a_clear_error(small_benchmark, tmp_path, extra, message):
    code, output = run_cli("run", *extra, *benchmark_args(small_benchmark, tmp_path / "run"))
    assert code == 2 and message in output


def test_known_benchmark_without_data_dir(tmp_path):
    code, output = run_cli("run", "--retriever", "oracle", "--benchmark", "visdial-val", "--out", str(tmp_path / "r"))
    assert code == 2 and "--data-dir" in output


def test_list_shows_builtins():
    code, output = run_cli("list", "retriever")
    assert code == 0 and "chatir" in output and "retrievers.dual_encoders.retriever:chatir" in output


def test_metrics_command_recomputes_a_stored_run(small_benchmark, tmp_path):
    assert run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run"))[0] == 0
    code, output = run_cli("metrics", str(tmp_path / "run"))
    assert code == 0 and f"{small_benchmark.count} dialogues" in output


def test_a_bad_device_is_refused_before_the_run_directory_is_made(small_benchmark, tmp_path):
    code, output = run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run"),
                           "--device", "tpu")
    assert code == 2 and "unknown device 'tpu'" in output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("rank", "message"), [(99999, r"rank 99999 of round 0 is outside the search space \(0..39\)"),
                                               (1.5, "rank 1.5 of round 0 is not an integer")])
def test_metrics_refuses_ranks_the_search_space_cannot_hold(small_benchmark, tmp_path, rank, message):
    assert run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run"))[0] == 0
    ranks_file = tmp_path / "run" / "ranks.jsonl"
    lines = ranks_file.read_text().splitlines()
    record = json.loads(lines[2])
    record["ranks"][0] = rank
    lines[2] = json.dumps(record)
    ranks_file.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["metrics", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"{ranks_file}, field 'ranks': line 3: " in result.output or f"{ranks_file}: line 3" in result.output
    assert re.search(message, result.output), result.output


def test_a_benchmark_file_is_identified_by_content_not_by_the_path_typed(small_benchmark, tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, out))[0] == 0
    moved = tmp_path / "elsewhere" / "renamed.json"  # the same content, another path spelled another way
    moved.parent.mkdir()
    moved.write_bytes(small_benchmark.dialogues.read_bytes())
    typed = str(moved.parent / ".." / "elsewhere" / moved.name)
    code, output = run_cli("run", "--retriever", "oracle", "--benchmark", typed, "--search-space",
                           str(small_benchmark.search_space), "--out", str(out), "--quiet", "--device", "cpu")
    assert code == 0, output
    assert f"0 evaluated now, {small_benchmark.count} reused" in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["benchmark"] == "file"
    assert manifest["benchmark"]["files"]["dialogues"] == str(small_benchmark.dialogues.resolve())  # recorded


def test_a_benchmark_file_without_search_space_takes_the_data_dirs(small_benchmark, tmp_path, caplog):
    data_dir = tmp_path / "DATA"
    (data_dir / "ChatIR_Protocol").mkdir(parents=True)
    (data_dir / "ChatIR_Protocol" / "Search_Space_val_50k.json").write_bytes(small_benchmark.search_space.read_bytes())
    with caplog.at_level("INFO", logger="harness.benchmarks"), pytest.warns(UserWarning, match="differs from"):
        code, output = run_cli("run", "--retriever", "oracle", "--benchmark", str(small_benchmark.dialogues),
                               "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0, output
    assert any("the search space is --data-dir's" in record.getMessage() for record in caplog.records)
    result = CliRunner().invoke(main, ["run", "--retriever", "oracle", "--benchmark", str(small_benchmark.dialogues),
                                       "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "--search-space FILE" in result.output and "--data-dir" in result.output


def test_an_error_names_the_benchmark_file_by_its_path_alone(small_benchmark, tmp_path):
    result = CliRunner().invoke(main, ["run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "r"),
                                       "--rounds", "12"])
    assert result.exit_code == 2
    assert f"error: {small_benchmark.dialogues.resolve()}, record 0, field 'dialog': has 11 turns" in result.output


def test_a_run_never_reads_an_image_through_a_link_out_of_the_image_root(tmp_path):
    from harness.registry import REGISTRY

    synthetic = REGISTRY.resolve("fixture", "synthetic-benchmark")(tmp_path / "benchmark", dialogues=3)
    blip = REGISTRY.resolve("fixture", "tiny-blip")(tmp_path / "blip")
    paths = json.loads(synthetic.search_space_file.read_text())
    secret = tmp_path / "secret.png"
    victim = synthetic.image_root / paths[-1]
    secret.write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(secret)
    result = CliRunner().invoke(main, ["run", "--retriever", "zs", "--retriever-arg", f"model={blip}", "--benchmark",
                                       str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file),
                                       "--image-root", str(synthetic.image_root), "--out", str(tmp_path / "run"),
                                       "--quiet", "--device", "cpu"])
    assert result.exit_code == 2
    assert f"resolves to {secret.resolve()}, outside the image root" in result.output


@pytest.mark.parametrize(("damage", "message"), [
    (lambda line: line.encode("utf-8")[:20] + b"\xff\xfe" + line.encode("utf-8")[20:],
     "line 3 is not UTF-8 text"),
    (lambda line: json.dumps({**json.loads(line), "ranks": json.loads(line)["ranks"][:5]}).encode("utf-8"),
     r"line 3: 5 ranks, but the run has rounds 0..10 \(11 ranks\)"),
], ids=["invalid-utf8", "wrong-length"])
def test_a_damaged_record_in_the_middle_of_ranks_jsonl_is_named_not_a_traceback(small_benchmark, tmp_path, damage,
                                                                                 message):
    assert run_cli("run", "--retriever", "oracle", *benchmark_args(small_benchmark, tmp_path / "run"))[0] == 0
    ranks_file = tmp_path / "run" / "ranks.jsonl"
    lines = ranks_file.read_bytes().splitlines()
    lines[2] = damage(lines[2].decode("utf-8"))
    ranks_file.write_bytes(b"\n".join(lines) + b"\n")
    for command in (["metrics", str(tmp_path / "run")], ["run", "--retriever", "oracle",
                                                        *benchmark_args(small_benchmark, tmp_path / "run")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2 and result.exception.__class__ is SystemExit, result.output
        assert f"error: {ranks_file}" in result.output and re.search(message, result.output), result.output


def test_a_lone_surrogate_in_a_dialogue_file_is_named(tmp_path):
    from harness.dialogue_files import read_chatir_dialogues
    from harness.errors import DataError

    path = tmp_path / "dialogues.json"
    path.write_text('[{"img": "a.jpg", "dialog": ["a cat \\ud800 on a mat", "is it black? yes"]}]')
    with pytest.raises(DataError, match=r"record 0, field 'dialog': turn 0 holds a lone surrogate"):
        read_chatir_dialogues(path, expected_turns=None)


def test_a_reformulated_file_replayed_with_join_warns_with_the_fix(small_benchmark, tmp_path, caplog):
    records = json.loads(small_benchmark.dialogues.read_text())
    for record in records:
        record["dialog"] = [f"{record['dialog'][0]} seen after round {r}" for r in range(11)]
    reformulated = tmp_path / "reformulated.json"
    reformulated.write_text(json.dumps(records))
    arguments = ["--benchmark", str(reformulated), "--search-space", str(small_benchmark.search_space), "--quiet"]
    with caplog.at_level("WARNING", logger="harness"):
        assert run_cli("run", "--retriever", "random", *arguments, "--out", str(tmp_path / "joined"))[0] == 0
    (warning,) = [record.message for record in caplog.records if "reformulated-caption" in record.message]
    assert "100% of its rounds hold no '?'" in warning and "pass --query-mode entry" in warning
    longest = max(len(", ".join(record["dialog"])) for record in records)
    assert f"up to {longest} characters at round 10" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="harness"):
        assert run_cli("run", "--retriever", "random", *arguments, "--query-mode", "entry",
                       "--out", str(tmp_path / "entries"))[0] == 0
    assert not [record for record in caplog.records if "reformulated-caption" in record.message]
