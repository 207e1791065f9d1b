"""The ``adafuse`` retriever: DAR's pipeline (reformulation, generated images, caches) with the static fusion
replaced by a trained ADaFuSE module.

    harness run --retriever adafuse --fusion-checkpoint checkpoints/adafuse --dar-base chatir \\
                --retriever-model chatir_weights.ckpt --benchmark chatgpt-blip2 --data-dir DATA --image-root COCO ...

Beside each fused rank a run records the text-only rank (``side_ranks["text_only"]``) and, per state, the gate
(``side_values["gate"]``, the text weight) and the text / generated-image cosine (``side_values["text_image_cosine"]``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.errors import ConfigError
from harness.hashing import sha256_file, stable_hash
from harness.turn_validity import InvalidPolicy
from retrievers.adafuse.model import (
    CONFIG_FILE,
    MODEL_FILE,
    TEXT_ENCODER_FILE,
    AdaFuse,
    LoadedCheckpoint,
    load_checkpoint,
    mean_image,
    resolve_checkpoint_dir,
)
from retrievers.adafuse.original import is_original_checkpoint, load_original_checkpoint
from retrievers.dar.retriever import VARIANTS, DARRetriever, FusedQueries, build_pipeline
from retrievers.dual_encoders.text_side import load_text_side

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

log = logging.getLogger("harness.adafuse")


class LearnedFuser:
    """An ADaFuSE checkpoint: ``harness train adafuse``'s ``best/`` folder (or the training folder holding it), or
    the authors' state dict file (``retrievers.adafuse.original``).

    Runs on the base encoder's device. The K image embeddings of a round are averaged and re-normalised (v); the
    side values are the gate lambda (text weight) and cos(t, v). The checkpoint's embedding size must equal the
    encoder's; a checkpoint trained over another base encoder is used with a warning. A checkpoint from end-to-end
    training carries a fine-tuned text side, which ``prepare`` loads over the base encoder's text weights (the
    encoder's weights fingerprint then covers it; its image side, hence the image index, is unchanged)."""

    def __init__(self, checkpoint: Path) -> None:
        path = Path(checkpoint)
        self._original: LoadedCheckpoint | None = None
        if is_original_checkpoint(path):  # the authors' state dict, converted in memory
            self._original = load_original_checkpoint(path)
            self.directory = path
            self._text_file = None
            self._digests = {path.name: sha256_file(path)}
            self._config = self._original.config.to_dict()
        else:
            self.directory = resolve_checkpoint_dir(path)
            for name in (MODEL_FILE, CONFIG_FILE):
                if not (self.directory / name).is_file():
                    raise ConfigError(f"--fusion-checkpoint {checkpoint}: no {name} (give the best/ folder that "
                                      "`harness train adafuse` writes, or its parent, or the authors' .pt file)")
            self._text_file = self.directory / TEXT_ENCODER_FILE
            self._digests = {name: sha256_file(self.directory / name) for name in (MODEL_FILE, CONFIG_FILE)}
            if self._text_file.is_file():
                self._digests[TEXT_ENCODER_FILE] = sha256_file(self._text_file)
            self._config = json.loads((self.directory / CONFIG_FILE).read_text(encoding="utf-8"))["config"]
        self.model: AdaFuse | None = None
        self.metadata: dict[str, Any] = {}
        self.device = "cpu"

    def identity(self) -> Mapping[str, Any]:
        return {"learned": "adafuse", "checkpoint": str(self.directory.resolve()), "sha256": dict(self._digests),
                "config": self._config, "image_aggregation": "normalised mean",
                **({"format": "original state dict"} if self._original is not None else {})}

    def prepare(self, encoder: DualEncoder) -> None:
        if self._original is not None:
            model, config, metadata = self._original
            model = model.to(encoder.device)
        else:
            model, config, metadata = load_checkpoint(self.directory, device=encoder.device)
        dimension = encoder.encode_texts(["a"]).shape[1]
        if dimension != config.embed_dim:
            raise ConfigError(f"the ADaFuSE checkpoint {self.directory} fuses {config.embed_dim}-d embeddings but "
                              f"the base encoder's are {dimension}-d: train it over this base encoder")
        # Compare with the base weights as loaded (before any fine-tuned text side), in canonical JSON form.
        base_weights = getattr(encoder, "_adafuse_base_weights", encoder.weights_fingerprint)
        current = {**encoder.identity(), "weights": base_weights}
        recorded = metadata.get("base_encoder")
        if recorded and stable_hash(recorded) != stable_hash(current):
            log.warning("the ADaFuSE checkpoint %s was trained over another base encoder (recorded weights %s, in "
                        "use %s); its fusion may not fit these embeddings", self.directory,
                        str(recorded.get("weights", "?"))[:12], str(base_weights)[:12])
        if (self._text_file is not None and self._text_file.is_file()
                and getattr(encoder, "_adafuse_text_side", None) != str(self._text_file)):
            if hasattr(encoder, "_adafuse_text_side"):
                raise ConfigError("this base encoder already carries another checkpoint's fine-tuned text side")
            load_text_side(encoder, self._text_file)
            encoder._adafuse_base_weights = base_weights  # type: ignore[attr-defined]
            encoder._adafuse_text_side = str(self._text_file)  # type: ignore[attr-defined]
            encoder.weights_fingerprint = stable_hash({"base": base_weights,
                                                       "adafuse_text_side": self._digests[self._text_file.name]})
        self.model, self.metadata, self.device = model, metadata, encoder.device

    @torch.inference_mode()
    def fuse(self, text: torch.Tensor, images: torch.Tensor, rounds: Sequence[int]) -> FusedQueries:
        assert self.model is not None, "prepare() the learned fuser first"
        text = text.to(self.device)
        image = mean_image(images.to(self.device))
        output = self.model(text, image)
        cosine = (text * image).sum(dim=-1)
        return FusedQueries(output.query, {"gate": tuple(output.gate.cpu().tolist()),
                                           "text_image_cosine": tuple(cosine.cpu().tolist())})


def build_adafuse(
    fusion_checkpoint: str,
    base: str = "chatir",
    model: str | None = None,
    tokenizer: str | None = None,
    dtype: str = "float32",
    max_text_tokens: int = 256,
    variant: str = "released",
    query_mode: str | None = None,
    image_prompts: str | None = None,
    images_per_round: int | None = None,
    llm: str | None = "hf-seq2seq",
    llm_args: Mapping[str, Any] | None = None,
    caption_prompt: str = "dar_caption",
    image_prompt: str = "dar_image_prompts",
    clean_reformulations: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    queries: str | None = None,
    images: str | None = None,
    diffusion: str = "auto",
    diffusion_model: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    size: int | None = None,
    diffusion_dtype: str = "auto",
    diffusion_batch_size: int = 4,
    max_sequence_length: int | None = None,
    image_seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
) -> DARRetriever:
    """ADaFuSE: DAR's reformulation, images and caches, fused by the learned module in ``fusion_checkpoint``
    (``harness train adafuse``'s output folder or its ``best/``) instead of static weights.

    The options are DAR's (see ``build_dar``) less the fusion weights. ``variant`` sets the image defaults as for
    DAR (released: one image per round drawn from the round's caption, as ADaFuSE is trained; paper: K = 3
    LLM-written prompts, averaged); the query is the round's own caption (``query_mode="entry"``, as ADaFuSE
    uses) unless ``query_mode`` says otherwise. Run it beside DAR over the same base, variant and images to
    compare Hits@10 and the degradation analysis on identical images."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown DAR variant {variant!r}; use one of {', '.join(VARIANTS)}")
    schedule, _, default_image_prompts = VARIANTS[variant]
    return build_pipeline(
        "adafuse", LearnedFuser(Path(fusion_checkpoint)),
        schedule.images_per_round if images_per_round is None else images_per_round, query_mode or "entry",
        image_prompts or default_image_prompts, base=base, model=model, tokenizer=tokenizer, dtype=dtype,
        max_text_tokens=max_text_tokens, llm=llm, llm_args=llm_args, caption_prompt=caption_prompt,
        image_prompt=image_prompt, llm_policy=InvalidPolicy(on_invalid, max_resamples),
        clean_reformulations=clean_reformulations, queries=queries, images=images, diffusion=diffusion,
        diffusion_model=diffusion_model, steps=steps, guidance_scale=guidance_scale, size=size,
        diffusion_dtype=diffusion_dtype, diffusion_batch_size=diffusion_batch_size, max_sequence_length=max_sequence_length,
        image_seed=image_seed,
        batch_size=batch_size, device=device,
    )
