"""ADaFuSE: learned fusion of a text embedding with a generated-image embedding (PROTOCOL.md section 6).

    config = AdaFuseConfig.for_embed_dim(256)              # BLIP's contrastive space: 11,812,613 parameters
    model = AdaFuse(config).eval()
    out = model(text, image)                               # text, image: (B, 256) unit rows; image may be (B, K, 256)
    out.query, out.gate                                    # (B, 256) unit rows, (B,) text weight lambda
    save_checkpoint(Path("ckpt/best"), model, config, {"base_encoder": encoder.identity()})
    model, config, metadata = load_checkpoint(Path("ckpt/best"))

For retriever and training authors. With D the base encoder's embedding size:
- two projection heads, text and image, each Linear D -> 2D, GELU, dropout; concatenated to h (4D);
- gate lambda = sigmoid(MLP 4D -> 8D -> 1 on h) (GELU and dropout between the two layers);
- mixture of experts: 4 experts, each Linear 4D -> 8D, GELU, dropout 0.2; a router MLP 4D -> 2D -> 4 (GELU between)
  with a softmax; the router-weighted sum of the expert outputs goes through Linear 8D -> D and dropout;
- output: normalise(lambda t + (1 - lambda) v + moe).
With K > 1 generated images per round, v is the L2-normalised mean of their K unit embeddings (the model is trained
with one image per round; the normalised mean keeps v on the unit sphere it was trained on).

A checkpoint is a folder: ``model.safetensors`` (the fusion weights), ``config.json`` (the architecture, the base
encoder's identity and the training summary) and, for an end-to-end run, ``text_encoder.safetensors`` (the base
encoder's fine-tuned text side, which a retriever loads over its base weights).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from harness.atomic import atomic_write_bytes, atomic_write_text
from harness.errors import ConfigError, DataError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TEXT_ENCODER_FILE = "text_encoder.safetensors"
CHECKPOINT_FORMAT = "adafuse"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class AdaFuseConfig:
    """Layer sizes; the defaults are the published ones for BLIP's 256-d space (``for_embed_dim`` scales them)."""

    embed_dim: int = 256
    hidden: int = 512  # each projection head: D -> 2D
    joint: int = 1024  # h = [text head, image head]: 4D
    gate_hidden: int = 2048  # 8D
    experts: int = 4
    expert_hidden: int = 2048  # 8D
    router_hidden: int = 512  # 2D
    dropout: float = 0.2  # every dropout of the authors' module is 0.2 (checkpoints keep theirs in config.json)
    expert_dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.joint != 2 * self.hidden:
            raise ConfigError(f"joint ({self.joint}) must be twice hidden ({self.hidden}): h concatenates two heads")
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("dropout"):
                if not 0 <= value < 1:
                    raise ConfigError(f"{field.name} must be in [0, 1), got {value}")
            elif value < 1:
                raise ConfigError(f"{field.name} must be at least 1, got {value}")

    @classmethod
    def for_embed_dim(cls, embed_dim: int, **overrides: Any) -> AdaFuseConfig:
        """The published architecture scaled to a D-dimensional embedding space (2D, 4D, 8D, 8D, 2D)."""
        sizes = {"embed_dim": embed_dim, "hidden": 2 * embed_dim, "joint": 4 * embed_dim,
                 "gate_hidden": 8 * embed_dim, "expert_hidden": 8 * embed_dim, "router_hidden": 2 * embed_dim}
        return cls(**{**sizes, **overrides})

    def parameter_count(self) -> int:
        """Trainable parameters of ``AdaFuse(self)``, from the layer sizes (weights plus biases)."""
        d, joint, experts = self.embed_dim, self.joint, self.experts
        heads = 2 * (d * self.hidden + self.hidden)
        gate = joint * self.gate_hidden + self.gate_hidden + self.gate_hidden + 1
        expert_layers = experts * (joint * self.expert_hidden + self.expert_hidden)
        router = joint * self.router_hidden + self.router_hidden + self.router_hidden * experts + experts
        output = self.expert_hidden * d + d
        return heads + gate + expert_layers + router + output

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AdaFuseConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown AdaFuse config keys: {', '.join(sorted(unknown))}")
        return cls(**values)


class FusionOutput(NamedTuple):
    query: torch.Tensor  # (B, D) unit rows
    gate: torch.Tensor  # (B,) lambda, the text weight
    router: torch.Tensor  # (B, experts) softmax weights, for inspection


class AdaFuse(nn.Module):
    """The ADaFuSE fusion module: ``forward(text (B, D), image (B, D) or (B, K, D)) -> FusionOutput``."""

    def __init__(self, config: AdaFuseConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.text_head = nn.Sequential(nn.Linear(c.embed_dim, c.hidden), nn.GELU(), nn.Dropout(c.dropout))
        self.image_head = nn.Sequential(nn.Linear(c.embed_dim, c.hidden), nn.GELU(), nn.Dropout(c.dropout))
        self.gate = nn.Sequential(
            nn.Linear(c.joint, c.gate_hidden), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.gate_hidden, 1)
        )
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(c.joint, c.expert_hidden), nn.GELU(), nn.Dropout(c.expert_dropout))
            for _ in range(c.experts)
        )
        self.router = nn.Sequential(nn.Linear(c.joint, c.router_hidden), nn.GELU(), nn.Linear(c.router_hidden, c.experts))
        self.output = nn.Sequential(nn.Linear(c.expert_hidden, c.embed_dim), nn.Dropout(c.dropout))

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> FusionOutput:
        image = mean_image(image)
        if text.shape != image.shape or text.dim() != 2 or text.shape[1] != self.config.embed_dim:
            raise ValueError(f"AdaFuse({self.config.embed_dim}) got text {tuple(text.shape)} and image "
                             f"{tuple(image.shape)}; both must be (B, {self.config.embed_dim})")
        h = torch.cat([self.text_head(text), self.image_head(image)], dim=-1)
        gate = torch.sigmoid(self.gate(h)).squeeze(-1)
        router = torch.softmax(self.router(h), dim=-1)
        experts = torch.stack([expert(h) for expert in self.experts], dim=1)  # (B, E, 8D)
        moe = self.output((router.unsqueeze(-1) * experts).sum(dim=1))
        lam = gate.unsqueeze(-1)
        query = F.normalize(lam * text + (1 - lam) * image + moe, dim=-1)
        return FusionOutput(query, gate, router)


def mean_image(image: torch.Tensor) -> torch.Tensor:
    """(B, D) as it is, or the L2-normalised mean of (B, K, D) unit image embeddings."""
    if image.dim() == 3:
        return F.normalize(image.mean(dim=1), dim=-1)
    return image


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


class ParameterIncrease(NamedTuple):
    fusion: int
    base: int
    percent: float  # 100 * fusion / base

    def describe(self) -> str:
        return f"{self.fusion:,} fusion parameters, +{self.percent:.2f}% over the base encoder's {self.base:,}"


def parameter_increase(fusion: nn.Module | AdaFuseConfig, base: nn.Module | int) -> ParameterIncrease:
    """The fusion module's parameters and their increase over a base encoder (a module or a parameter count)."""
    fused = fusion.parameter_count() if isinstance(fusion, AdaFuseConfig) else parameter_count(fusion)
    base_count = base if isinstance(base, int) else parameter_count(base)
    if base_count < 1:
        raise ValueError("the base encoder has no parameters")
    return ParameterIncrease(fused, base_count, 100.0 * fused / base_count)


class LoadedCheckpoint(NamedTuple):
    model: AdaFuse
    config: AdaFuseConfig
    metadata: dict[str, Any]  # everything in config.json besides the architecture (base encoder, training summary)


def save_checkpoint(
    directory: Path,
    model: AdaFuse,
    config: AdaFuseConfig,
    extra: Mapping[str, Any] | None = None,
    text_encoder: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (``extra``: base encoder identity, training summary) into
    ``directory``, and ``text_encoder.safetensors`` when ``text_encoder`` (a fine-tuned text side) is given."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / MODEL_FILE, save(_cpu_contiguous(model.state_dict())))
    if text_encoder is not None:
        atomic_write_bytes(directory / TEXT_ENCODER_FILE, save(_cpu_contiguous(text_encoder)))
    else:
        (directory / TEXT_ENCODER_FILE).unlink(missing_ok=True)
    record = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": config.to_dict(), **(extra or {})}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(record, indent=1, sort_keys=True, default=str))
    return directory


def load_checkpoint(directory: Path, device: str = "cpu") -> LoadedCheckpoint:
    """The model (in eval mode, on ``device``), its config and the rest of config.json."""
    directory = Path(directory)
    config_path, model_path = directory / CONFIG_FILE, directory / MODEL_FILE
    if not (config_path.is_file() and model_path.is_file()):
        raise ConfigError(f"{directory} is not an ADaFuSE checkpoint: it needs {MODEL_FILE} and {CONFIG_FILE} "
                          "(the best/ folder that `harness train adafuse` writes, or its parent)")
    try:
        record = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(config_path, f"unreadable checkpoint config: {error}") from None
    if record.get("format") != CHECKPOINT_FORMAT:
        raise DataError(config_path, f"not an ADaFuSE checkpoint (format {record.get('format')!r})")
    config = AdaFuseConfig.from_dict(record.pop("config"))
    model = AdaFuse(config)
    model.load_state_dict(load_file(model_path))
    return LoadedCheckpoint(model.to(device).eval(), config, record)


def resolve_checkpoint_dir(path: Path) -> Path:
    """A checkpoint folder, or a training output folder (its ``best/``)."""
    path = Path(path)
    if not (path / MODEL_FILE).is_file() and (path / "best" / MODEL_FILE).is_file():
        return path / "best"
    return path


def _cpu_contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
