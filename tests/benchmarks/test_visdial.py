"""`harness data convert visdial`: VisDial v1.0 JSON written by hand from three records of ChatIR's val file gives
those records back exactly; image patterns, the test split's unanswered rounds, malformed input and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.visdial import convert_visdial
from harness.cli import main
from harness.errors import ConfigError, DataError
from harness.hashing import sha256_file
from harness.sidecar import sidecar_path
from harness.turns import split_turn

PATTERN = "unlabeled2017/{image_id:012d}.jpg"


def visdial_from_chatir(records: list[dict]) -> dict:
    """VisDial's layout for ChatIR records: shared question and answer lists, rounds as indexes, no "?"."""
    questions: list[str] = []
    answers: list[str] = []

    def index(strings: list[str], text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    dialogs = []
    for record in records:
        rounds = []
        for turn in record["dialog"][1:]:
            question, answer = split_turn(turn)
            rounds.append({"question": index(questions, question.removesuffix("?")),
                           "answer": index(answers, answer), "gt_index": 0})
        image_id = int(Path(record["img"]).stem)
        dialogs.append({"image_id": image_id, "caption": record["dialog"][0], "dialog": rounds})
    return {"version": "1.0", "split": "val", "data": {"questions": questions, "answers": answers, "dialogs": dialogs}}


@pytest.fixture
def chatir_records(chatir_dir: Path) -> list[dict]:
    return json.loads((chatir_dir / "dialogues" / "VisDial_v1.0_queries_val.json").read_text())[:3]


def test_chatir_records_come_back_exactly(chatir_records, tmp_path):
    source = tmp_path / "visdial_1.0_val.json"
    source.write_text(json.dumps(visdial_from_chatir(chatir_records)))
    assert all("?" not in question for question in json.loads(source.read_text())["data"]["questions"])
    summary = convert_visdial(source, tmp_path / "out.json", [PATTERN], progress=False)
    assert summary.dialogues == 3 and summary.unanswered_rounds == 0
    assert json.loads((tmp_path / "out.json").read_text()) == chatir_records  # text and (this pattern) paths
    manifest = json.loads(sidecar_path(tmp_path / "out.json").read_text())
    assert manifest["input"]["sha256"] == sha256_file(source) and manifest["dialogues"] == 3
    assert manifest["output_sha256"] == sha256_file(tmp_path / "out.json") and not manifest["image_root_checked"]


def test_the_first_existing_pattern_wins_and_an_image_matching_none_is_named(tmp_path):
    root = tmp_path / "coco"
    (root / "train2014").mkdir(parents=True)
    (root / "val2014").mkdir()
    (root / "train2014" / "COCO_train2014_000000000007.jpg").write_bytes(b"x")
    (root / "val2014" / "COCO_val2014_000000000009.jpg").write_bytes(b"x")
    patterns = ["train2014/COCO_train2014_{image_id:012d}.jpg", "val2014/COCO_val2014_{image_id:012d}.jpg"]
    payload = {"split": "train", "data": {"questions": ["is it red", "is it big?"], "answers": ["yes", "no"], "dialogs": [
        {"image_id": 7, "caption": "a dog", "dialog": [{"question": 0, "answer": 0, "answer_options": [0, 1]},
                                                     {"question": 1, "answer": 1, "answer_options": [1, 0]}]},
        {"image_id": 9, "caption": "a cat", "dialog": [{"question": 1, "answer": 0}]},
    ]}}
    source = tmp_path / "visdial.json"
    source.write_text(json.dumps(payload))
    summary = convert_visdial(source, tmp_path / "out.json", patterns, root, progress=False)
    written = json.loads((tmp_path / "out.json").read_text())
    assert [record["img"] for record in written] == ["train2014/COCO_train2014_000000000007.jpg",
                                                      "val2014/COCO_val2014_000000000009.jpg"]
    assert written[0]["dialog"] == ["a dog", "is it red? yes", "is it big? no"]  # a "?" already there is kept
    assert summary.images_by_pattern == {patterns[0]: 1, patterns[1]: 1}
    payload["data"]["dialogs"].append({"image_id": 11, "caption": "a bus", "dialog": []})
    source.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=r"record 2, field 'image_id': image_id 11 matches no --image-pattern"):
        convert_visdial(source, tmp_path / "out2.json", patterns, root, progress=False)


def test_the_test_splits_unanswered_last_round_is_left_out_and_counted(tmp_path):
    payload = {"split": "test", "data": {"questions": ["is it red", "is it big"], "answers": ["yes"], "dialogs": [
        {"image_id": 1, "caption": "a dog", "dialog": [{"question": 0, "answer": 0}, {"question": 1}]},
    ]}}
    source = tmp_path / "test.json"
    source.write_text(json.dumps(payload))
    result = CliRunner().invoke(main, ["data", "convert", "visdial", str(source), "--image-pattern", PATTERN,
                                       "--out", str(tmp_path / "out.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 unanswered last rounds" in result.output
    assert json.loads((tmp_path / "out.json").read_text())[0]["dialog"] == ["a dog", "is it red? yes"]


@pytest.mark.parametrize(("change", "where"), [
    (lambda data: data["dialogs"][0]["dialog"][0].update(answer=5), "record 0, field 'dialog[0].answer'"),
    (lambda data: data["dialogs"][0].update(image_id="7"), "record 0, field 'image_id'"),
    (lambda data: data["dialogs"][0].update(caption=""), "record 0, field 'caption'"),
    (lambda data: data["dialogs"][0]["dialog"][0].pop("answer"), "record 0, field 'dialog[0]': has no answer but"),
    (lambda data: data.update(questions="x"), "field 'data.questions'"),
])
def test_malformed_input_names_the_record_and_field(tmp_path, change, where):
    data = {"questions": ["is it red"], "answers": ["yes"], "dialogs": [
        {"image_id": 7, "caption": "a dog", "dialog": [{"question": 0, "answer": 0}, {"question": 0, "answer": 0}]}]}
    change(data)
    source = tmp_path / "bad.json"
    source.write_text(json.dumps({"data": data}))
    with pytest.raises(DataError, match="bad.json") as error:
        convert_visdial(source, tmp_path / "out.json", [PATTERN], progress=False)
    assert where in str(error.value)
    assert not (tmp_path / "out.json").exists()


def test_a_pattern_must_format_an_image_id(tmp_path):
    with pytest.raises(ConfigError, match="not a format over"):
        convert_visdial(tmp_path / "x.json", tmp_path / "out.json", ["{id}.jpg"], progress=False)


def test_a_pattern_without_the_image_id_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"must name each image by \{image_id\}"):
        convert_visdial(tmp_path / "x.json", tmp_path / "out.json", ["images/fixed.jpg"], progress=False)
