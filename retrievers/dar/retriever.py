"""DAR, diffusion-augmented retrieval, over any base dual encoder: reformulate, generate, fuse.

    harness run --retriever dar --dar-base chatir --retriever-model chatir_weights.ckpt --benchmark flan-blip2 ...
    harness run --retriever dar --dar-variant released --dar-queries DAR_QUERIES.json --dar-images DAR_IMAGES ...

Per round and dialogue: the caption S_t comes from a reformulated-query file (``queries``) or from the LLM (R1);
the K image prompts are K copies of S_t (``image_prompts="caption"``) or K LLM-written prompts (R2, ``"llm"``); the
images come from a folder of pre-generated images, one per (dialogue, round), named ``{dialogue_index}_{round}.jpg``
or ``round{round}/{dialogue_index}.jpg`` (``images``, K = 1; ``retrievers.dar.image_layout``) or from a diffusers
pipeline; text and images are embedded by the base encoder and fused by a ``Fuser``: ``StaticFuser`` (DAR's fixed
weights, ``retrievers.dar.fusion``) or ADaFuSE's learned one (``retrievers.adafuse.retriever``, which builds on this
module; this module imports nothing of ADaFuSE). The text-only rank of the same query is recorded beside the
fused one (``side_ranks["text_only"]``); a learned fuser adds per-state ``side_values``: ``gate`` (its text weight)
and ``text_image_cosine`` (between the text embedding and the mean image embedding).

Variants (``variant``): ``paper`` = embedding fusion, K = 3 LLM-written prompts, (0.7, 0.3) for rounds 0-1 then
(0.5, 0.5), query = S_t alone; ``released`` = score fusion, one image per round drawn from S_t, (0.8, 0.2) then
(0.5, 0.5), query = S_0..S_t joined with ", " (the released code's behaviour). Every part is an option.

Record i of a query file belongs to the benchmark's dialogue i (a dialogue's id is its record index) and its ``img``
must be that dialogue's target: a record missing or naming another image is a ``DataError``, never a silent
mismatch.

Caches (shared by every run and base encoder): reformulations (response cache), images (image cache, seeds derived
from each image's key), image embeddings (vector cache keyed by encoder image identity and image content). The LLM
and the diffusion pipeline load on their first cache miss, so a second DAR run over the same prompts with another
base encoder generates no image, makes no LLM call and loads neither model. ``usage()`` counts images drawn, image
cache hits and LLM calls; every ranked batch logs them (DEBUG, with the counts in the record's ``dar_usage``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import torch
from PIL import Image

from harness.dialogue_files import read_chatir_dialogues
from harness.errors import ConfigError, DataError
from harness.hashing import sha256_file, stable_hash
from harness.image_cache import ImageCache
from harness.images import load_rgb
from harness.protocols import Generated, RunContext
from harness.ranking import rank_targets
from harness.retrieval_view import EncoderView
from harness.turn_validity import InvalidPolicy, InvalidTurn
from harness.types import PROMPTS_TRUNCATED, QUERY_TRUNCATED, DialogueState, RankBatch, SearchSpace, batched
from harness.usage import usage_of
from harness.vector_cache import VectorCache
from retrievers.dar.diffusion import DiffusionGenerator, DiffusionSettings
from retrievers.dar.fusion import FusionSchedule, fuse
from retrievers.dar.image_layout import detect_layout, generated_image_path
from retrievers.dar.reformulation import Reformulator
from retrievers.dual_encoders.retriever import DualEncoderRetriever

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

log = logging.getLogger("harness.dar")
QUERY_MODES = ("entry", "join")
IMAGE_PROMPT_MODES = ("caption", "llm")
USAGE_FIELD = "dar_usage"  # the log record attribute holding DARRetriever.usage() (read by `harness bench dar`)


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

    def truncated_prompts(self, requests: Sequence[DialogueImage]) -> list[bool] | None:
        """Per request, whether its prompt is cut at the generator's text encoder (None: prompts draw nothing)."""

    def image_keys(self, requests: Sequence[DialogueImage]) -> list[str]:
        """Per request, what names its image independently of where caches live: the image cache key, or the file
        name inside the pre-generated folder (for the run's trace)."""

    def usage(self) -> dict[str, int]:
        """Images drawn and image cache hits so far."""


class PregeneratedImages:
    """A folder of pre-generated images, one per (dialogue, round), as the DAR authors release them: in either
    layout ADaFuSE training reads (``retrievers.adafuse.data``), ``{dialogue_index}_{round}.jpg`` files or
    ``round{round}/{dialogue_index}.jpg`` (``.png``, ``.jpeg`` too). Refused at construction for K > 1, before any
    model loads."""

    def __init__(self, folder: Path, images_per_round: int) -> None:
        if not folder.is_dir():
            raise ConfigError(f"--dar-images {folder} is not a folder")
        if images_per_round != 1:
            raise ConfigError(f"--dar-images {folder} holds one image per (dialogue, round) but this DAR setting "
                              f"asks for {images_per_round} (images_per_round): add --retriever-arg images_per_round=1 "
                              "or use --dar-variant released")
        self.folder = folder
        self.layout = detect_layout(folder)

    def identity(self) -> Mapping[str, Any]:
        # Relative paths: a flat folder lists as before the round layout existed, so its runs still resume.
        files = sorted(self.folder.glob("*" if self.layout == "flat" else "round*/*"))
        listing = [(path.relative_to(self.folder).as_posix(), path.stat().st_size) for path in files if path.is_file()]
        return {"pregenerated": str(self.folder.resolve()), "files": len(listing), "listing": stable_hash(listing)}

    def load(self, context: RunContext) -> None:
        return None

    def images(self, requests: Sequence[DialogueImage]) -> list[Image.Image]:
        return load_rgb([generated_image_path(self.folder, self.layout, request.dialogue_id, request.round)
                         for request in requests])

    def truncated_prompts(self, requests: Sequence[DialogueImage]) -> list[bool] | None:
        return None

    def image_keys(self, requests: Sequence[DialogueImage]) -> list[str]:
        return [generated_image_path(self.folder, self.layout, request.dialogue_id, request.round)
                .relative_to(self.folder).as_posix() for request in requests]

    def usage(self) -> dict[str, int]:
        return {"images_generated": 0, "image_cache_hits": 0}


class GeneratedImages:
    """Images drawn by a diffusers pipeline through the shared image cache; the pipeline loads on the first cache
    miss, so a fully cached run never holds its weights."""

    def __init__(self, settings: DiffusionSettings, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        self.generator: DiffusionGenerator | None = None
        self._cache: ImageCache | None = None

    def identity(self) -> Mapping[str, Any]:
        """The generator identity (what image keys hold) plus the resolved settings, batch size included: it stays
        out of the keys but can move a pixel by one level (``retrievers.dar.diffusion``), so the manifest records it."""
        if self.generator is None:
            raise RuntimeError("load() the image source first")
        return {"diffusion": self.generator.identity(), "settings": self.generator.settings_record(),
                "image_seed": self.seed}

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

    def truncated_prompts(self, requests: Sequence[DialogueImage]) -> list[bool] | None:
        assert self.generator is not None, "load() the image source first"
        return self.generator.truncated([request.prompt for request in requests])

    def image_keys(self, requests: Sequence[DialogueImage]) -> list[str]:
        assert self.generator is not None, "load() the image source first"
        drawn = self.generator.requests([request.prompt for request in requests],
                                        [request.replicate for request in requests], global_seed=self.seed)
        return [request.key for request in drawn]

    def usage(self) -> dict[str, int]:
        return {"images_generated": self.generator.generated if self.generator else 0,
                "image_cache_hits": self._cache.hits if self._cache else 0}


class ImageBatch(NamedTuple):
    """The K images of every state of a batch."""

    embeddings: torch.Tensor  # (B, K, D)
    prompts_cut: tuple[float, ...] | None  # per state, how many of its prompts the generator cut (None: pre-generated)
    prompts: list[tuple[str, ...]]  # per state, its K image prompts
    keys: list[tuple[str, ...]]  # per state, what names each of its images (ImageSource.image_keys)


class FusedQueries(NamedTuple):
    queries: torch.Tensor  # (B, D), ranked by dot product against the search space
    side_values: Mapping[str, tuple[float, ...]]  # per-state diagnostics (RankBatch.side_values)


class Fuser(Protocol):
    """Turns text embeddings (B, D) and generated-image embeddings (B, K, D) of states at ``rounds`` into queries."""

    def identity(self) -> Mapping[str, Any]: ...

    def prepare(self, encoder: DualEncoder) -> None:
        """Called once the base encoder is loaded (device, embedding size, identity)."""

    def fuse(self, text: torch.Tensor, images: torch.Tensor, rounds: Sequence[int]) -> FusedQueries: ...


class StaticFuser:
    """DAR's fixed-weight fusion (``retrievers.dar.fusion.fuse``) under a ``FusionSchedule``; no side values."""

    def __init__(self, schedule: FusionSchedule) -> None:
        self.schedule = schedule

    def identity(self) -> Mapping[str, Any]:
        return {
            "mode": self.schedule.mode,
            "early": list(self.schedule.early),
            "late": list(self.schedule.late),
            "switch_round": self.schedule.switch_round,
            "images_per_round": self.schedule.images_per_round,
            "image_aggregate": self.schedule.image_aggregate,
        }

    def prepare(self, encoder: DualEncoder) -> None:
        return None

    def fuse(self, text: torch.Tensor, images: torch.Tensor, rounds: Sequence[int]) -> FusedQueries:
        weights = [self.schedule.weights(round_) for round_ in rounds]
        return FusedQueries(fuse(text, images.to(text.device), weights, self.schedule.mode,
                                 self.schedule.image_aggregate), {})


class DARRetriever:
    def __init__(
        self,
        base: DualEncoderRetriever,
        fuser: Fuser,
        images_per_round: int,
        query_mode: str,
        image_prompt_mode: str,
        reformulator: Reformulator | None,
        queries: Path | None,
        image_source: ImageSource,
        batch_size: int = 64,
        name: str = "dar",
    ) -> None:
        if query_mode not in QUERY_MODES:
            raise ConfigError(f"DAR query_mode must be one of {', '.join(QUERY_MODES)}, got {query_mode!r}")
        if image_prompt_mode not in IMAGE_PROMPT_MODES:
            raise ConfigError(f"DAR image_prompts must be one of {', '.join(IMAGE_PROMPT_MODES)}")
        if reformulator is None and (queries is None or image_prompt_mode == "llm"):
            raise ConfigError("DAR needs an LLM (llm=...) unless captions come from --dar-queries and image prompts "
                              "are the captions themselves")
        if images_per_round < 1:
            raise ConfigError(f"images_per_round must be at least 1, got {images_per_round}")
        self.base = base
        self.fuser = fuser
        self.images_per_round = images_per_round
        self.name = name
        self.query_mode = query_mode
        self.image_prompt_mode = image_prompt_mode
        self.reformulator = reformulator
        self.queries = queries
        self.image_source = image_source
        self.batch_size = batch_size
        self._query_captions: dict[str, tuple[str, ...]] = {}
        self._query_targets: dict[str, str] = {}
        self._vectors: VectorCache | None = None
        # The fused queries of the last ranked batch, by state: a questioner's view asks for them right after.
        self._recent_queries: dict[tuple[str, int, tuple[str, ...]], torch.Tensor] = {}

    def identity(self) -> Mapping[str, Any]:
        return {
            "retriever": self.name,
            "base": dict(self.base.identity()),
            "fusion": {**self.fuser.identity(), "images_per_round": self.images_per_round},
            "query_mode": self.query_mode,
            "image_prompts": self.image_prompt_mode,
            "captions": {"file": str(self.queries), "sha256": sha256_file(self.queries)} if self.queries else "llm",
            "reformulator": dict(self.reformulator.identity()) if self.reformulator else None,
            "images": dict(self.image_source.identity()),
        }

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        self.base.prepare(search_space, context)
        assert self.base.encoder is not None
        self.fuser.prepare(self.base.encoder)
        if self.reformulator is not None:
            self.reformulator.load(context)
        if self.queries is not None:
            self.load_queries()
        self.image_source.load(context)
        self._vectors = VectorCache(context.cache_dir)

    def load_queries(self) -> None:
        """Read the reformulated-dialogue file (``queries``): captions and target of every record."""
        assert self.queries is not None
        dialogues = read_chatir_dialogues(self.queries, expected_turns=None)
        self._query_captions = {dialogue.dialogue_id: dialogue.turns for dialogue in dialogues}
        self._query_targets = {dialogue.dialogue_id: dialogue.target for dialogue in dialogues}

    def usage(self) -> dict[str, int]:
        """Images drawn, image cache hits and LLM calls (response cache misses) since ``prepare``, and what the LLM
        spent (``harness.usage``: API or model calls, tokens) with the response cache's hits."""
        if self.reformulator is None:
            return {**self.image_source.usage(), "llm_calls": 0}
        return {**self.image_source.usage(), "llm_calls": self.reformulator.calls,
                **usage_of(self.reformulator.generator), "cache_hits": self.reformulator.cache_hits}

    def retrieval_view(self) -> EncoderView:
        """What a retrieval-aware questioner sees (``harness.protocols.RetrievalView``): texts scored by the base
        encoder (the text-only side), and the fused ranking of each state; after ``prepare``."""
        assert self.base.encoder is not None and self.base.index is not None, "prepare() DAR first"
        return EncoderView(self.base.encoder, self.base.index, self.query_embeddings)

    def query_embeddings(self, states: Sequence[DialogueState]) -> list[torch.Tensor | None]:
        """Each state's fused query (None where DAR cannot rank it): those of the batch ranked last, the others
        ranked now (through the caches)."""
        known = dict(self._recent_queries)
        missing = [state for state in states if _state_key(state) not in known]
        if missing:
            self.rank(missing)
            known.update(self._recent_queries)
        return [known.get(_state_key(state)) for state in states]

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        self._recent_queries = {}
        if not states:
            return RankBatch(ranks=())
        if self.queries is not None:
            self._check_query_records(states)
        captions = self._captions_up_to_round(states)
        failed: dict[int, tuple[str, dict[str, Any]]] = {}
        for row, caption in enumerate(captions):
            invalid = next((entry for entry in caption if isinstance(entry, InvalidTurn)), None)
            if invalid is not None:
                failed[row] = (f"DAR caption: {invalid.reason}", {"reformulation": dict(invalid.trace)})
        rows = [row for row in range(len(states)) if row not in failed]
        prompts = dict(zip(rows, self._image_prompts([states[row] for row in rows], [captions[row] for row in rows])))
        for row, prompt in prompts.items():
            if isinstance(prompt, InvalidTurn):
                caption = captions[row][-1]
                failed[row] = (f"DAR image prompts: {prompt.reason}",
                               {"caption": str(caption), "image_prompt_reformulation": dict(prompt.trace),
                                **({"reformulation": caption.trace()} if isinstance(caption, Generated) else {})})
        rows = [row for row in rows if row not in failed]
        batch = self._rank_rows([states[row] for row in rows], [captions[row] for row in rows],  # type: ignore[misc]
                                [prompts[row] for row in rows])  # type: ignore[misc]
        usage = self.usage()
        log.debug("DAR so far: %d images drawn, %d image cache hits, %d LLM calls", usage["images_generated"],
                  usage["image_cache_hits"], usage["llm_calls"], extra={USAGE_FIELD: usage})
        return _with_failed_rows(batch, rows, len(states), failed) if failed else batch

    def _rank_rows(self, states: Sequence[DialogueState], captions: Sequence[tuple[str, ...]],
                   prompts: Sequence[Sequence[str] | Generated]) -> RankBatch:
        """Fused ranks of states whose captions and image prompts are valid."""
        if not states:
            return RankBatch(ranks=())
        texts = [str(caption[-1]) if self.query_mode == "entry" else ", ".join(map(str, caption))
                 for caption in captions]
        encoder = self.base.encoder
        assert encoder is not None and self.base.index is not None, "prepare() DAR first"
        text_embeddings = torch.cat([encoder.encode_texts(chunk) for chunk in batched(texts, self.batch_size)])
        images = self._image_embeddings(states, [prompt_lines(prompt) for prompt in prompts])
        image_embeddings, prompts_cut = images.embeddings, images.prompts_cut
        fused = self.fuser.fuse(text_embeddings, image_embeddings, [state.round for state in states])
        targets = [state.target_index for state in states]
        ranking = rank_targets(fused.queries, self.base.index, targets, keep_top=self.base.keep_top)
        gates = fused.side_values.get("gate")
        traces = tuple(
            {"caption": str(caption[-1]), "image_prompts": list(state_prompts), "image_keys": list(keys),
             **({"gate": gates[row]} if gates is not None else {}),
             **({"reformulation": caption[-1].trace()} if isinstance(caption[-1], Generated) else {}),
             **({"image_prompt_reformulation": prompt.trace()} if isinstance(prompt, Generated) else {})}
            for row, (caption, state_prompts, prompt, keys)
            in enumerate(zip(captions, images.prompts, prompts, images.keys)))
        text_only = rank_targets(text_embeddings, self.base.index, targets)
        failures = {**{row: f"text-only query: {reason}" for row, reason in text_only.failed.items()},
                    **ranking.failed}
        self._recent_queries.update({_state_key(state): fused.queries[row] for row, state in enumerate(states)
                                     if row not in failures})
        side_values = {**fused.side_values, QUERY_TRUNCATED: tuple(map(float, encoder.truncated(texts)))}
        if prompts_cut is not None:
            side_values[PROMPTS_TRUNCATED] = prompts_cut
        return RankBatch(ranks=ranking.ranks, side_ranks={"text_only": text_only.ranks}, side_values=side_values,
                         tied=ranking.tied, failures=failures, top=ranking.top, traces=traces)

    def _check_query_records(self, states: Sequence[DialogueState]) -> None:
        """Each state's record of the query file must exist and name the state's target: a file of another
        benchmark, or of this one in another order, would otherwise pair captions with the wrong dialogues."""
        for state in states:
            record = _record_index(state.dialogue_id)
            target = self._query_targets.get(state.dialogue_id)
            if target is None:
                raise DataError(self.queries, f"holds {len(self._query_targets)} records but the benchmark has "
                                f"dialogue {state.dialogue_id}: the record counts differ (give the reformulated file "
                                "of this very benchmark)", record=record)
            if target != state.target:
                raise DataError(self.queries, f"is {target!r} but dialogue {state.dialogue_id} of the benchmark "
                                f"targets {state.target!r}: this file does not follow the benchmark's records",
                                record=record, field="img")

    def _captions_up_to_round(self, states: Sequence[DialogueState]) -> list[tuple[str | InvalidTurn, ...]]:
        """S_0..S_t for every state: from the query file, or from R1 over every prefix (cached, cleaned)."""
        if self.queries is not None:
            return [self._file_captions(state) for state in states]
        assert self.reformulator is not None
        prefixes = sorted({state.query_turns[: length] for state in states for length in range(1, state.round + 2)})
        by_prefix = dict(zip(prefixes, self.reformulator.captions(prefixes)))
        return [tuple(by_prefix[state.query_turns[: length]] for length in range(1, state.round + 2))
                for state in states]

    def _image_prompts(self, states: Sequence[DialogueState],
                       captions: Sequence[tuple[str, ...]]) -> list[Sequence[str] | Generated | InvalidTurn]:
        """The K image prompts of every state: K copies of S_t, or R2's (cleaned) answer."""
        count, last = self.images_per_round, [str(caption[-1]) for caption in captions]
        if self.image_prompt_mode != "llm":
            return [[caption] * count for caption in last]
        assert self.reformulator is not None
        return list(self.reformulator.image_prompts(last, count, [state.query_turns for state in states]))

    def _file_captions(self, state: DialogueState) -> tuple[str, ...]:
        entries = self._query_captions.get(state.dialogue_id)
        if entries is None or len(entries) <= state.round:
            raise DataError(self.queries, f"no reformulated caption for dialogue {state.dialogue_id}, round "
                            f"{state.round}", record=_record_index(state.dialogue_id), field="dialog")
        return entries[: state.round + 1]

    def _image_embeddings(self, states: Sequence[DialogueState], prompts: Sequence[Sequence[str]]) -> ImageBatch:
        count = self.images_per_round
        requests = [DialogueImage(state.dialogue_id, state.round, prompt, replicate)
                    for state, state_prompts in zip(states, prompts) for replicate, prompt in enumerate(state_prompts)]
        images = self.image_source.images(requests)
        cut = self.image_source.truncated_prompts(requests)
        prompts_cut = None if cut is None else tuple(float(sum(cut[row * count:(row + 1) * count]))
                                                     for row in range(len(states)))
        encoder = self.base.encoder
        assert encoder is not None and self._vectors is not None
        keys = [stable_hash({"encoder": encoder.image_identity(), "image": _content_digest(image)}) for image in images]

        def encode(missing: list[int]) -> np.ndarray:
            chunks = [encoder.encode_images(encoder.preprocessing([images[i] for i in chunk])).cpu().numpy()
                      for chunk in batched(missing, self.batch_size)]
            return np.concatenate(chunks)

        vectors = self._vectors.get_or_compute(keys, encode)
        keys_drawn = self.image_source.image_keys(requests)
        return ImageBatch(torch.from_numpy(vectors).reshape(len(states), count, -1), prompts_cut,
                          [tuple(state_prompts) for state_prompts in prompts],
                          [tuple(keys_drawn[row * count:(row + 1) * count]) for row in range(len(states))])


def prompt_lines(prompts: Sequence[str] | Generated) -> list[str]:
    """A state's K image prompts: R2's cleaned answer holds one per line."""
    return prompts.text.split("\n") if isinstance(prompts, Generated) else list(prompts)


def _with_failed_rows(batch: RankBatch, rows: Sequence[int], total: int,
                      failed: Mapping[int, tuple[str, Mapping[str, Any]]]) -> RankBatch:
    """``batch`` (of the states at ``rows``) spread over all ``total`` states, the others failed with their reason
    and trace (their placeholder values are never stored: a failed state's round is not recorded)."""
    def spread(values: Sequence[Any], fill: Any) -> tuple[Any, ...]:
        spread_values = [fill] * total
        for position, row in enumerate(rows):
            spread_values[row] = values[position]
        return tuple(spread_values)

    traces = list(spread(batch.traces, {})) if batch.traces else [{} for _ in range(total)]
    for row, (_, trace) in failed.items():
        traces[row] = trace
    return RankBatch(
        ranks=spread(batch.ranks, 0),
        side_ranks={name: spread(values, 0) for name, values in batch.side_ranks.items()},
        side_values={name: spread(values, 0.0) for name, values in batch.side_values.items()},
        tied=spread(batch.tied, False) if batch.tied else (),
        failures={**{rows[position]: reason for position, reason in batch.failures.items()},
                  **{row: reason for row, (reason, _) in failed.items()}},
        top=spread(batch.top, ()) if batch.top else (),
        traces=tuple(traces),
    )


def _state_key(state: DialogueState) -> tuple[str, int, tuple[str, ...]]:
    return state.dialogue_id, state.round, state.query_turns


def _record_index(dialogue_id: str) -> int | None:
    """The record index a benchmark dialogue's id stands for (ids of ChatIR-format files are record indices)."""
    return int(dialogue_id) if dialogue_id.isdigit() else None


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
    image_aggregate: str | None = None,
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
    """DAR over the base preset ``base`` (zs, cocoft, chatir, clip; ``model`` overrides its weights).

    ``variant`` (paper | released) sets the defaults of ``query_mode`` (entry | join), ``image_prompts``
    (llm | caption), ``images_per_round`` (K), the fusion weights, ``switch_round`` and ``image_aggregate`` (sum,
    the paper's equation 4 | mean); each can be set on its own.
    ``llm`` names a registered text generator (hf-seq2seq, hf-chat, openai) built with ``llm_args`` (default
    ``{"model": "google/flan-t5-xl"}`` for hf-seq2seq); it is not loaded when ``queries`` (a reformulated-dialogue
    file) supplies the captions and the image prompts are the captions. Its outputs are cleaned
    (``retrievers.dar.cleaning``; ``clean_reformulations=False`` to switch that off) and an invalid one is redrawn
    (``on_invalid=resample``, at most ``max_resamples`` times), fails its dialogue (``fail``) or is kept (``keep``).
    ``images``: a folder of pre-generated
    images, ``{dialogue_index}_{round}.jpg`` or ``round{round}/{dialogue_index}.jpg`` (K must be 1), instead of a
    diffusers pipeline (``diffusion``: sd3 | sd21 | sdxl-turbo, or auto: SD3 without ``diffusion_model``, else the
    class in the directory's model_index.json)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown DAR variant {variant!r}; use one of {', '.join(VARIANTS)}")
    schedule, default_query_mode, default_image_prompts = VARIANTS[variant]
    schedule = FusionSchedule(
        mode=schedule.mode,
        early=_weights(early_weights, schedule.early, "early_weights"),
        late=_weights(late_weights, schedule.late, "late_weights"),
        switch_round=schedule.switch_round if switch_round is None else switch_round,
        images_per_round=schedule.images_per_round if images_per_round is None else images_per_round,
        image_aggregate=image_aggregate or schedule.image_aggregate,
    )
    return build_pipeline(
        "dar", StaticFuser(schedule), schedule.images_per_round, query_mode or default_query_mode,
        image_prompts or default_image_prompts, base=base, model=model, tokenizer=tokenizer, dtype=dtype,
        max_text_tokens=max_text_tokens, llm=llm, llm_args=llm_args, caption_prompt=caption_prompt,
        image_prompt=image_prompt, llm_policy=InvalidPolicy(on_invalid, max_resamples),
        clean_reformulations=clean_reformulations, queries=queries, images=images, diffusion=diffusion,
        diffusion_model=diffusion_model, steps=steps, guidance_scale=guidance_scale, size=size,
        diffusion_dtype=diffusion_dtype, diffusion_batch_size=diffusion_batch_size, max_sequence_length=max_sequence_length,
        image_seed=image_seed,
        batch_size=batch_size, device=device,
    )


def build_pipeline(
    name: str,
    fuser: Fuser,
    images_per_round: int,
    query_mode: str,
    image_prompt_mode: str,
    *,
    base: str,
    model: str | None,
    tokenizer: str | None,
    dtype: str,
    max_text_tokens: int,
    llm: str | None,
    llm_args: Mapping[str, Any] | None,
    caption_prompt: str,
    image_prompt: str,
    llm_policy: InvalidPolicy,
    clean_reformulations: bool,
    queries: str | None,
    images: str | None,
    diffusion: str,
    diffusion_model: str | None,
    steps: int | None,
    guidance_scale: float | None,
    size: int | None,
    diffusion_dtype: str,
    diffusion_batch_size: int,
    max_sequence_length: int | None,
    image_seed: int,
    batch_size: int,
    device: str | None,
) -> DARRetriever:
    """The DAR pipeline (reformulator, image source, base retriever) around ``fuser``: DAR's static fusion here,
    ADaFuSE's learned one in ``retrievers.adafuse.retriever``."""
    from harness.registry import REGISTRY
    from retrievers.dar.reformulation import load_caption_template, load_image_prompt_template
    from retrievers.dual_encoders.retriever import build_dual_encoder

    queries_path = Path(queries) if queries else None
    needs_llm = queries_path is None or image_prompt_mode == "llm"
    reformulator = None
    if needs_llm:
        if llm is None:
            raise ConfigError("DAR needs an LLM (llm=...) to write captions or image prompts")
        arguments = dict(llm_args) if llm_args is not None else (
            {"model": "google/flan-t5-xl"} if llm == "hf-seq2seq" else {})
        generator, _ = REGISTRY.build("generator", llm, **arguments)
        reformulator = Reformulator(generator, load_caption_template(caption_prompt),
                                    load_image_prompt_template(image_prompt), clean_reformulations, llm_policy)
    if images:
        image_source: ImageSource = PregeneratedImages(Path(images), images_per_round)
    else:
        settings = DiffusionSettings(
            model=diffusion_model, family=diffusion,
            steps=steps, guidance_scale=guidance_scale, height=size, width=size, dtype=diffusion_dtype,
            batch_size=diffusion_batch_size, max_sequence_length=max_sequence_length,
        )
        image_source = GeneratedImages(settings, image_seed)
    base_retriever = build_dual_encoder(base, model=model, tokenizer=tokenizer, dtype=dtype,
                                        max_text_tokens=max_text_tokens, batch_size=batch_size, device=device)
    return DARRetriever(base_retriever, fuser, images_per_round, query_mode, image_prompt_mode, reformulator,
                        queries_path, image_source, batch_size, name=name)


def _weights(given: Sequence[float] | None, default: tuple[float, float], name: str) -> tuple[float, float]:
    if given is None:
        return default
    if len(given) != 2:
        raise ConfigError(f"{name} takes two numbers (text, image), got {list(given)}")
    return float(given[0]), float(given[1])
