"""The tiny bot checkpoints: small, seeded, and loadable through the Auto classes a real checkpoint goes through."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.registry import REGISTRY
from simulators import tiny

MAX_BYTES = 2 * 1024 * 1024


def _total_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


@pytest.mark.parametrize(
    ("fixture", "writer"),
    [
        ("tiny-flan-t5", "write_tiny_flan_t5"),
        ("tiny-causal-lm", "write_tiny_causal_lm"),
        ("tiny-blip2", "write_tiny_blip2"),
    ],
)
def test_registered_as_fixtures(fixture: str, writer: str) -> None:
    assert REGISTRY.resolve("fixture", fixture) is getattr(tiny, writer)


def test_flan_t5_loads_through_auto_classes(tiny_flan_t5: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5ForConditionalGeneration

    assert (tiny_flan_t5 / "model.safetensors").is_file() and _total_bytes(tiny_flan_t5) < MAX_BYTES
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_flan_t5)
    tokenizer = AutoTokenizer.from_pretrained(tiny_flan_t5)
    assert isinstance(model, T5ForConditionalGeneration)
    assert model.config.feed_forward_proj == "gated-gelu"  # Flan-T5's layout
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer(["what color is the dog?"]).input_ids[0]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert len(ids) < len("what color is the dog?")  # known words are single tokens, not spelled out


def test_causal_lm_has_a_chat_template(tiny_causal_lm: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

    assert _total_bytes(tiny_causal_lm) < MAX_BYTES
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    assert isinstance(model, Qwen2ForCausalLM)
    assert model.config.vocab_size == len(tokenizer)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False
    )
    assert "hello" in rendered and rendered != "hello"
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id != tokenizer.pad_token_id


@pytest.mark.parametrize("language_model", ["t5", "opt"])
def test_blip2_processor_matches_model(language_model: str, tiny_blip2: Path, tiny_blip2_opt: Path) -> None:
    from PIL import Image
    from transformers import AutoProcessor, Blip2ForConditionalGeneration

    directory = tiny_blip2 if language_model == "t5" else tiny_blip2_opt
    assert _total_bytes(directory) < MAX_BYTES
    model = Blip2ForConditionalGeneration.from_pretrained(directory)
    processor = AutoProcessor.from_pretrained(directory)
    assert model.config.use_decoder_only_language_model is (language_model == "opt")
    assert processor.num_query_tokens == model.config.num_query_tokens
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index
    inputs = processor(images=[Image.new("RGB", (50, 20), (9, 9, 9))], text=["a question"], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, tiny.TINY_IMAGE_SIZE, tiny.TINY_IMAGE_SIZE)
    assert int((inputs["input_ids"] == model.config.image_token_index).sum()) == model.config.num_query_tokens


def test_same_seed_same_files_other_seed_other_weights(tmp_path: Path, tiny_flan_t5: Path) -> None:
    again = tiny.write_tiny_flan_t5(tmp_path / "again", seed=0)
    other = tiny.write_tiny_flan_t5(tmp_path / "other", seed=1)
    weights = (tiny_flan_t5 / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights
    assert (other / "tokenizer.json").read_bytes() == (tiny_flan_t5 / "tokenizer.json").read_bytes()


def test_weights_are_all_distinct(tiny_causal_lm: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    norms = [parameter for name, parameter in model.named_parameters() if "norm" in name]
    assert norms and all(not torch.allclose(norm, torch.ones_like(norm)) for norm in norms)


def test_unknown_blip2_language_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="t5.*opt"):
        tiny.write_tiny_blip2(tmp_path, language_model="llama")
