"""BLIP and CLIP dual encoders: texts and images into one L2-normalised contrastive space, in batches.

    model = BlipForImageTextRetrieval.from_pretrained(directory, dtype=torch.float32)
    encoder = BlipDualEncoder(model, AutoTokenizer.from_pretrained(directory), BLIP_224, max_text_tokens=200)
    texts = encoder.encode_texts(["a red bus, is it moving? no"])   # (1, 256) float32, unit rows
    images = encoder.encode_images(BLIP_224(load_rgb(paths)))       # (N, 256)
    scores = texts @ images.T

For retriever authors. The weights fingerprint is taken once, in float32, before any dtype cast, so a model loaded
from a directory and the same weights converted from an original checkpoint share an identity (and a cache entry)
whatever ``dtype`` they then run in.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import BlipForImageTextRetrieval, CLIPModel, PreTrainedTokenizerBase

from retrievers.dual_encoders.preprocess import ImagePreprocessing

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

log = logging.getLogger("harness.encoders")


def tensor_digests(module: torch.nn.Module) -> dict[str, str]:
    """sha256 of every persistent parameter and buffer (as float32 for floating tensors), by name."""
    digests = {}
    for name, tensor in module.state_dict().items():
        value = tensor.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(torch.float32)
        digest = hashlib.sha256(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(memoryview(value.contiguous().numpy()).cast("B"))
        digests[name] = digest.hexdigest()
    return digests


def combine_digests(digests: Mapping[str, str], prefixes: Sequence[str] = ("",)) -> str:
    """One fingerprint over the sorted names (under ``prefixes``) and their tensor digests."""
    digest = hashlib.sha256()
    for name in sorted(digests):
        if name.startswith(tuple(prefixes)):
            digest.update(f"{name}={digests[name]}\n".encode())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of the tokenizer class, casing and vocabulary: what decides the ids a text becomes."""
    payload = [
        type(tokenizer).__name__,
        getattr(tokenizer, "do_lower_case", None),
        sorted(tokenizer.get_vocab().items()),
    ]
    return hashlib.sha256(repr(payload).encode()).hexdigest()


class DualEncoder(ABC):
    """Shared tokenisation, placement and identity; subclasses say which modules give the two embeddings."""

    # State-dict prefixes of the modules that produce image embeddings: their fingerprint keys the image index, so
    # checkpoints that differ only in the text tower (ChatIR trains only the text side) share one index.
    image_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        preprocessing: ImagePreprocessing,
        max_text_tokens: int,
        dtype: str = "float32",
        device: str = "cpu",
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        digests = tensor_digests(model)
        self.weights_fingerprint = combine_digests(digests)
        self.image_weights_fingerprint = combine_digests(digests, self.image_prefixes)
        self.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
        self.model = model.to(device=device, dtype=DTYPES[dtype]).eval()
        self.tokenizer = tokenizer
        # Truncation keeps the beginning of a dialogue (the caption); right padding keeps the first token at 0.
        self.tokenizer.truncation_side = "right"
        self.tokenizer.padding_side = "right"
        self.preprocessing = preprocessing
        positions = self._text_positions()
        if max_text_tokens > positions:
            # DAR asks 256 tokens of every base, CLIP has 77 positions: past them the text model cannot run at all.
            log.info("max_text_tokens %d exceeds the %s text encoder's %d positions: queries are cut at %d tokens",
                     max_text_tokens, type(self).__name__, positions, positions)
        self.requested_max_text_tokens = max_text_tokens
        self.max_text_tokens = min(max_text_tokens, positions)
        self._cut_logged = False
        self.dtype = dtype
        self.device = device
        self.interpolate_positions = preprocessing.size != self._native_image_size()

    def image_identity(self) -> dict[str, Any]:
        """Everything that changes image embeddings: the key of a search-space index."""
        return {
            "class": type(self).__name__,
            "image_weights": self.image_weights_fingerprint,
            "preprocessing": self.preprocessing.identity(),
            "dtype": self.dtype,
        }

    def identity(self) -> dict[str, Any]:
        """Everything that changes either embedding (goes into manifests)."""
        return {
            **self.image_identity(),
            "weights": self.weights_fingerprint,
            "tokenizer": self.tokenizer_fingerprint,
            "max_text_tokens": self.max_text_tokens,
        }

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), D) float32 unit vectors on the encoder's device."""
        tokens = self.tokenizer(
            list(texts), padding="longest", truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        ).to(self.device)
        features = self._text_features(tokens["input_ids"], tokens["attention_mask"])
        return F.normalize(features.to(torch.float32), dim=-1)

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Which ``texts`` are longer than ``max_text_tokens`` tokens, so that the encoder sees only their start; the
        first cut this encoder meets is logged once (the run's manifest counts them all)."""
        lengths = self.tokenizer(list(texts), truncation=False)["input_ids"]
        cut = [len(ids) > self.max_text_tokens for ids in lengths]
        if any(cut) and not self._cut_logged:
            self._cut_logged = True
            log.debug("queries longer than %d tokens are cut to their first %d (the run manifest's diagnostics "
                        "count them; ChatIR's own cut is 200)", self.max_text_tokens, self.max_text_tokens)
        return cut

    def _text_positions(self) -> int:
        """Positions of the text model: the most tokens it can embed."""
        return int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, D) float32 unit vectors for preprocessed pixels (N, 3, H, W)."""
        pixels = pixel_values.to(device=self.device, dtype=DTYPES[self.dtype])
        return F.normalize(self._image_features(pixels).to(torch.float32), dim=-1)

    @abstractmethod
    def _native_image_size(self) -> int:
        """The resolution the vision tower was built for (its position grid)."""

    @abstractmethod
    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Projected, not yet normalised, text embeddings (B, D)."""

    @abstractmethod
    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, not yet normalised, image embeddings (N, D)."""


class BlipDualEncoder(DualEncoder):
    """BLIP's contrastive path: [CLS] states of the unimodal text encoder and of the ViT, each projected."""

    image_prefixes = ("vision_model.", "vision_proj.")
    model: BlipForImageTextRetrieval

    def _native_image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.model.text_proj(hidden[:, 0, :])

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.model.vision_model(
            pixel_values=pixel_values, interpolate_pos_encoding=self.interpolate_positions
        ).last_hidden_state
        return self.model.vision_proj(hidden[:, 0, :])


class ClipDualEncoder(DualEncoder):
    """CLIP: pooled text (end-of-text token) and pooled image states, each through its projection."""

    image_prefixes = ("vision_model.", "visual_projection.")
    model: CLIPModel

    def _native_image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.model.text_projection(pooled)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(
            pixel_values=pixel_values, interpolate_pos_encoding=self.interpolate_positions
        ).pooler_output
        return self.model.visual_projection(pooled)
