from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from harness.fixtures.tiny_encoders import TINY_PROJECTION
from retrievers.dual_encoders.encoders import BlipDualEncoder, ClipDualEncoder
from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
from retrievers.dual_encoders.preprocess import BLIP_224, CLIP_224

TEXTS = ["a red bus on a street", "a dog, is it big? yes, is it black? no", "two people sitting at a table"]


def blip(directory: Path, tmp_path: Path, **overrides: object) -> BlipDualEncoder:
    preprocessing = overrides.pop("preprocessing", BLIP_224)
    max_text_tokens = overrides.pop("max_text_tokens", 200)
    settings = EncoderSettings("blip", str(directory), preprocessing, max_text_tokens, **overrides)  # type: ignore[arg-type]
    encoder = load_encoder(settings, "cpu", tmp_path, progress=False)
    assert isinstance(encoder, BlipDualEncoder)
    return encoder


def test_blip_directory_gives_deterministic_unit_embeddings(tiny_blip: Path, tmp_path: Path) -> None:
    first, second = blip(tiny_blip, tmp_path), blip(tiny_blip, tmp_path)
    texts = first.encode_texts(TEXTS)
    assert texts.shape == (3, TINY_PROJECTION) and texts.dtype == torch.float32
    assert torch.allclose(texts.norm(dim=-1), torch.ones(3), atol=1e-6)
    assert torch.equal(texts, second.encode_texts(TEXTS))
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    images = first.encode_images(pixels)
    assert images.shape == (2, TINY_PROJECTION)
    assert torch.allclose(images.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.equal(images, second.encode_images(pixels))
    assert not torch.allclose(texts[0], texts[1])
    assert first.identity() == second.identity()


def test_batch_equals_one_by_one(tiny_blip: Path, tmp_path: Path) -> None:
    encoder = blip(tiny_blip, tmp_path)
    batch = encoder.encode_texts(TEXTS)
    singles = torch.cat([encoder.encode_texts([text]) for text in TEXTS])
    assert torch.allclose(batch, singles, atol=1e-6)


def test_truncation_keeps_the_beginning(tiny_blip: Path, tmp_path: Path) -> None:
    encoder = blip(tiny_blip, tmp_path, max_text_tokens=8)
    start = "a red bus on a street"  # [CLS] + 6 words, then one more word and [SEP] fill the 8 tokens
    same = encoder.encode_texts([start + " near a tree", start + " near the sky, is it blue? yes"])
    assert torch.equal(same[0], same[1])
    assert encoder.identity()["max_text_tokens"] == 8


def test_fingerprint_follows_weights_not_dtype(tiny_blip: Path, tiny_blip_other: Path, tmp_path: Path) -> None:
    base = blip(tiny_blip, tmp_path)
    other = blip(tiny_blip_other, tmp_path)
    half = blip(tiny_blip, tmp_path, dtype="bfloat16")
    assert base.weights_fingerprint != other.weights_fingerprint
    assert base.image_weights_fingerprint != other.image_weights_fingerprint
    assert half.weights_fingerprint == base.weights_fingerprint
    assert half.identity()["dtype"] == "bfloat16" and half.identity() != base.identity()
    embeddings = half.encode_texts(TEXTS)
    assert embeddings.dtype == torch.float32 and half.model.dtype == torch.bfloat16
    assert torch.allclose(embeddings, base.encode_texts(TEXTS), atol=0.05)


def test_other_image_size_interpolates_positions(tiny_blip: Path, tmp_path: Path) -> None:
    encoder = blip(tiny_blip, tmp_path, preprocessing=BLIP_224.with_size(288))
    assert encoder.interpolate_positions
    images = encoder.encode_images(torch.randn(2, 3, 288, 288))
    assert images.shape == (2, TINY_PROJECTION)
    assert not blip(tiny_blip, tmp_path).interpolate_positions


def test_clip_directory(tiny_clip: Path, tmp_path: Path) -> None:
    settings = EncoderSettings("clip", str(tiny_clip), CLIP_224, 77)
    encoder = load_encoder(settings, "cpu", tmp_path)
    assert isinstance(encoder, ClipDualEncoder)
    texts = encoder.encode_texts(TEXTS + ["word " * 200])  # longer than 77 tokens: truncated, still encodes
    images = encoder.encode_images(torch.randn(3, 3, 224, 224))
    assert texts.shape == (4, TINY_PROJECTION) and images.shape == (3, TINY_PROJECTION)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(4), atol=1e-6)
    assert torch.allclose(torch.cat([encoder.encode_texts([text]) for text in TEXTS]), texts[:3], atol=1e-6)


def test_clip_refuses_original_checkpoints(original_checkpoint: Path, tmp_path: Path) -> None:
    settings = EncoderSettings("clip", str(original_checkpoint), CLIP_224, 77)
    with pytest.raises(HarnessError, match="original CLIP checkpoints"):
        load_encoder(settings, "cpu", tmp_path)


def test_blip_embeddings_match_transformers_contrastive_scores(tiny_blip: Path, tmp_path: Path) -> None:
    encoder = blip(tiny_blip, tmp_path)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    tokens = encoder.tokenizer(TEXTS, padding="longest", return_tensors="pt")
    with torch.inference_mode():
        output = encoder.model(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            pixel_values=pixels,
            use_itm_head=False,
        )
    ours = encoder.encode_images(pixels) @ encoder.encode_texts(TEXTS).T
    assert torch.allclose(ours, output.itm_score, atol=1e-6)


def test_clip_embeddings_match_transformers(tiny_clip: Path, tmp_path: Path) -> None:
    encoder = load_encoder(EncoderSettings("clip", str(tiny_clip), CLIP_224, 77), "cpu", tmp_path)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    tokens = encoder.tokenizer(TEXTS, padding="longest", return_tensors="pt")
    with torch.inference_mode():
        output = encoder.model(**tokens, pixel_values=pixels)
    assert torch.allclose(encoder.encode_texts(TEXTS), output.text_embeds, atol=1e-6)
    assert torch.allclose(encoder.encode_images(pixels), output.image_embeds, atol=1e-6)
