"""The ADaFuSE module: published sizes, forward contract, K-image averaging, checkpoint round trip."""

import json

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from retrievers.adafuse.model import (
    AdaFuse,
    AdaFuseConfig,
    load_checkpoint,
    parameter_count,
    parameter_increase,
    resolve_checkpoint_dir,
    save_checkpoint,
)


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_published_sizes_and_parameter_count_formula():
    config = AdaFuseConfig.for_embed_dim(256)
    assert config == AdaFuseConfig()  # the defaults are the published 256-d sizes
    assert (config.hidden, config.joint, config.gate_hidden, config.expert_hidden, config.router_hidden) == (
        512, 1024, 2048, 2048, 512)
    model = AdaFuse(config)
    assert parameter_count(model) == config.parameter_count() == 11_812_613
    # Full-size BLIP base retrieval (BlipForImageTextRetrieval) has 223,452,418 parameters: the published +5.29%.
    assert round(parameter_increase(config, 223_452_418).percent, 2) == 5.29
    for dim in (16, 24):
        scaled = AdaFuseConfig.for_embed_dim(dim)
        assert parameter_count(AdaFuse(scaled)) == scaled.parameter_count()
    with pytest.raises(ConfigError, match="twice"):
        AdaFuseConfig(joint=1000)


def test_forward_gives_unit_queries_and_gates_in_0_1_and_averages_k_images():
    torch.manual_seed(0)
    model = AdaFuse(AdaFuseConfig.for_embed_dim(16)).eval()
    text, images = unit(5, 16, seed=1), unit(5, 3, 16, seed=2)
    out = model(text, images)
    assert out.query.shape == (5, 16) and out.gate.shape == (5,) and out.router.shape == (5, 4)
    assert torch.allclose(out.query.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert ((out.gate > 0) & (out.gate < 1)).all()
    assert torch.allclose(out.router.sum(-1), torch.ones(5), atol=1e-6)
    mean = F.normalize(images.mean(dim=1), dim=-1)
    assert torch.equal(model(text, mean).query, out.query)
    with pytest.raises(ValueError, match="AdaFuse"):
        model(text, unit(5, 8))


def test_save_load_gives_identical_outputs(tmp_path):
    torch.manual_seed(3)
    config = AdaFuseConfig.for_embed_dim(16)
    model = AdaFuse(config).eval()
    text, image = unit(7, 16, seed=4), unit(7, 16, seed=5)
    extra = {"base_encoder": {"weights": "abc"}, "training": {"epoch": 3}}
    save_checkpoint(tmp_path / "best", model, config, extra)
    loaded, loaded_config, metadata = load_checkpoint(tmp_path / "best")
    assert loaded_config == config and metadata["base_encoder"] == {"weights": "abc"}
    assert metadata["training"] == {"epoch": 3}
    with torch.no_grad():
        expected, got = model(text, image), loaded(text, image)
    assert torch.equal(expected.query, got.query) and torch.equal(expected.gate, got.gate)
    assert json.loads((tmp_path / "best" / "config.json").read_text())["config"]["embed_dim"] == 16
    assert resolve_checkpoint_dir(tmp_path) == tmp_path / "best"
    with pytest.raises(ConfigError, match="not an ADaFuSE checkpoint"):
        load_checkpoint(tmp_path / "nothing")
