"""DAR, diffusion-augmented retrieval, over any base dual encoder: reformulate, generate, fuse.

    harness run --retriever dar --dar-base chatir --retriever-model chatir_weights.ckpt --benchmark flan-blip2 ...
    harness run --retriever dar --dar-variant released --dar-queries DAR_QUERIES.json --dar-images DAR_IMAGES ...

Per round and dialogue: the caption S_t comes from a reformulated-query file (``queries``) or from the LLM (R1);
the K image prompts are K copies of S_t (``image_prompts="caption"``) or K LLM-written prompts (R2, ``"llm"``); the
images come from a folder of pre-generated ``{dialogue_index}_{round}.jpg`` files (``images``) or from a diffusers
pipeline; text and images are embedded by the base encoder and fused (``retrievers.fusion``). The text-only rank of
the same query is recorded beside the fused one (``side_ranks["text_only"]``).

Variants (``variant``): ``paper`` = embedding fusion, K = 3 LLM-written prompts, (0.7, 0.3) for rounds 0-1 then
(0.5, 0.5), query = S_t alone; ``released`` = score fusion, one image per round drawn from S_t, (0.8, 0.2) then
(0.5, 0.5), query = S_0..S_t joined with ", " (the released code's behaviour). Every part is an option.

Caches (shared by every run and base encoder): reformulations (response cache), images (image cache, seeds derived
from each image's key), image embeddings (vector cache keyed by encoder image identity and image content). A second
DAR run over the same prompts with another base encoder generates no image and makes no LLM call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from harness.dialogue_files import read_chatir_dialogues
from harness.errors import ConfigError, DataError
from harness.hashing import sha256_file, stable_hash
from harness.image_cache import ImageCache
from harness.images import load_rgb
from harness.protocols import RunContext
from harness.ranking import target_ranks
from harness.types import DialogueState, RankBatch, SearchSpace, batched
from harness.vector_cache import VectorCache
from retrievers.diffusion import DiffusionGenerator, DiffusionSettings
from retrievers.dual_encoder import DualEncoderRetriever
from retrievers.fusion import FusionSchedule, fuse
from retrievers.reformulation import Reformulator

QUERY_MODES = ("entry", "join")
IMAGE_PROMPT_MODES = ("caption", "llm")


@dataclass(frozen=True)
class DialogueImage:
    dialogue_id: str
    round: int
    prompt: str
    replicate: int


class ImageSource(Protocol):
    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def images(self, requests: Sequence[DialogueImage]) -> list[Image.Image]: ...


class PregeneratedImages:
    """A folder of ``{dialogue_index}_{round}.jpg`` (or ``.png``) files, one image per (dialogue, round), as the
    DAR authors release them."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError(f"--dar-images {folder} is not a folder")
        self.folder = folder

    def identity(self) -> Mapping[str, Any]:
        files = sorted(self.folder.iterdir())
        listing = [(path.name, path.stat().st_size) for path in files if path.is_file()]
        return {"pregenerated": str(self.folder.resolve()), "files": len(listing), "listing": stable_hash(listing)}

    def load(self, context: RunContext) -> None:
        return None

    def images(self, requests: Sequence[DialogueImage]) -> list[Image.Image]:
        return load_rgb([self._path(request) for request in requests])

    def _path(self, request: DialogueImage) -> Path:
        if request.replicate > 0:
            raise ConfigError("a pre-generated image folder holds one image per (dialogue, round): use images_per_round=1")
        for suffix in (".jpg", ".png", ".jpeg"):
            path = self.folder / f"{request.dialogue_id}_{request.round}{suffix}"
            if path.is_file():
                return path
        raise DataError(self.folder, f"no image {request.dialogue_id}_{request.round}.jpg (or .png) for dialogue "
                        f"{request.dialogue_id}, round {request.round}")


class GeneratedImages:
    """Images drawn by a diffusers pipeline through the shared image cache; the pipeline loads on the first cache
    miss, so a fully cached run never holds its weights."""

    def __init__(self, settings: DiffusionSettings, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        self.generator: DiffusionGenerator | None = None
        self._cache: ImageCache | None = None

    def identity(self) -> Mapping[str, Any]:
        if self.generator is None:
            raise RuntimeError("load() the image source first")
        return {"diffusion": self.generator.identity(), "image_seed": self.seed}

    def load(self, context: RunContext) -> None:
        self.generator = DiffusionGenerator(self.settings, device=context.device, progress=context.progress)
        self._cache = ImageCache(context.cache_dir)

    def images(self, requests: Sequence[DialogueImage]) -> list[Image.Image]:
        assert self.generator is not None and self._cache is not None, "load() the image source first"
        return self.generator.cached_generate(
            self._cache,
            [request.prompt for request in requests],
            [request.replicate for request in requests],
            global_seed=self.seed,
        )


class DARRetriever:
    def __init__(
        self,
        base: DualEncoderRetriever,
        schedule: FusionSchedule,
        query_mode: str,
        image_prompt_mode: str,
        reformulator: Reformulator | None,
        queries: Path | None,
        image_source: ImageSource,
        batch_size: int = 64,
    ) -> None:
        if query_mode not in QUERY_MODES:
            raise ConfigError(f"DAR query_mode must be one of {', '.join(QUERY_MODES)}, got {query_mode!r}")
        if image_prompt_mode not in IMAGE_PROMPT_MODES:
            raise ConfigError(f"DAR image_prompts must be one of {', '.join(IMAGE_PROMPT_MODES)}")
        if reformulator is None and (queries is None or image_prompt_mode == "llm"):
            raise ConfigError("DAR needs an LLM (llm=...) unless captions come from --dar-queries and image prompts "
                              "are the captions themselves")
        self.base = base
        self.schedule = schedule
        self.query_mode = query_mode
        self.image_prompt_mode = image_prompt_mode
        self.reformulator = reformulator
        self.queries = queries
        self.image_source = image_source
        self.batch_size = batch_size
        self._query_captions: dict[str, tuple[str, ...]] = {}
        self._vectors: VectorCache | None = None
        self._image_digests: dict[int, str] = {}

    def identity(self) -> Mapping[str, Any]:
        return {
            "retriever": "dar",
            "base": dict(self.base.identity()),
            "fusion": {
                "mode": self.schedule.mode,
                "early": list(self.schedule.early),
                "late": list(self.schedule.late),
                "switch_round": self.schedule.switch_round,
                "images_per_round": self.schedule.images_per_round,
            },
            "query_mode": self.query_mode,
            "image_prompts": self.image_prompt_mode,
            "captions": {"file": str(self.queries), "sha256": sha256_file(self.queries)} if self.queries else "llm",
            "reformulator": dict(self.reformulator.identity()) if self.reformulator else None,
            "images": dict(self.image_source.identity()),
        }

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        self.base.prepare(search_space, context)
        if self.reformulator is not None:
            self.reformulator.load(context)
        if self.queries is not None:
            self._query_captions = {dialogue.dialogue_id: dialogue.turns
                                    for dialogue in read_chatir_dialogues(self.queries, expected_turns=None)}
        self.image_source.load(context)
        self._vectors = VectorCache(context.cache_dir)

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        if not states:
            return RankBatch(ranks=())
        captions = self._captions_up_to_round(states)
        texts = [caption[-1] if self.query_mode == "entry" else ", ".join(caption) for caption in captions]
        encoder = self.base.encoder
        assert encoder is not None and self.base.index is not None, "prepare() DAR first"
        text_embeddings = torch.cat([encoder.encode_texts(chunk) for chunk in batched(texts, self.batch_size)])
        image_embeddings = self._image_embeddings(states, [caption[-1] for caption in captions])
        weights = [self.schedule.weights(state.round) for state in states]
        fused = fuse(text_embeddings, image_embeddings.to(text_embeddings.device), weights, self.schedule.mode)
        targets = [state.target_index for state in states]
        return RankBatch(
            ranks=tuple(target_ranks(fused, self.base.index, targets)),
            side_ranks={"text_only": tuple(target_ranks(text_embeddings, self.base.index, targets))},
        )

    def _captions_up_to_round(self, states: Sequence[DialogueState]) -> list[tuple[str, ...]]:
        """S_0..S_t for every state: from the query file, or from R1 over every prefix (cached)."""
        if self.queries is not None:
            return [self._file_captions(state) for state in states]
        assert self.reformulator is not None
        prefixes = sorted({state.query_turns[: length] for state in states for length in range(1, state.round + 2)})
        by_prefix = dict(zip(prefixes, self.reformulator.captions(prefixes)))
        return [tuple(by_prefix[state.query_turns[: length]] for length in range(1, state.round + 2))
                for state in states]

    def _file_captions(self, state: DialogueState) -> tuple[str, ...]:
        entries = self._query_captions.get(state.dialogue_id)
        if entries is None or len(entries) <= state.round:
            raise DataError(self.queries, f"no reformulated caption for dialogue {state.dialogue_id}, round {state.round}")
        return entries[: state.round + 1]

    def _image_embeddings(self, states: Sequence[DialogueState], captions: Sequence[str]) -> torch.Tensor:
        count = self.schedule.images_per_round
        if self.image_prompt_mode == "llm":
            assert self.reformulator is not None
            prompts = self.reformulator.image_prompts(captions, count)
        else:
            prompts = [[caption] * count for caption in captions]
        requests = [DialogueImage(state.dialogue_id, state.round, prompt, replicate)
                    for state, state_prompts in zip(states, prompts) for replicate, prompt in enumerate(state_prompts)]
        images = self.image_source.images(requests)
        encoder = self.base.encoder
        assert encoder is not None and self._vectors is not None
        keys = [stable_hash({"encoder": encoder.image_identity(), "image": _content_digest(image)}) for image in images]

        def encode(missing: list[int]) -> np.ndarray:
            chunks = [encoder.encode_images(encoder.preprocessing([images[i] for i in chunk])).cpu().numpy()
                      for chunk in batched(missing, self.batch_size)]
            return np.concatenate(chunks)

        vectors = self._vectors.get_or_compute(keys, encode)
        return torch.from_numpy(vectors).reshape(len(states), count, -1)


def _content_digest(image: Image.Image) -> str:
    digest = hashlib.sha256(f"{image.mode}|{image.size}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


VARIANTS = {
    "paper": (FusionSchedule.paper(), "entry", "llm"),
    "released": (FusionSchedule.released(), "join", "caption"),
}


def build_dar(
    base: str = "chatir",
    model: str | None = None,
    tokenizer: str | None = None,
    dtype: str = "float32",
    max_text_tokens: int = 256,
    variant: str = "paper",
    query_mode: str | None = None,
    image_prompts: str | None = None,
    images_per_round: int | None = None,
    early_weights: Sequence[float] | None = None,
    late_weights: Sequence[float] | None = None,
    switch_round: int | None = None,
    llm: str | None = "hf-seq2seq",
    llm_args: Mapping[str, Any] | None = None,
    caption_prompt: str = "dar_caption",
    image_prompt: str = "dar_image_prompts",
    queries: str | None = None,
    images: str | None = None,
    diffusion: str = "auto",
    diffusion_model: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    size: int | None = None,
    diffusion_dtype: str = "auto",
    diffusion_batch_size: int = 4,
    image_seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
) -> DARRetriever:
    """DAR over the base preset ``base`` (zs, cocoft, chatir, clip; ``model`` overrides its weights).

    ``variant`` (paper | released) sets the defaults of ``query_mode`` (entry | join), ``image_prompts``
    (llm | caption), ``images_per_round`` (K), the fusion weights and ``switch_round``; each can be set on its own.
    ``llm`` names a registered text generator (hf-seq2seq, hf-chat, openai) built with ``llm_args`` (default
    ``{"model": "google/flan-t5-xl"}`` for hf-seq2seq); it is not loaded when ``queries`` (a reformulated-dialogue
    file) supplies the captions and the image prompts are the captions. ``images``: a folder of pre-generated
    ``{dialogue_index}_{round}.jpg`` files instead of a diffusers pipeline (``diffusion``: sd3 | sd21 | sdxl-turbo,
    or auto: SD3 without ``diffusion_model``, else the class in the directory's model_index.json)."""
    from harness.registry import REGISTRY
    from retrievers.dual_encoder import build_dual_encoder
    from retrievers.reformulation import load_caption_template, load_image_prompt_template

    if variant not in VARIANTS:
        raise ConfigError(f"unknown DAR variant {variant!r}; use one of {', '.join(VARIANTS)}")
    schedule, default_query_mode, default_image_prompts = VARIANTS[variant]
    schedule = FusionSchedule(
        mode=schedule.mode,
        early=_weights(early_weights, schedule.early, "early_weights"),
        late=_weights(late_weights, schedule.late, "late_weights"),
        switch_round=schedule.switch_round if switch_round is None else switch_round,
        images_per_round=schedule.images_per_round if images_per_round is None else images_per_round,
    )
    image_prompt_mode = image_prompts or default_image_prompts
    queries_path = Path(queries) if queries else None
    needs_llm = queries_path is None or image_prompt_mode == "llm"
    reformulator = None
    if needs_llm:
        if llm is None:
            raise ConfigError("DAR needs an LLM (llm=...) to write captions or image prompts")
        arguments = dict(llm_args) if llm_args is not None else (
            {"model": "google/flan-t5-xl"} if llm == "hf-seq2seq" else {})
        generator, _ = REGISTRY.build("generator", llm, **arguments)
        reformulator = Reformulator(
            generator, load_caption_template(caption_prompt), load_image_prompt_template(image_prompt)
        )
    if images:
        image_source: ImageSource = PregeneratedImages(Path(images))
    else:
        settings = DiffusionSettings(
            model=diffusion_model, family=diffusion,
            steps=steps, guidance_scale=guidance_scale, height=size, width=size, dtype=diffusion_dtype,
            batch_size=diffusion_batch_size,
        )
        image_source = GeneratedImages(settings, image_seed)
    base_retriever = build_dual_encoder(base, model=model, tokenizer=tokenizer, dtype=dtype,
                                        max_text_tokens=max_text_tokens, batch_size=batch_size, device=device)
    return DARRetriever(base_retriever, schedule, query_mode or default_query_mode, image_prompt_mode, reformulator,
                        queries_path, image_source, batch_size)


def _weights(given: Sequence[float] | None, default: tuple[float, float], name: str) -> tuple[float, float]:
    if given is None:
        return default
    if len(given) != 2:
        raise ConfigError(f"{name} takes two numbers (text, image), got {list(given)}")
    return float(given[0]), float(given[1])
