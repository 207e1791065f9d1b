"""Candidate-caption files: both layouts, and every malformed one refused with its file, record and field."""

import json

import pytest

from harness.errors import DataError
from harness.types import SearchSpace
from simulators.plugir.captions import read_candidate_captions

SPACE = SearchSpace(("a.jpg", "b.jpg", "c.jpg"), source="space.json")


def write(tmp_path, payload):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(payload))
    return path


def test_an_aligned_list_as_plugir_writes_it(tmp_path):
    path = write(tmp_path, [{"caption": ["a  red bus", "a bus"]}, {"caption": ["a dog"], "img": "b.jpg"},
                            {"caption": "two cats"}])
    captions = read_candidate_captions(path, SPACE)
    assert captions.first == ("a red bus", "a dog", "two cats")
    assert captions.identity()["images"] == 3 and len(captions.sha256) == 64


def test_a_mapping_from_image_path_may_list_more_images(tmp_path):
    path = write(tmp_path, {"c.jpg": ["two cats"], "a.jpg": "a red bus", "b.jpg": ["a dog"], "z.jpg": "other"})
    assert read_candidate_captions(path, SPACE).first == ("a red bus", "a dog", "two cats")


@pytest.mark.parametrize(("payload", "where"), [
    ([{"caption": ["x"]}], "lists 1 entries but the search space space.json holds 3"),
    ([{"caption": ["x"]}, {"text": "y"}, {"caption": ["z"]}], "record 1: is not an object with a 'caption' list"),
    ([{"caption": ["x"]}, {"caption": []}, {"caption": ["z"]}], "record 1, field 'caption'"),
    ([{"caption": ["x"]}, {"caption": ["y"], "img": "c.jpg"}, {"caption": ["z"]}], "record 1, field 'img'"),
    ({"a.jpg": "x", "b.jpg": "y"}, "no caption for 1 of the 3 search-space images (first: 'c.jpg')"),
    ({"a.jpg": "x", "b.jpg": "  ", "c.jpg": "z"}, "record 1, field 'b.jpg': is an empty caption"),
    ("just text", "holds neither a list"),
])
def test_malformed_files_name_the_record_and_field(tmp_path, payload, where):
    path = write(tmp_path, payload)
    with pytest.raises(DataError, match="captions.json") as error:
        read_candidate_captions(path, SPACE)
    assert where in str(error.value)


def test_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text("[{")
    with pytest.raises(DataError, match="invalid JSON"):
        read_candidate_captions(path, SPACE)
