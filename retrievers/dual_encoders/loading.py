"""Turn a model source string into a ready dual encoder (BLIP or CLIP) on a device, in a dtype.

    settings = EncoderSettings("blip", "Salesforce/blip-itm-base-coco", BLIP_224, max_text_tokens=200)
    encoder = load_encoder(settings, device="cuda", cache_dir=Path("~/.cache/itir"))

Directories and hub ids go through ``from_pretrained``; original BLIP checkpoints (a file or a URL) are converted
in memory (``harness convert`` writes the same conversion to disk once, for faster later loads).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer, BlipForImageTextRetrieval, CLIPModel

from harness.errors import HarnessError
from retrievers.dual_encoders.convert import DEFAULT_TOKENIZER, convert_blip
from retrievers.dual_encoders.encoders import BlipDualEncoder, ClipDualEncoder, DualEncoder
from retrievers.dual_encoders.preprocess import ImagePreprocessing
from retrievers.dual_encoders.sources import fetch_checkpoint, float32_pretrained, from_pretrained, resolve_source

FAMILIES = ("blip", "clip")
log = logging.getLogger("harness.encoders")


@dataclass(frozen=True)
class EncoderSettings:
    """What to load and how to run it. ``tokenizer`` is used for original checkpoints (which hold none); for a
    directory or hub id it overrides the model's own tokenizer when given."""

    family: str
    model: str
    preprocessing: ImagePreprocessing
    max_text_tokens: int
    tokenizer: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown encoder family {self.family!r}; use one of {', '.join(FAMILIES)}")


def load_encoder(settings: EncoderSettings, device: str, cache_dir: Path, progress: bool = True) -> DualEncoder:
    """Load the weights named by ``settings.model`` and wrap them in the family's dual encoder."""
    source = resolve_source(settings.model)
    if settings.family == "clip":
        if source.kind in ("checkpoint", "url"):
            raise HarnessError(
                f"{settings.model}: original CLIP checkpoints are not converted; pass a transformers directory or "
                "hub id such as openai/clip-vit-base-patch16"
            )
        model = float32_pretrained(CLIPModel, source.location)
        tokenizer = from_pretrained(AutoTokenizer, settings.tokenizer or source.location)
        return ClipDualEncoder(
            model, tokenizer, settings.preprocessing, settings.max_text_tokens, settings.dtype, device
        )
    if source.kind in ("checkpoint", "url"):
        checkpoint = fetch_checkpoint(source, cache_dir, progress)
        converted = convert_blip(checkpoint, settings.tokenizer or DEFAULT_TOKENIZER, settings.preprocessing.size)
        model, tokenizer = converted.model, converted.tokenizer
    else:
        model = float32_pretrained(BlipForImageTextRetrieval, source.location)
        tokenizer = from_pretrained(AutoTokenizer, settings.tokenizer or source.location)
    encoder = BlipDualEncoder(model, tokenizer, settings.preprocessing, settings.max_text_tokens, settings.dtype, device)
    if source.kind == "directory":
        _warn_if_trained_otherwise(Path(source.location), encoder)
    return encoder


def _warn_if_trained_otherwise(directory: Path, encoder: BlipDualEncoder) -> None:
    """A `harness train chatir` checkpoint ranks best with the token limit and image size it was trained at."""
    try:
        trained = json.loads((directory / "training.json").read_text())["base_encoder"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for name, now, then in (("max_text_tokens", encoder.max_text_tokens, trained.get("max_text_tokens")),
                            ("image size", encoder.preprocessing.size, trained.get("preprocessing", {}).get("size"))):
        if then is not None and then != now:
            log.warning("%s was trained with %s %s; this run uses %s (pass the same, e.g. --retriever-arg "
                        "max_text_tokens=%s)", directory, name, then, now, then)
