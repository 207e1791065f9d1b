import json

import pytest

from harness.errors import ConfigError
from harness.store import RunStore, describe_differences
from harness.types import RunRecord


def manifest(**identity):
    return {"identity": {"retriever": "oracle", "rounds": 10, **identity}}


def test_new_run_then_resume_keeps_records(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open(manifest()) is False
    store.append([RunRecord("0", "a.png", (3, 2)), RunRecord("1", "b.png", (1, 0))])
    assert RunStore(tmp_path / "run").open(manifest()) is True
    assert store.completed_ids() == {"0", "1"}


def test_resume_with_different_settings_names_them(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(manifest())
    store.append([RunRecord("0", "a.png", (3, 2))])
    with pytest.raises(ConfigError, match=r"rounds: 10 -> 5"):
        store.open(manifest(rounds=5))


def test_torn_last_line_is_dropped_on_resume(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(manifest())
    store.append([RunRecord("0", "a.png", (3, 2))])
    with open(store.ranks_path, "a") as stream:
        stream.write('{"dialogue_id": "1", "tar')
    assert store.completed_ids() == {"0"}
    store.open(manifest())
    store.append([RunRecord("1", "b.png", (0, 0))])
    lines = store.ranks_path.read_text().splitlines()
    assert [json.loads(line)["dialogue_id"] for line in lines] == ["0", "1"]


def test_failed_record_is_superseded_by_a_later_success(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(manifest())
    store.append([RunRecord("0", "a.png", (3,), status="failed", error="timeout")])
    assert store.completed_ids() == set()
    store.append([RunRecord("0", "a.png", (3, 1))])
    assert store.completed_ids() == {"0"}
    assert len(store.records()) == 1


def test_describe_differences_nested():
    assert describe_differences({"a": {"b": 1}, "c": 2}, {"a": {"b": 2}}) == ["a.b: 1 -> 2", "c: 2 -> (absent)"]


def test_a_run_with_no_records_may_be_restarted_with_other_settings(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open(manifest())
    assert store.open(manifest(rounds=5)) is False
    assert store.read_manifest()["identity"]["rounds"] == 5
