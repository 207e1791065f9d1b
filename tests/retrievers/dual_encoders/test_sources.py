from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BlipForImageTextRetrieval

from harness.errors import HarnessError
from retrievers.dual_encoders.sources import fetch_checkpoint, from_pretrained, resolve_source

UNREACHABLE = "http://127.0.0.1:9/models/model_base.pth"  # the discard port: refused at once, never the network


def test_resolve_source_kinds(tiny_blip: Path, original_checkpoint: Path) -> None:
    assert resolve_source(str(original_checkpoint)).kind == "checkpoint"
    assert resolve_source(str(tiny_blip)).kind == "directory"
    assert resolve_source(UNREACHABLE).kind == "url"
    assert resolve_source("Salesforce/blip-itm-base-coco").kind == "hub"


def test_resolve_source_rejects_unusable_paths(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(HarnessError, match="not a checkpoint"):
        resolve_source(str(tmp_path / "notes.txt"))
    with pytest.raises(HarnessError, match="no config.json"):
        resolve_source(str(tmp_path))
    for missing in (str(tmp_path / "gone" / "x.ckpt"), "chatir_weights.ckpt", "./models/blip", "a/b/c"):
        with pytest.raises(HarnessError, match="no such file or directory"):
            resolve_source(missing)


def test_unreachable_url_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        fetch_checkpoint(resolve_source(UNREACHABLE), tmp_path, progress=False)
    message = str(caught.value)
    assert UNREACHABLE in message and "--retriever-model" in message
    assert str(tmp_path / "checkpoints" / "model_base.pth") in message
    assert not list((tmp_path / "checkpoints").glob("*"))  # no partial file left behind


def test_downloaded_checkpoint_is_reused(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "model_base.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"already here")
    assert fetch_checkpoint(resolve_source(UNREACHABLE), tmp_path) == target


def test_offline_hub_error_is_actionable() -> None:
    with pytest.raises(HarnessError) as caught:
        from_pretrained(BlipForImageTextRetrieval, "itir-tests/no-such-model")
    message = str(caught.value)
    assert "itir-tests/no-such-model" in message and "hub" in message and "--retriever-model" in message


def test_random_bytes_are_a_damaged_checkpoint_never_advice_to_unpickle(tmp_path):
    from harness.errors import HarnessError
    from retrievers.dual_encoders.convert import load_original_state_dict

    path = tmp_path / "model_base.pth"
    path.write_bytes(bytes(range(256)) * 16)  # fixed bytes: random ones can spell a pickle GLOBAL by chance
    with pytest.raises(HarnessError) as error:
        load_original_state_dict(path)
    assert "is not a readable torch checkpoint" in str(error.value)
    assert "weights_only=False" not in str(error.value)


def test_a_truncated_safetensors_file_is_named(tiny_blip, tmp_path):
    import shutil

    from harness.errors import HarnessError
    from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
    from retrievers.dual_encoders.preprocess import BLIP_224

    copy = shutil.copytree(tiny_blip, tmp_path / "blip")
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    with pytest.raises(HarnessError, match=rf"{weights} is damaged \(Error while deserializing header"):
        load_encoder(EncoderSettings("blip", str(copy), BLIP_224, 32), "cpu", tmp_path / "cache", progress=False)
