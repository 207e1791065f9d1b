"""Fixtures of the dual-encoder tests: an original-format (Salesforce BLIP key names) checkpoint made from a tiny
transformers model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .original_format import original_state_dict


@pytest.fixture(scope="session")
def original_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_blip: Path) -> Path:
    """The tiny BLIP written the way Salesforce BLIP saves a retrieval model (with keys the converter drops)."""
    from transformers import BlipForImageTextRetrieval

    model = BlipForImageTextRetrieval.from_pretrained(tiny_blip, dtype=torch.float32)
    path = tmp_path_factory.mktemp("original") / "model_base_retrieval.pth"
    torch.save({"model": original_state_dict(model), "epoch": 5, "config": {"image_size": 224}}, path)
    return path
