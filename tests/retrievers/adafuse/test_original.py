"""The authors' ADaFuSE state dict (their key names and shapes, as the issue lists them) loads into our module and
fuses exactly as ours does with the same weights; anything else is refused with every bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.errors import DataError
from retrievers.adafuse.model import AdaFuse, AdaFuseConfig
from retrievers.adafuse.original import load_original_checkpoint
from retrievers.adafuse.retriever import LearnedFuser

# Their module at feature 256, projection 512, hidden 2048: every key and shape.
AUTHORS_SHAPES = {
    "logit_scale": (),
    "text_projection_layer.weight": (512, 256), "text_projection_layer.bias": (512,),
    "image_projection_layer.weight": (512, 256), "image_projection_layer.bias": (512,),
    "dynamic_scalar.0.weight": (2048, 1024), "dynamic_scalar.0.bias": (2048,),
    "dynamic_scalar.3.weight": (1, 2048), "dynamic_scalar.3.bias": (1,),
    **{f"experts.{n}.0.{part}": shape for n in range(4) for part, shape in (("weight", (2048, 1024)), ("bias", (2048,)))},
    "moe_router.0.weight": (512, 1024), "moe_router.0.bias": (512,),
    "moe_router.2.weight": (4, 512), "moe_router.2.bias": (4,),
    "output_layer.weight": (256, 2048), "output_layer.bias": (256,),
}
OURS = {"text_projection_layer": "text_head.0", "image_projection_layer": "image_head.0",
        "dynamic_scalar.0": "gate.0", "dynamic_scalar.3": "gate.3", "moe_router.0": "router.0",
        "moe_router.2": "router.2", "output_layer": "output.0"}


def _authors_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {key: 0.05 * torch.randn(shape, generator=generator) for key, shape in AUTHORS_SHAPES.items()}
    state["logit_scale"] = torch.tensor(2.6592)  # log(1 / 0.07)
    return state


def _ours_from(state: dict[str, torch.Tensor]) -> AdaFuse:
    ours = AdaFuse(AdaFuseConfig.for_embed_dim(256)).eval()
    renamed = {}
    for key, tensor in state.items():
        if key == "logit_scale":
            continue
        prefix, _, leaf = key.rpartition(".")
        renamed[f"{OURS.get(prefix, prefix)}.{leaf}"] = tensor
    ours.load_state_dict(renamed)
    return ours


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "under-a-key"])
def test_the_authors_state_dict_fuses_exactly_as_ours_with_the_same_weights(tmp_path: Path, wrapped: bool) -> None:
    state = _authors_state()
    path = tmp_path / "adafuse.pt"
    torch.save({"fusion": state, "epoch": 7} if wrapped else state, path)
    loaded = load_original_checkpoint(path)
    assert loaded.config.dropout == loaded.config.expert_dropout == 0.2
    assert loaded.metadata["training_temperature"] == pytest.approx(0.07, rel=1e-4)
    generator = torch.Generator().manual_seed(1)
    text = torch.nn.functional.normalize(torch.randn(5, 256, generator=generator), dim=-1)
    image = torch.nn.functional.normalize(torch.randn(5, 256, generator=generator), dim=-1)
    with torch.no_grad():
        theirs, ours = loaded.model(text, image), _ours_from(state)(text, image)
    assert torch.equal(theirs.query, ours.query) and torch.equal(theirs.gate, ours.gate)
    fuser = LearnedFuser(path)
    assert fuser.identity()["format"] == "original state dict" and fuser.identity()["config"]["embed_dim"] == 256


def test_a_state_dict_that_is_not_the_authors_module_lists_every_bad_key(tmp_path: Path) -> None:
    state = _authors_state()
    state["experts.1.0.weight"] = torch.zeros(2048, 1000)
    del state["moe_router.2.bias"]
    state["extra_head.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(DataError) as error:
        load_original_checkpoint(tmp_path / "bad.pt")
    message = str(error.value)
    assert "unknown keys: extra_head.weight" in message and "missing keys: router.2.bias" in message
    assert "experts.1.0.weight (2048, 1000) (ours (2048, 1024))" in message


def test_new_modules_default_to_the_authors_dropout() -> None:
    assert AdaFuseConfig.for_embed_dim(256).dropout == 0.2
    assert AdaFuseConfig.from_dict({**AdaFuseConfig.for_embed_dim(16).to_dict(), "dropout": 0.1}).dropout == 0.1
