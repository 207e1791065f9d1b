"""The text side of a dual encoder (text encoder and text projection): what ChatIR training and ADaFuSE's
end-to-end mode update, saved alone and loaded back over the base weights.

    parameters = text_side_parameters(encoder)             # name -> parameter, for an optimizer
    load_text_side(encoder, Path("best/text_encoder.safetensors"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import load_file
from torch import nn

from harness.errors import ConfigError

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

# State-dict prefixes of each dual encoder's text side: what end-to-end training updates.
TEXT_PREFIXES = {
    "BlipDualEncoder": ("text_encoder.", "text_proj."),
    "ClipDualEncoder": ("text_model.", "text_projection."),
}


def text_side_parameters(encoder: DualEncoder) -> dict[str, nn.Parameter]:
    prefixes = TEXT_PREFIXES.get(type(encoder).__name__)
    if prefixes is None:
        raise ConfigError(f"end-to-end training does not know the text side of {type(encoder).__name__}")
    return {name: parameter for name, parameter in encoder.model.named_parameters() if name.startswith(prefixes)}


def load_text_side(encoder: DualEncoder, path: Path) -> None:
    """Load a fine-tuned text side (``text_encoder.safetensors``) over ``encoder``'s weights."""
    tensors = load_file(path)
    _, unexpected = encoder.model.load_state_dict(tensors, strict=False)
    if unexpected or set(text_side_parameters(encoder)) - set(tensors):
        raise ConfigError(f"{path} does not hold this encoder's text side (unexpected keys: {unexpected[:3]})")
