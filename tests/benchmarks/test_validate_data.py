"""Validation: the published files give warnings only; broken files give errors naming file, record and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.validate import validate_benchmark_file, validate_data_dir, validate_search_space_file
from harness.errors import HarnessError

SPACE = "ChatIR_Protocol/Search_Space_val_50k.json"


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def record(img: str) -> dict:
    return {"img": img, "dialog": ["a caption"] + [f"question {t}? answer" for t in range(1, 11)]}


def counts(report, level: str) -> dict[tuple[str, str], int]:
    return {(Path(f.file).name, f.code): f.count for f in report.findings if f.level == level}


@pytest.fixture(scope="module")
def published_report(chatir_dir: Path):
    return validate_data_dir(chatir_dir)


def test_published_files_are_ok_with_quirk_warnings(published_report) -> None:
    assert published_report.ok
    assert counts(published_report, "warning") == {
        ("VisDial_v1.0_queries_val.json", "repeated-question"): 16,
        ("ChatGPT_BLIP2.json", "leaked-answer"): 151,
        ("ChatGPT_BLIP2.json", "multi-question"): 140,
        ("Human_BLIP2.json", "repeated-question"): 16,
        ("Human_BLIP2.json", "rotated-questions"): 2064,
        ("FLAN_ALPACA_XXL_BLIP2.json", "leaked-answer"): 13_547,
        ("FLAN_ALPACA_XXL_BLIP2.json", "multi-question"): 1_155,
        ("FLAN_ALPACA_XXL_BLIP2.json", "repeated-question"): 2_050,
    }
    assert counts(published_report, "info")[("Search_Space_val_50k.json", "records")] == 50_000


def test_render_lists_warnings_with_examples(published_report) -> None:
    text = published_report.render()
    assert text.startswith("WARNINGS (8)")
    assert "[rotated-questions]" in text and "2,064 dialogues ask the questions of VisDial" in text
    assert "e.g. record 0: round 1 asks 'is there a computer chair?', the reference 'is the photo in color?'" in text
    assert text.endswith("OK: 0 error(s), 8 warning(s)")


def test_rotation_needs_the_reference(chatir_dir: Path) -> None:
    report = validate_data_dir(chatir_dir, benchmarks=["human-blip2"])
    assert not report.find("rotated-questions")
    assert report.find("rotation-not-checked")
    with pytest.raises(HarnessError, match="unknown benchmark"):
        validate_data_dir(chatir_dir, benchmarks=["human-blip"])


def test_missing_images_under_image_root(chatir_dir: Path, tmp_path: Path) -> None:
    present = ["unlabeled2017/000000000008.jpg", "unlabeled2017/000000000024.jpg", "unlabeled2017/000000581914.jpg"]
    for relative in present:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"\xff\xd8\xff")
    report = validate_data_dir(chatir_dir, image_root=tmp_path, benchmarks=["visdial-val"])
    assert not report.ok
    (missing,) = report.find("missing-image")
    assert missing.count == 50_000 - 3
    assert len(missing.examples) == 5 and "'unlabeled2017/000000000008.jpg'" not in missing.examples
    assert "49,997 of 50,000 images are missing" in report.render()


def test_image_root_that_is_not_a_folder(chatir_dir: Path, tmp_path: Path) -> None:
    report = validate_search_space_file(chatir_dir / SPACE, image_root=tmp_path / "nowhere")
    assert [f.code for f in report.findings if f.level == "error"] == ["image-root-missing"]


def test_small_search_space_all_present_escaping_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "images/sub").mkdir(parents=True)
    (tmp_path / "images/sub/a.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"png")
    space = write_json(tmp_path / "space.json", ["sub/a.png", "../secret.png", "/etc/passwd", "sub/a.png", 3])
    report = validate_search_space_file(space, image_root=tmp_path / "images")
    errors = {f.code: f for f in report.findings if f.level == "error"}
    assert set(errors) == {"escaping-path", "duplicate-path", "bad-type"}
    assert errors["escaping-path"].count == 2
    assert errors["escaping-path"].examples[0].startswith("record 1: path '../secret.png' is absolute or climbs")
    assert errors["duplicate-path"].examples == ("'sub/a.png'",)
    assert errors["bad-type"].examples == ("record 4: expected a non-empty path string, found 3",)
    assert report.find("images")[0].message.startswith("all 2 images exist")


def test_benchmark_file_collects_every_problem(tmp_path: Path) -> None:
    space = write_json(tmp_path / "space.json", ["a.jpg", "b.jpg"])
    bad_length = {"img": "b.jpg", "dialog": ["caption", "q? a"]}
    dialogues = write_json(
        tmp_path / "d.json",
        [record("a.jpg"), {"dialog": []}, record("c.jpg"), record("a.jpg"), bad_length, {"img": "b.jpg"}, "x"],
    )
    report = validate_benchmark_file(dialogues, search_space=space)
    errors = {f.code: f for f in report.findings if f.level == "error"}
    assert set(errors) == {
        "missing-field",
        "bad-length",
        "not-an-object",
        "duplicate-target",
        "target-not-in-search-space",
    }
    assert errors["missing-field"].examples == ("record 1, field 'img': missing", "record 5, field 'dialog': missing")
    assert errors["bad-length"].examples[0].startswith("record 4, field 'dialog': holds 2 turns, expected 11")
    assert errors["not-an-object"].examples == ("record 6: expected an object, found a string",)
    assert errors["duplicate-target"].examples == ("'a.jpg'",)
    assert errors["target-not-in-search-space"].examples == ("record 2: 'c.jpg'",)
    assert not report.ok and report.render().startswith("ERRORS (5)")


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2", encoding="utf-8")
    (finding,) = validate_benchmark_file(broken).findings
    assert (finding.level, finding.code) == ("error", "unreadable") and "line 1, column 6" in finding.message
    (finding,) = validate_benchmark_file(tmp_path / "absent.json").findings
    assert finding.code == "missing-file"
    report = validate_data_dir(tmp_path)
    assert len(report.find("missing-file")) == 5
    assert "harness data fetch chatir --to DIR" in report.render()


def test_empty_turns_warn(tmp_path: Path) -> None:
    dialogues = write_json(tmp_path / "d.json", [{"img": "a.jpg", "dialog": ["", *["q? a"] * 9, " "]}])
    report = validate_benchmark_file(dialogues)
    assert report.ok
    assert report.find("empty-turn")[0].count == 2


def test_symbolic_links_out_of_the_image_root_are_errors(tmp_path: Path) -> None:
    (tmp_path / "images/sub").mkdir(parents=True)
    (tmp_path / "images/sub/a.png").write_bytes(b"png")
    (tmp_path / "outside.png").write_bytes(b"png")
    (tmp_path / "images/sub/link.png").symlink_to(tmp_path / "outside.png")  # a file link leaving the root
    (tmp_path / "images/etc").symlink_to("/etc", target_is_directory=True)  # a folder link leaving the root
    (tmp_path / "images/inside.png").symlink_to(tmp_path / "images/sub/a.png")  # a link staying inside is fine
    space = write_json(tmp_path / "space.json", ["sub/a.png", "sub/link.png", "etc/hostname", "inside.png"])
    report = validate_search_space_file(space, image_root=tmp_path / "images")
    (escaping,) = [f for f in report.findings if f.code == "image-outside-root"]
    assert escaping.level == "error" and escaping.count == 2
    assert escaping.examples == ("'sub/link.png'", "'etc/hostname'")
