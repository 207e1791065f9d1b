"""The ADaFuSE authors' fusion module, as its bare state dict (``torch.save(module.state_dict())``, or a dict holding
it under one key), loaded into ours: ``--fusion-checkpoint adafuse.pt``.

Their keys map onto ours one to one (the layer sizes are the same: feature D, projections 2D, hidden 8D, 4 experts):

    text_projection_layer.*   -> text_head.0.*        image_projection_layer.* -> image_head.0.*
    dynamic_scalar.0.*        -> gate.0.*             dynamic_scalar.3.*       -> gate.3.*
    experts.N.0.*             -> experts.N.0.*        output_layer.*           -> output.0.*
    moe_router.0.*            -> router.0.*           moe_router.2.*           -> router.2.*

``logit_scale`` (a scalar: the log of 1 / temperature of their contrastive training) has no place in the fusion
module; its temperature is kept in the loaded checkpoint's metadata. Every dropout of their module is 0.2. A key
that maps to nothing, a key of ours left unfilled, or a shape that differs is an error listing them all, as the BLIP
checkpoint converter does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from harness.errors import DataError
from retrievers.adafuse.model import AdaFuse, AdaFuseConfig, LoadedCheckpoint
from retrievers.dual_encoders.convert import load_original_state_dict

AUTHORS_DROPOUT = 0.2
TEMPERATURE_KEY = "logit_scale"
KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), replacement) for pattern, replacement in (
    (r"^text_projection_layer\.", "text_head.0."),
    (r"^image_projection_layer\.", "image_head.0."),
    (r"^dynamic_scalar\.(0|3)\.", r"gate.\1."),
    (r"^experts\.(\d+)\.0\.", r"experts.\1.0."),
    (r"^moe_router\.(0|2)\.", r"router.\1."),
    (r"^output_layer\.", "output.0."),
))
ORIGINAL_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def is_original_checkpoint(path: Path) -> bool:
    """A file (not a folder of ours) with a torch checkpoint suffix."""
    return path.is_file() and path.suffix.lower() in ORIGINAL_SUFFIXES


def load_original_checkpoint(path: Path, device: str = "cpu") -> LoadedCheckpoint:
    """The authors' module in ours (eval mode, on ``device``); metadata names the file and their temperature."""
    state = load_original_state_dict(path)
    projection = state.get("text_projection_layer.weight")
    if not isinstance(projection, torch.Tensor) or projection.dim() != 2:
        raise DataError(path, "not an ADaFuSE state dict: no 2-d text_projection_layer.weight "
                        f"(keys: {', '.join(sorted(state)[:12])})")
    experts = len({key.split(".")[1] for key in state if key.startswith("experts.")})
    config = AdaFuseConfig.for_embed_dim(int(projection.shape[1]), experts=max(experts, 1), dropout=AUTHORS_DROPOUT,
                                         expert_dropout=AUTHORS_DROPOUT)
    model = AdaFuse(config)
    expected = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key == TEMPERATURE_KEY:
            continue
        target = next((rule.sub(replacement, key) for rule, replacement in KEY_RULES if rule.match(key)), None)
        if target is None or target not in expected or not isinstance(tensor, torch.Tensor):
            unknown.append(key)
        else:
            mapped[target] = tensor
    missing = sorted(set(expected) - set(mapped))
    shapes = [f"{key} {tuple(tensor.shape)} (ours {tuple(expected[key].shape)})" for key, tensor in sorted(mapped.items())
              if tuple(tensor.shape) != tuple(expected[key].shape)]
    if unknown or missing or shapes:
        problems = [f"{name}: {', '.join(values)}" for name, values in
                    (("unknown keys", sorted(unknown)), ("missing keys", missing), ("shape mismatches", shapes)) if values]
        raise DataError(path, "does not match the ADaFuSE module; " + "; ".join(problems))
    model.load_state_dict(mapped)
    metadata: dict[str, object] = {"original_checkpoint": str(path)}
    scale = state.get(TEMPERATURE_KEY)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        metadata["training_temperature"] = 1.0 / math.exp(float(scale))
    return LoadedCheckpoint(model.to(device).eval(), config, metadata)
