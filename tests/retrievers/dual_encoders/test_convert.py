from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import BlipForImageTextRetrieval

from harness.errors import HarnessError
from harness.hashing import sha256_file
from retrievers.dual_encoders.convert import (
    convert_blip,
    convert_checkpoint,
    load_original_state_dict,
    resize_position_grid,
)
from retrievers.dual_encoders.encoders import DualEncoder
from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
from retrievers.dual_encoders.preprocess import BLIP_224

from .original_format import original_state_dict

TEXTS = ["a red bus on a street", "a dog, is it big? yes, is it black? no"]


def hf_model(directory: Path) -> BlipForImageTextRetrieval:
    return BlipForImageTextRetrieval.from_pretrained(directory, dtype=torch.float32).eval()


def encode(source: Path, cache: Path, size: int = 224, tokenizer: Path | None = None) -> DualEncoder:
    settings = EncoderSettings(
        "blip", str(source), BLIP_224.with_size(size), 200, tokenizer=str(tokenizer) if tokenizer else None
    )
    return load_encoder(settings, "cpu", cache, progress=False)


def save_original(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"model": state}, path)
    return path


def test_converted_checkpoint_reproduces_the_model_it_came_from(
    original_checkpoint: Path, tiny_blip: Path, tmp_path: Path
) -> None:
    out = convert_checkpoint(original_checkpoint, tmp_path / "converted", tokenizer=str(tiny_blip))
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    record = json.loads((out / "conversion.json").read_text())
    assert record["source_sha256"] == sha256_file(original_checkpoint)
    assert record["image_size"] == 224 and record["source_image_size"] == 224
    model_keys = len(hf_model(tiny_blip).state_dict())
    momentum = sum(1 for name in hf_model(tiny_blip).state_dict() if not name.startswith("itm_head."))
    assert record["dropped"] == {"buffer": 1, "momentum": momentum, "queue": 4, "temperature": 1, "text_decoder": 2}
    assert record["tolerated_missing"] == [] and model_keys > 0

    reference = encode(tiny_blip, tmp_path)
    converted = encode(out, tmp_path)
    pixels = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(converted.encode_texts(TEXTS), reference.encode_texts(TEXTS), atol=1e-6)
    assert torch.allclose(converted.encode_images(pixels), reference.encode_images(pixels), atol=1e-6)
    assert converted.weights_fingerprint == reference.weights_fingerprint
    assert converted.tokenizer_fingerprint == reference.tokenizer_fingerprint

    in_memory = encode(original_checkpoint, tmp_path, tokenizer=tiny_blip)  # the path a --retriever-model file takes
    assert in_memory.weights_fingerprint == reference.weights_fingerprint
    assert torch.allclose(in_memory.encode_texts(TEXTS), reference.encode_texts(TEXTS), atol=1e-6)


def test_wrappers_and_prefixes_are_unwrapped(tiny_blip: Path, tmp_path: Path) -> None:
    state = original_state_dict(hf_model(tiny_blip), with_unused=False)
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {f"module.{name}": tensor for name, tensor in state.items()}, "epoch": 1}, path)
    assert set(load_original_state_dict(path)) == set(state)
    converted = convert_blip(path, tokenizer=str(tiny_blip))
    assert converted.report.dropped == {}
    assert all(torch.equal(converted.model.state_dict()[k], v) for k, v in hf_model(tiny_blip).state_dict().items())


def test_unknown_key_is_an_error_listing_it(tiny_blip: Path, tmp_path: Path) -> None:
    state = original_state_dict(hf_model(tiny_blip))
    state["visual_encoder.blocks.0.attn.rel_pos_bias"] = torch.zeros(3)
    state["text_encoder.pooler.dense.weight"] = torch.zeros(64, 64)
    with pytest.raises(HarnessError, match=r"visual_encoder\.blocks\.0\.attn\.rel_pos_bias"):
        convert_blip(save_original(tmp_path / "extra.pth", state), tokenizer=str(tiny_blip))
    del state["visual_encoder.blocks.0.attn.rel_pos_bias"]
    with pytest.raises(HarnessError, match=r"unknown keys: text_encoder\.pooler\.dense\.weight"):
        convert_blip(save_original(tmp_path / "pooler.pth", state), tokenizer=str(tiny_blip))


def test_missing_key_is_an_error_listing_it(tiny_blip: Path, tmp_path: Path) -> None:
    state = original_state_dict(hf_model(tiny_blip))
    del state["visual_encoder.blocks.1.mlp.fc2.bias"]
    del state["text_encoder.encoder.layer.0.attention.self.query.weight"]
    with pytest.raises(HarnessError) as caught:
        convert_blip(save_original(tmp_path / "missing.pth", state), tokenizer=str(tiny_blip))
    message = str(caught.value)
    assert "vision_model.encoder.layers.1.mlp.fc2.bias" in message
    assert "text_encoder.encoder.layer.0.attention.self.query.weight" in message


def test_missing_itm_head_and_cross_attention_only_warn(
    tiny_blip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = {
        name: tensor
        for name, tensor in original_state_dict(hf_model(tiny_blip)).items()
        if not name.startswith("itm_head.") and ".crossattention." not in name
    }
    with caplog.at_level(logging.WARNING, logger="retrievers.dual_encoders.convert"):
        converted = convert_blip(save_original(tmp_path / "no-itm.pth", state), tokenizer=str(tiny_blip))
    assert "itm_head.weight" in converted.report.tolerated_missing
    assert any(".crossattention." in name for name in converted.report.tolerated_missing)
    assert "itm_head.weight" in caplog.text


def test_position_grid_is_resized_at_conversion(original_checkpoint: Path, tiny_blip: Path, tmp_path: Path) -> None:
    converted = convert_blip(original_checkpoint, tokenizer=str(tiny_blip), image_size=288)
    assert converted.model.config.vision_config.image_size == 288
    assert converted.report.source_image_size == 224
    positions = converted.model.vision_model.embeddings.position_embedding
    original = hf_model(tiny_blip).vision_model.embeddings.position_embedding
    assert positions.shape == (1, 1 + 9 * 9, original.shape[-1]) and original.shape[1] == 1 + 7 * 7
    assert torch.equal(positions[:, 0], original[:, 0])
    # Resizing at conversion time matches running the 224-px model with transformers' own interpolation.
    pixels = torch.randn(2, 3, 288, 288, generator=torch.Generator().manual_seed(2))
    out = convert_checkpoint(original_checkpoint, tmp_path / "at-288", tokenizer=str(tiny_blip), image_size=288)
    at_288 = encode(out, tmp_path, size=288)
    interpolated = encode(tiny_blip, tmp_path, size=288)
    assert not at_288.interpolate_positions and interpolated.interpolate_positions
    assert torch.allclose(at_288.encode_images(pixels), interpolated.encode_images(pixels), atol=1e-5)
    assert at_288.weights_fingerprint != interpolated.weights_fingerprint


def test_bad_image_size_and_untrusted_pickles_are_errors(
    original_checkpoint: Path, tiny_blip: Path, tmp_path: Path
) -> None:
    with pytest.raises(HarnessError, match="not a multiple of the patch size"):
        convert_blip(original_checkpoint, tokenizer=str(tiny_blip), image_size=250)
    pickled = tmp_path / "objects.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1.0)}, pickled)
    with pytest.raises(HarnessError, match="Python objects"):
        load_original_state_dict(pickled)


def test_tokenizer_larger_than_the_embedding_is_an_error(tiny_blip: Path, tmp_path: Path) -> None:
    state = original_state_dict(hf_model(tiny_blip))
    words = state["text_encoder.embeddings.word_embeddings.weight"]
    state["text_encoder.embeddings.word_embeddings.weight"] = words[:100].clone()
    with pytest.raises(HarnessError, match="tokenizer has"):
        convert_blip(save_original(tmp_path / "small-vocab.pth", state), tokenizer=str(tiny_blip))


def test_resize_matches_plain_bicubic() -> None:
    positions = torch.randn(1, 1 + 4 * 4, 8)
    resized = resize_position_grid(positions, patch_size=16, image_size=96)
    grid = positions[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    assert torch.equal(resized[:, 1:], expected.reshape(1, 36, 8))
