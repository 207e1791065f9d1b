from pathlib import Path

import pytest

from harness.config import RunSpec, build_spec, read_config_file
from harness.errors import ConfigError


def test_flags_override_file_and_are_reported(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('retriever = "oracle"\nbenchmark = "visdial-val"\nout = "runs/x"\nrounds = 5\n')
    spec, overridden = build_spec(read_config_file(config), {"rounds": 3})
    assert spec.rounds == 3 and spec.out == Path("runs/x")
    assert overridden == ["rounds"]


def test_unknown_config_key_is_an_error_naming_it(tmp_path):
    config = tmp_path / "run.json"
    config.write_text('{"retriever": "oracle", "rounds_": 3}')
    with pytest.raises(ConfigError, match="rounds_"):
        read_config_file(config)


def test_identity_leaves_out_batch_size_device_and_cache():
    one = RunSpec(retriever="zs", benchmark="b", out=Path("a"), batch_size=8, device="cpu")
    two = RunSpec(retriever="zs", benchmark="b", out=Path("b"), batch_size=64, device="cuda", cache_dir=Path("/c"))
    assert one.identity() == two.identity()


def test_invalid_values_are_rejected():
    with pytest.raises(ConfigError, match="query_mode"):
        RunSpec(retriever="zs", benchmark="b", out=Path("a"), query_mode="concat")
