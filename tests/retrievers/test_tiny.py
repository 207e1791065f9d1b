from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from harness.registry import REGISTRY
from retrievers.tiny import bert_vocabulary, write_tiny_blip, write_tiny_clip


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    first = load_file(write_tiny_blip(tmp_path / "a", seed=3) / "model.safetensors")
    second = load_file(write_tiny_blip(tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(write_tiny_blip(tmp_path / "c", seed=4) / "model.safetensors")
    assert first.keys() == second.keys()
    assert all((first[name] == second[name]).all() for name in first)
    assert any(not (first[name] == other[name]).all() for name in first)


def test_fixtures_are_registered_and_small(tmp_path: Path) -> None:
    assert REGISTRY.resolve("fixture", "tiny-blip") is write_tiny_blip
    assert REGISTRY.resolve("fixture", "tiny-clip") is write_tiny_clip
    for directory in (write_tiny_blip(tmp_path / "blip"), write_tiny_clip(tmp_path / "clip")):
        assert (directory / "model.safetensors").stat().st_size < 4_000_000
        assert (directory / "tokenizer_config.json").is_file()


def test_vocabulary_has_blip_specials_and_words() -> None:
    vocabulary = bert_vocabulary()
    assert list(vocabulary)[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    assert {"red", "square", "left", "yes", "what", "##a"} <= set(vocabulary)
    assert sorted(vocabulary.values()) == list(range(len(vocabulary)))
