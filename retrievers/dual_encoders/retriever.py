"""The dual-encoder retriever (BLIP zs / cocoft / chatir, CLIP): one class, four named argument bundles.

    retriever = cocoft(batch_size=128)                 # cheap: nothing is loaded yet
    retriever.prepare(search_space, context)           # loads the model, builds or reuses the image index
    retriever.rank(states).ranks                       # target's 0-based rank per dialogue state
    retriever.identity()                               # valid after prepare: it holds the weights fingerprint

The search-space matrix is cached on disk (harness EmbeddingCache) under the image side of the encoder's identity
(image-tower weights, preprocessing, dtype) and the ordered image list, so a second run, or another retriever whose
image tower is identical, reuses it. Ranking counts the images scoring strictly higher than the target
(harness.ranking: ties go to the target).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.devices import resolve_device
from harness.embedding_cache import EmbeddingCache
from harness.errors import ConfigError, HarnessError
from harness.images import load_rgb
from harness.protocols import RunContext
from harness.ranking import rank_targets
from harness.retrieval_view import EncoderView
from harness.types import QUERY_TRUNCATED, DialogueState, RankBatch, SearchSpace, batched
from retrievers.dual_encoders.encoders import DTYPES, DualEncoder
from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
from retrievers.dual_encoders.preprocess import BLIP_224, BLIP_384, CLIP_224, ImagePreprocessing

ZS_CHECKPOINT_URL = "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/model_base.pth"

@dataclass(frozen=True)
class Preset:
    """A named bundle of defaults; ``default_model`` None means the user must name the weights."""

    family: str
    default_model: str | None
    max_text_tokens: int
    preprocessing: ImagePreprocessing
    missing_model_message: str = ""


PRESETS: dict[str, Preset] = {
    "zs": Preset("blip", ZS_CHECKPOINT_URL, 200, BLIP_224),
    "cocoft": Preset("blip", "Salesforce/blip-itm-base-coco", 200, BLIP_224),
    # PlugIR's retriever: BLIP ViT-L fine-tuned on COCO retrieval, at its processor's 384 px.
    "cocoft-large": Preset("blip", "Salesforce/blip-itm-large-coco", 200, BLIP_384),
    "chatir": Preset(
        "blip",
        None,
        200,
        BLIP_224,
        "the chatir retriever has no public default: ChatIR's weights are released only as chatir_weights.ckpt "
        "from the ChatIR repository (github.com/levymsn/ChatIR); download it and pass it with "
        "--retriever-model PATH",
    ),
    "clip": Preset("clip", "openai/clip-vit-base-patch16", 77, CLIP_224),
}


class DualEncoderRetriever:
    """Ranks a search space by dot product between normalised query-text and image embeddings."""

    def __init__(self, preset: str, settings: EncoderSettings, batch_size: int = 64, device: str | None = None):
        self.preset = preset
        self.settings = settings
        self.batch_size = batch_size
        self.device = device
        self.encoder: DualEncoder | None = None
        self._images: torch.Tensor | None = None
        self.keep_top = 0  # best images listed per state, from the run context

    def identity(self) -> Mapping[str, Any]:
        """The encoder's identity (weights fingerprint, tokenizer, preprocessing, dtype) and the query settings.
        Valid after ``prepare``: the fingerprint needs the loaded weights."""
        encoder = self._loaded()
        return {
            "retriever": "dual-encoder",
            "preset": self.preset,
            "encoder": encoder.identity(),
            "query": {"text": "query_text", "max_text_tokens": encoder.max_text_tokens, "score": "dot"},
        }

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        """Load the model (once), then build or reuse the search-space embedding matrix on the device."""
        if search_space.image_root is None:
            raise ConfigError(f"the {self.preset} retriever embeds the search-space images: give --image-root")
        device = self.device or context.device
        self.keep_top = context.keep_top
        if self.encoder is None or self.encoder.device != device:
            self.encoder = load_encoder(self.settings, device, context.cache_dir, context.progress)
        matrix = image_index(self.encoder, search_space, context, self.batch_size, f"indexing search space ({self.preset})")
        self._images = torch.from_numpy(matrix).to(device=device, dtype=torch.float32)  # scores are float32

    @property
    def index(self) -> torch.Tensor | None:
        """The (search space x D) image embedding matrix on the device, once prepared (fused retrievers rank
        against it too)."""
        return self._images

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        """Encode every state's ``query_text`` (in batches of ``batch_size``) and rank the whole search space."""
        encoder = self._loaded()
        if self._images is None:
            raise RuntimeError("rank() was called before prepare(); prepare the retriever with a search space first")
        if not states:
            return RankBatch(ranks=())
        texts = [state.query_text for state in states]
        ranking = rank_targets(self._encode(texts), self._images, [state.target_index for state in states],
                               keep_top=self.keep_top)
        return ranking.batch(side_values={QUERY_TRUNCATED: tuple(map(float, encoder.truncated(texts)))})

    def retrieval_view(self) -> EncoderView:
        """What a retrieval-aware questioner sees (``harness.protocols.RetrievalView``); after ``prepare``."""
        if self._images is None:
            raise RuntimeError("retrieval_view() needs prepare() first")
        return EncoderView(self._loaded(), self._images, self.query_embeddings)

    def query_embeddings(self, states: Sequence[DialogueState]) -> list[torch.Tensor | None]:
        """Each state's query embedding, as ``rank`` scores it."""
        return list(self._encode([state.query_text for state in states])) if states else []

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        encoder = self._loaded()
        return torch.cat([encoder.encode_texts(chunk) for chunk in batched(list(texts), self.batch_size)])

    def _loaded(self) -> DualEncoder:
        if self.encoder is None:
            raise RuntimeError("the dual-encoder retriever loads its model in prepare(); call prepare() first")
        return self.encoder


def build_dual_encoder(
    preset: str,
    model: str | None = None,
    tokenizer: str | None = None,
    dtype: str = "float32",
    max_text_tokens: int | None = None,
    image_size: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> DualEncoderRetriever:
    """A dual-encoder retriever from a preset plus overrides. ``model``: original checkpoint file or URL,
    transformers directory or hub id; ``tokenizer``: for original checkpoints (default
    Salesforce/blip-itm-base-coco); ``device`` None means the run's device. Loads nothing until ``prepare``."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown dual-encoder preset {preset!r}; presets are {', '.join(PRESETS)}")
    defaults = PRESETS[preset]
    source = model or defaults.default_model
    if source is None:
        raise HarnessError(defaults.missing_model_message)
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    for name, value in (("batch_size", batch_size), ("max_text_tokens", max_text_tokens), ("image_size", image_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    preprocessing = defaults.preprocessing.with_size(image_size) if image_size else defaults.preprocessing
    settings = EncoderSettings(
        family=defaults.family,
        model=source,
        preprocessing=preprocessing,
        max_text_tokens=max_text_tokens or defaults.max_text_tokens,
        tokenizer=tokenizer,
        dtype=dtype,
    )
    return DualEncoderRetriever(preset, settings, batch_size, resolve_device(device) if device else None)


def image_index(encoder: DualEncoder, images: SearchSpace, context: RunContext, batch_size: int,
                description: str) -> np.ndarray:
    """The (images x D) embedding matrix of ``images`` under ``encoder``'s image side, built once in batches and
    cached (harness EmbeddingCache) under the image side's identity, the image list and the files' sizes."""
    return EmbeddingCache(context.cache_dir).load_or_build(
        {"encoder": encoder.image_identity(), "images": images.fingerprint, "image_files": images.files_fingerprint()},
        count=len(images), encode=_image_encoding(encoder, images), batch_size=batch_size, description=description,
        progress=context.progress,
    )


def _image_encoding(encoder: DualEncoder, search_space: SearchSpace) -> Callable[[int, int], np.ndarray]:
    """The EmbeddingCache callback: decode, preprocess and encode images ``start..stop-1`` as one batch."""

    def encode(start: int, stop: int) -> np.ndarray:
        try:
            files = [search_space.resolve(path) for path in search_space.paths[start:stop]]
        except ValueError as error:
            raise ConfigError(str(error)) from None
        pixels = encoder.preprocessing(load_rgb(files))
        return encoder.encode_images(pixels).cpu().numpy()

    return encode


def _preset_factory(name: str) -> Callable[..., DualEncoderRetriever]:
    # A partial of the shared builder; the registry describes factories by module and qualified name, which a bare
    # functools.partial lacks.
    factory = functools.partial(build_dual_encoder, name)
    factory.__module__ = __name__  # type: ignore[attr-defined]
    factory.__qualname__ = name  # type: ignore[attr-defined]
    factory.__doc__ = f"The {name!r} dual-encoder preset: build_dual_encoder({name!r}, ...)."
    return factory


zs = _preset_factory("zs")
cocoft = _preset_factory("cocoft")
cocoft_large = _preset_factory("cocoft-large")
chatir = _preset_factory("chatir")
clip = _preset_factory("clip")
