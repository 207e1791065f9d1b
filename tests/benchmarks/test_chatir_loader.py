"""The ChatIR-format readers: exact counts and items of the published files, and schema errors that name
the file, the record and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.chatir import load_chatir_benchmark, read_chatir_dialogues, read_search_space
from harness.errors import DataError
from harness.hashing import sha256_file

VISDIAL = "dialogues/VisDial_v1.0_queries_val.json"
SPACE = "ChatIR_Protocol/Search_Space_val_50k.json"


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def record(img: str = "unlabeled2017/a.jpg", turns: int = 11) -> dict:
    return {"img": img, "dialog": ["a caption"] + [f"question {t}? answer" for t in range(1, turns)]}


def test_visdial_dialogues_exact(chatir_dir: Path) -> None:
    dialogues = read_chatir_dialogues(chatir_dir / VISDIAL)
    assert len(dialogues) == 2064
    first, last = dialogues[0], dialogues[2063]
    assert (first.dialogue_id, first.target) == ("0", "unlabeled2017/000000185565.jpg")
    assert first.caption == "a bedroom is filled with lots of posters and a busy computer desk"
    assert first.turns[1] == "is the photo in color? yes"
    assert (last.dialogue_id, last.target) == ("2063", "unlabeled2017/000000076472.jpg")
    assert last.turns[10] == "is it a sunny day? yes bright sun out there"
    assert all(len(dialogue.turns) == 11 for dialogue in dialogues)


def test_search_space_exact(chatir_dir: Path) -> None:
    space = read_search_space(chatir_dir / SPACE, image_root=Path("/images"))
    assert len(space) == 50_000
    assert space.paths[0] == "unlabeled2017/000000000008.jpg"
    assert space.paths[-1] == "unlabeled2017/000000581914.jpg"
    assert space.position("unlabeled2017/000000185565.jpg") == 15927
    assert space.resolve(space.paths[0]) == Path("/images/unlabeled2017/000000000008.jpg")


def test_load_chatir_benchmark_records_files(chatir_dir: Path) -> None:
    benchmark = load_chatir_benchmark(chatir_dir / "dialogues/ChatGPT_BLIP2.json", chatir_dir / SPACE)
    assert benchmark.name == "ChatGPT_BLIP2"
    assert len(benchmark) == 2064
    assert benchmark.dialogues[2063].turns[10] == "Do both cars have their headlights on or off? off"
    # The identity is the content's sha256; the resolved path is recorded beside it.
    assert benchmark.files["dialogues"] == "e3a3e3d08aadd6540264d25eca9ef6894ff9364eaa8002ff746e801c151a3cd8"
    assert benchmark.paths["dialogues"] == (chatir_dir / "dialogues/ChatGPT_BLIP2.json").resolve()
    assert benchmark.files["search_space"] == "8a32638192419131513f2e5a6e5159d191de6789678fb3b1faa18e1ab46b44af"


def test_reformulated_file_loads_with_same_function(tmp_path: Path) -> None:
    captions = [f"a red car, view {t}" for t in range(11)]
    dialogues = write_json(tmp_path / "reformulated.json", [{"img": "a.jpg", "dialog": captions}])
    space = write_json(tmp_path / "space.json", ["a.jpg", "b.jpg"])
    benchmark = load_chatir_benchmark(dialogues, space, name="dar-reformulated")
    assert benchmark.name == "dar-reformulated"
    assert benchmark.dialogues[0].turns == tuple(captions)
    assert benchmark.files["search_space"] == sha256_file(space)
    assert benchmark.paths["search_space"] == space.resolve()


@pytest.mark.parametrize(
    ("content", "record_index", "field", "words"),
    [
        ({"img": "a.jpg"}, None, None, "expected a JSON list"),
        ([record(), "not a record"], 1, None, "expected an object"),
        ([record(), {"dialog": record()["dialog"]}], 1, "img", "missing"),
        ([{"img": "a.jpg"}], 0, "dialog", "missing"),
        ([record(), record(), {"img": 7, "dialog": []}], 2, "img", "non-empty string"),
        ([{"img": "a.jpg", "dialog": "a caption"}], 0, "dialog", "list of strings"),
        ([{"img": "a.jpg", "dialog": ["a caption", 3]}], 0, "dialog", "turn 1 is a number"),
        ([record(), record(turns=10)], 1, "dialog", "holds 10 turns, expected 11"),
    ],
)
def test_dialogue_schema_errors_name_file_record_field(
    tmp_path: Path, content: object, record_index: int | None, field: str | None, words: str
) -> None:
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(DataError) as caught:
        read_chatir_dialogues(path)
    assert (caught.value.file, caught.value.record, caught.value.field) == (str(path), record_index, field)
    assert words in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_any_length_when_expected_turns_is_none(tmp_path: Path) -> None:
    path = write_json(tmp_path / "short.json", [record(turns=3), record(turns=1)])
    assert [len(d.turns) for d in read_chatir_dialogues(path, expected_turns=None)] == [3, 1]


def test_empty_turns_load(tmp_path: Path) -> None:
    path = write_json(tmp_path / "empty.json", [{"img": "a.jpg", "dialog": [""] * 11}])
    assert read_chatir_dialogues(path)[0].turns == ("",) * 11


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"img": "a.jpg",\n   "dialog": [}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 3, column 15"):
        read_chatir_dialogues(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_chatir_dialogues(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "record_index", "words"),
    [
        (["a.jpg", 5], 1, "non-empty path string"),
        (["a.jpg", ""], 1, "non-empty path string"),
        (["a.jpg", "../etc/passwd"], 1, "climbs out"),
        (["/abs/a.jpg"], 0, "absolute"),
        (["C:\\images\\a.jpg"], 0, "absolute"),
        (["a.jpg", "b.jpg", "a.jpg", "b.jpg"], 2, "2 paths occur more than once (first: 'a.jpg', 'b.jpg')"),
    ],
)
def test_search_space_errors(tmp_path: Path, content: list, record_index: int, words: str) -> None:
    path = write_json(tmp_path / "space.json", content)
    with pytest.raises(DataError) as caught:
        read_search_space(path)
    assert (caught.value.file, caught.value.record) == (str(path), record_index)
    assert words in str(caught.value)


def test_target_outside_search_space(tmp_path: Path) -> None:
    dialogues = write_json(tmp_path / "d.json", [record("a.jpg"), record("c.jpg")])
    space = write_json(tmp_path / "space.json", ["a.jpg", "b.jpg"])
    with pytest.raises(DataError) as caught:
        load_chatir_benchmark(dialogues, space)
    assert (caught.value.record, caught.value.field) == (1, "img")
    assert "'c.jpg' is not in the search space" in str(caught.value)
