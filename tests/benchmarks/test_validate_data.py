"""Validation: the published files give warnings only; broken files give errors naming file, record and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.validate import validate_benchmarks
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
    return validate_benchmarks(data_dir=chatir_dir)


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
        ("FLAN_ALPACA_XXL_BLIP2.json", "no-question"): 55,  # questions cut before their "?" (12 dialogues)
    }
    assert counts(published_report, "info")[("Search_Space_val_50k.json", "records")] == 50_000


def test_render_lists_warnings_with_examples(published_report) -> None:
    text = published_report.render()
    assert text.startswith("WARNINGS (9)")
    assert "[rotated-questions]" in text and "2,064 dialogues ask the questions of VisDial" in text
    assert "e.g. record 0: round 1 asks 'is there a computer chair?', the reference 'is the photo in color?'" in text
    assert text.endswith("OK: 0 error(s), 9 warning(s)")


def test_rotation_needs_the_reference(chatir_dir: Path) -> None:
    report = validate_benchmarks(["human-blip2"], data_dir=chatir_dir)
    assert not report.find("rotated-questions")
    assert report.find("rotation-not-checked")
    with pytest.raises(HarnessError, match="neither a published name"):
        validate_benchmarks(["human-blip"], data_dir=chatir_dir)


def test_missing_images_under_image_root(chatir_dir: Path, tmp_path: Path) -> None:
    present = ["unlabeled2017/000000000008.jpg", "unlabeled2017/000000000024.jpg", "unlabeled2017/000000581914.jpg"]
    for relative in present:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"\xff\xd8\xff")
    report = validate_benchmarks(["visdial-val"], data_dir=chatir_dir, image_root=tmp_path, decode=False)
    assert not report.ok
    (missing,) = report.find("missing-image")
    assert missing.count == 50_000 - 3
    assert len(missing.examples) == 5 and "'unlabeled2017/000000000008.jpg'" not in missing.examples
    assert "49,997 of 50,000 images are missing" in report.render()


def test_image_root_that_is_not_a_folder(chatir_dir: Path, tmp_path: Path) -> None:
    report = validate_benchmarks([str(chatir_dir / "dialogues/Human_BLIP2.json")], search_space=chatir_dir / SPACE,
                                 image_root=tmp_path / "nowhere")
    assert [f.code for f in report.findings if f.level == "error"] == ["image-root-missing"]


def test_small_search_space_all_present_escaping_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "images/sub").mkdir(parents=True)
    (tmp_path / "images/sub/a.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"png")
    space = write_json(tmp_path / "space.json", ["sub/a.png", "../secret.png", "/etc/passwd", "sub/a.png", 3])
    report = validate_benchmarks([str(write_json(tmp_path / "d.json", []))], search_space=space, image_root=tmp_path / "images",
                                 decode=False)
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
    report = validate_benchmarks([str(dialogues)], search_space=space)
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
    (finding,) = [f for f in validate_benchmarks([str(broken)]).findings if f.level == "error"]
    assert (finding.level, finding.code) == ("error", "unreadable") and "line 1, column 6" in finding.message
    with pytest.raises(HarnessError, match="neither a published name .* nor an existing file"):
        validate_benchmarks([str(tmp_path / "absent.json")])
    report = validate_benchmarks(data_dir=tmp_path)
    assert len(report.find("missing-file")) == 5
    assert "harness data fetch chatir --to DIR" in report.render()


def test_empty_turns_warn(tmp_path: Path) -> None:
    dialogues = write_json(tmp_path / "d.json", [{"img": "a.jpg", "dialog": ["", *["q? a"] * 9, " "]}])
    report = validate_benchmarks([str(dialogues)])
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
    report = validate_benchmarks([str(write_json(tmp_path / "d.json", []))], search_space=space, image_root=tmp_path / "images",
                                 decode=False)
    (escaping,) = [f for f in report.findings if f.code == "image-outside-root"]
    assert escaping.level == "error" and escaping.count == 2
    assert escaping.examples == ("'sub/link.png'", "'etc/hostname'")


def test_any_file_without_a_search_space_skips_and_says_what_was_skipped(tmp_path: Path) -> None:
    dialogues = write_json(tmp_path / "train.json", [record("a.jpg"), record("b.jpg")])
    report = validate_benchmarks([str(dialogues)])
    assert report.ok
    (skipped,) = report.find("search-space-not-checked")
    assert "targets are in it and the images were not checked" in skipped.message
    assert not report.find("target-not-in-search-space")
    (checked,) = report.find("checked")
    assert "targets in the search space" not in checked.message and "schema" in checked.message
    assert report.find("records")[0].message == "2 dialogues"  # not "as published": nothing to compare with


def test_a_file_takes_the_data_dirs_search_space_and_names_need_a_data_dir(chatir_dir: Path, tmp_path: Path) -> None:
    dialogues = write_json(tmp_path / "mine.json", [record("unlabeled2017/000000000008.jpg"), record("nowhere.jpg")])
    report = validate_benchmarks([str(dialogues)], data_dir=chatir_dir)
    assert report.find("records", "Search_Space_val_50k.json")[0].message.endswith("as published (sha256 matches)")
    (absent,) = report.find("target-not-in-search-space")
    assert absent.examples == ("record 1: 'nowhere.jpg'",)
    with pytest.raises(HarnessError, match="'visdial-val' is a published name: give --data-dir"):
        validate_benchmarks(["visdial-val"])
    with pytest.raises(HarnessError, match="give --benchmark NAME|FILE"):
        validate_benchmarks()


def test_as_published_only_when_the_sha256_is_the_published_one(chatir_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_bytes((chatir_dir / "dialogues/Human_BLIP2.json").read_bytes())
    report = validate_benchmarks([str(copy)], search_space=chatir_dir / SPACE)
    assert "identical to the published dialogues/Human_BLIP2.json" in report.find("published-file", "copy.json")[0].message
    assert report.find("records", "copy.json")[0].message == "2,064 dialogues, as published (sha256 matches)"

    changed = tmp_path / "data"
    (changed / "dialogues").mkdir(parents=True)
    (changed / "ChatIR_Protocol").mkdir()
    (changed / SPACE).write_bytes((chatir_dir / SPACE).read_bytes())
    records = json.loads((chatir_dir / "dialogues/Human_BLIP2.json").read_text())
    records[5]["dialog"][0] = "an edited caption"
    write_json(changed / "dialogues/Human_BLIP2.json", records)
    report = validate_benchmarks(["human-blip2"], data_dir=changed)
    assert report.find("sha256-mismatch")
    message = report.find("records", "Human_BLIP2.json")[0].message
    assert "as published" not in message and "whose content differs" in message

    # Another published file under this name: its digest is a published one, but not this name's.
    (changed / "dialogues/Human_BLIP2.json").write_bytes(
        (chatir_dir / "dialogues/VisDial_v1.0_queries_val.json").read_bytes())
    report = validate_benchmarks(["human-blip2"], data_dir=changed)
    assert report.find("sha256-mismatch")
    assert "as published" not in report.find("records", "Human_BLIP2.json")[0].message


def unanswered_like(tmp_path: Path) -> Path:
    """A file shaped like ChatIR's Unanswered_ChatGPT_BLIP2.json: some rounds hold a statement instead of a question."""
    records = [record(f"{index}.jpg") for index in range(6)]
    records[1]["dialog"][3] = "the cat is on a mat. yes"
    records[4]["dialog"][2] = "tell me about the sky. blue"
    records[4]["dialog"][7] = "describe the dog. brown"
    return write_json(tmp_path / "unanswered.json", records)


def test_rounds_without_a_question_warn_and_are_errors_for_a_live_answerer(tmp_path: Path) -> None:
    dialogues = unanswered_like(tmp_path)
    (warning,) = validate_benchmarks([str(dialogues)]).find("no-question")
    assert (warning.level, warning.count) == ("warning", 3)
    assert warning.message.startswith("3 rounds in 2 dialogues hold no '?'")
    assert warning.examples == ("record 1, round 3: 'the cat is on a mat. yes'",
                                "record 4, round 2: 'tell me about the sky. blue'",
                                "record 4, round 7: 'describe the dog. brown'")
    report = validate_benchmarks([str(dialogues)], live_answerer=True)
    assert not report.ok and report.find("no-question")[0].level == "error"


def test_the_count_matches_what_a_replay_questioner_refuses(tmp_path: Path) -> None:
    from harness.dialogue_files import read_chatir_dialogues
    from harness.protocols import TurnFailure
    from harness.types import Benchmark, DialogueState, SearchSpace
    from simulators.replay import ReplayQuestioner

    dialogues = read_chatir_dialogues(unanswered_like(tmp_path))
    questioner = ReplayQuestioner()
    questioner.prepare(Benchmark("x", tuple(dialogues), SearchSpace(())), None)
    states = [DialogueState.at_round(dialogue, round_, 0) for dialogue in dialogues for round_ in range(10)]
    refused = sum(isinstance(answer, TurnFailure) for answer in questioner.ask(states))
    assert refused == validate_benchmarks([str(tmp_path / "unanswered.json")]).find("no-question")[0].count


def test_a_reformulated_caption_file_is_recognised_and_not_counted_as_repeating_questions(tmp_path: Path) -> None:
    captions = [{"img": f"{index}.jpg", "dialog": ["a cat on a mat"] * 11} for index in range(4)]
    report = validate_benchmarks([str(write_json(tmp_path / "reformulated.json", captions))])
    (finding,) = report.find("reformulated-captions")
    assert finding.level == "warning" and "--query-mode entry" in finding.message
    assert not report.find("repeated-question") and not report.find("no-question")
    assert "repeated questions" not in report.find("checked")[0].message


def write_images(root: Path) -> None:
    import io

    from PIL import Image

    from tests.harness.test_images import write_png_claiming

    root.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, format="PNG")
    good = buffer.getvalue()
    (root / "good.png").write_bytes(good)
    (root / "copy.png").write_bytes(good)
    (root / "text.png").write_text("not an image at all")
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    write_png_claiming(root / "bomb.png", 15_000, 15_000)


def test_images_are_decoded_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "images")
    space = write_json(tmp_path / "space.json", ["good.png", "copy.png", "text.png", "truncated.png", "bomb.png"])
    dialogues = write_json(tmp_path / "d.json", [record("good.png")])
    report = validate_benchmarks([str(dialogues)], search_space=space, image_root=tmp_path / "images")
    (broken,) = report.find("undecodable-image")
    assert broken.level == "error" and broken.count == 3
    assert [example.split(":")[0] for example in broken.examples] == ["'text.png'", "'truncated.png'", "'bomb.png'"]
    assert "too large to decode" in broken.examples[2]
    (copies,) = report.find("duplicate-image-content")
    assert copies.level == "warning" and copies.examples == ("'good.png' = 'copy.png'",)
    monkeypatch.setattr("benchmarks.validate.LARGE_PIXELS", 100)
    (large,) = validate_benchmarks([str(dialogues)], search_space=space, image_root=tmp_path / "images").find("large-image")
    assert large.examples == ("'good.png': 256 pixels", "'copy.png': 256 pixels")

    undecoded = validate_benchmarks([str(dialogues)], search_space=space, image_root=tmp_path / "images", decode=False)
    assert undecoded.ok and undecoded.find("images-not-decoded")
