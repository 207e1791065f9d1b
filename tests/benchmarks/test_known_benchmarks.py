"""The registry of published benchmarks and their loaders, against the real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.known import (
    KNOWN_BENCHMARKS,
    KNOWN_FILES,
    SEARCH_SPACE,
    KnownFileMismatchWarning,
    load_chatgpt_blip2,
    load_flan_blip2,
    load_human_blip2,
    load_visdial_val,
)
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.registry import REGISTRY

LOADERS = {
    "visdial-val": load_visdial_val,
    "chatgpt-blip2": load_chatgpt_blip2,
    "human-blip2": load_human_blip2,
    "flan-blip2": load_flan_blip2,
}


def test_known_files_match_the_source_table() -> None:
    assert [known.relative_path for known in KNOWN_FILES] == [
        "dialogues/VisDial_v1.0_queries_val.json",
        "dialogues/ChatGPT_BLIP2.json",
        "dialogues/Human_BLIP2.json",
        "dialogues/FLAN_ALPACA_XXL_BLIP2.json",
        "ChatIR_Protocol/Search_Space_val_50k.json",
    ]
    assert [known.records for known in KNOWN_FILES] == [2064, 2064, 2064, 2064, 50_000]
    assert SEARCH_SPACE.url() == (
        "https://raw.githubusercontent.com/levymsn/ChatIR/c62600c90a2260c8cca44c5fb6b37bc3df53c43f/"
        "ChatIR_Protocol/Search_Space_val_50k.json"
    )


def test_known_digests_match_the_shared_files(chatir_dir: Path) -> None:
    assert all(sha256_file(chatir_dir / known.relative_path) == known.sha256 for known in KNOWN_FILES)


@pytest.mark.parametrize("name", list(KNOWN_BENCHMARKS))
def test_registered_loaders_load_the_published_files(name: str, chatir_dir: Path) -> None:
    assert REGISTRY.resolve("benchmark", name) is LOADERS[name]
    benchmark = LOADERS[name](chatir_dir, image_root=Path("/images"))
    assert benchmark.name == name
    assert len(benchmark) == 2064 and len(benchmark.search_space) == 50_000
    assert benchmark.dialogues[0].target == "unlabeled2017/000000185565.jpg"
    assert benchmark.dialogues[2063].caption == "2 polished antique cars parked next to each other"
    assert benchmark.search_space.image_root == Path("/images")
    assert benchmark.files["dialogues"].endswith(KNOWN_BENCHMARKS[name].dialogues.sha256)


def test_human_blip2_exact_items(chatir_dir: Path) -> None:
    dialogues = load_human_blip2(chatir_dir).dialogues
    assert dialogues[0].turns[1] == "is there a computer chair? yes"
    assert dialogues[1000].turns[5] == "what color is the stove? black"


def test_search_space_override(chatir_dir: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.json"
    space.write_text('["unlabeled2017/000000185565.jpg"]', encoding="utf-8")
    with pytest.raises(HarnessError, match="record 1, field 'img'"):
        load_visdial_val(chatir_dir, search_space=space)


def test_missing_file_says_where_and_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        load_flan_blip2(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "dialogues/FLAN_ALPACA_XXL_BLIP2.json") in message
    assert f"harness data fetch chatir --to {tmp_path}" in message


def test_changed_file_warns_and_loads(chatir_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "dialogues").mkdir()
    shutil.copytree(chatir_dir / "ChatIR_Protocol", tmp_path / "ChatIR_Protocol")
    text = (chatir_dir / "dialogues/ChatGPT_BLIP2.json").read_text(encoding="utf-8")
    (tmp_path / "dialogues/ChatGPT_BLIP2.json").write_text(text + "\n", encoding="utf-8")
    with pytest.warns(KnownFileMismatchWarning, match="differs from the published dialogues/ChatGPT_BLIP2.json"):
        benchmark = load_chatgpt_blip2(tmp_path)
    assert len(benchmark) == 2064
    assert not benchmark.files["dialogues"].endswith(KNOWN_BENCHMARKS["chatgpt-blip2"].dialogues.sha256)


def test_benchmark_all_runs_the_four_into_their_own_directories(chatir_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    command = ["run", "--retriever", "oracle", "--benchmark", "all", "--data-dir", str(chatir_dir), "--limit", "3",
               "--out", str(tmp_path / "runs"), "--quiet", "--device", "cpu"]
    result = CliRunner().invoke(main, command, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == sorted(KNOWN_BENCHMARKS)
    for name in KNOWN_BENCHMARKS:
        assert f"oracle on {name}: 3 dialogues" in result.output
        assert len((tmp_path / "runs" / name / "ranks.jsonl").read_text().splitlines()) == 3
