"""Text-to-image generation for DAR: a diffusers pipeline by model source, batched, seeded per image and cached.

    settings = DiffusionSettings(family="sd3")                   # SD3-Medium, 28 steps, guidance 7.0, 1024 px
    generator = DiffusionGenerator(settings, device="cuda")
    images = generator.cached_generate(ImageCache(context.cache_dir), prompts, replicate=0, global_seed=context.seed)

    DiffusionSettings(model="runs/tiny-sd3", height=64, width=64)  # any local pipeline directory ("auto" family)

Families: ``sd3`` (the DAR paper's generator), ``sd21`` and ``sdxl-turbo`` (each with its hub id and settings),
``auto`` (the pipeline class named in the directory's ``model_index.json``). Unset options take the family's
defaults; ``dtype="auto"`` is bfloat16 on CUDA and float32 on the CPU.

Determinism: every image has its own ``torch.Generator`` (on the CPU, so the starting noise is the same on every
device) seeded with its own seed, and sub-batches are always run at the full ``batch_size`` (a short one is padded
with copies of its last request, whose outputs are dropped): an image then never depends on which other prompts
share its batch or on their order, up to float rounding: multi-threaded CPU kernels can flip a rare pixel by one
8-bit level with other neighbours. Kernels round differently at another batch size, device or dtype too; only the
dtype is part of the image key, so keep ``batch_size`` fixed when bit-exact images matter (the cache then serves
each image as first drawn). DAR's run manifest records it with the other resolved settings (``settings_record``);
image keys never hold it, so runs at any batch size share images.

Image keys are ``stable_hash({generator identity, prompt, seed})`` and seeds derive from (global seed, generator
identity, prompt, replicate index), so identical prompts share images across runs and retrievers, K images per
prompt use replicates 0..K-1, and a run that finds every image cached never loads the pipeline.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.file_digests import files_fingerprint
from harness.hashing import derive_seed, stable_hash
from harness.image_cache import ImageCache
from harness.pretrained import offline_options
from harness.progress import progress_bar

log = logging.getLogger("harness.dar")
FAMILIES = ("sd3", "sd21", "sdxl-turbo", "auto")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class FamilyDefaults:
    model: str
    pipeline: str
    steps: int
    guidance_scale: float
    size: int


FAMILY_DEFAULTS: Mapping[str, FamilyDefaults] = {
    "sd3": FamilyDefaults("stabilityai/stable-diffusion-3-medium-diffusers", "StableDiffusion3Pipeline", 28, 7.0, 1024),
    "sd21": FamilyDefaults("stabilityai/stable-diffusion-2-1", "StableDiffusionPipeline", 25, 7.5, 768),
    "sdxl-turbo": FamilyDefaults("stabilityai/sdxl-turbo", "StableDiffusionXLPipeline", 1, 0.0, 512),
}
SD3_T5_TOKENS = 256  # StableDiffusion3Pipeline's default max_sequence_length for its T5 encoder (at most 512)
# Any other pipeline class found by "auto": the generic loader, and settings a user is expected to override.
OTHER_DEFAULTS = FamilyDefaults("", "DiffusionPipeline", 30, 7.0, 512)

# Weight files written under a variant name (model.fp16.safetensors, model.fp16-00001-of-00002.safetensors) are not
# what from_pretrained loads without `variant=`, so they stay out of the fingerprint.
_VARIANT_FILE = re.compile(r"^[^.]+\.[^.]+\.(safetensors|bin)(\.index\.json)?$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".onnx")
# Identity entries that say where and with what the pipeline ran, not what it draws: kept out of image keys so the
# same weights in another folder (or a hub download of them) share images.
_NOT_IN_KEY = ("model", "versions")


@dataclass(frozen=True)
class DiffusionSettings:
    """What generates the images. ``model`` is a hub id or a local pipeline directory (None: the family's hub id);
    ``None`` for steps, guidance or size takes the family's default; ``scheduler`` names a diffusers scheduler class
    to replace the pipeline's own (built from its config); ``batch_size`` changes speed (and, by kernel rounding, a
    rare pixel by one level), never an image key. ``max_sequence_length`` (SD3 only, 1..512) is how many tokens of
    a prompt SD3's T5 encoder reads (None: the pipeline's 256); its CLIP encoders read 77 whatever it is."""

    model: str | None = None
    family: str = "auto"
    steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    dtype: str = "auto"
    scheduler: str | None = None
    negative_prompt: str | None = None
    batch_size: int = 4
    max_sequence_length: int | None = None

    def __post_init__(self) -> None:
        if self.family not in (*FAMILIES, "other"):  # "other": what "auto" resolves an unlisted pipeline class to
            raise ConfigError(f"unknown diffusion family {self.family!r}; use one of {', '.join(FAMILIES)}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; use auto, {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if self.max_sequence_length is not None and not 1 <= self.max_sequence_length <= 512:
            raise ConfigError(f"max_sequence_length must be 1..512 (SD3's T5 limit), got {self.max_sequence_length}")

    def resolved(self) -> DiffusionSettings:
        """These settings with the model, family, steps, guidance and size filled in (reads ``model_index.json`` of a
        local directory when the family is ``auto``; a hub id with ``auto`` reads the hub's, which may download)."""
        family, model = self.family, self.model
        if model is None:
            family = "sd3" if family == "auto" else family
            model = FAMILY_DEFAULTS[family].model
        if family == "auto":
            family = family_of(pipeline_class_name(model))
        defaults = FAMILY_DEFAULTS.get(family, OTHER_DEFAULTS)
        resolved = replace(
            self,
            model=model,
            family=family,
            steps=self.steps if self.steps is not None else defaults.steps,
            guidance_scale=self.guidance_scale if self.guidance_scale is not None else defaults.guidance_scale,
            height=self.height if self.height is not None else defaults.size,
            width=self.width if self.width is not None else defaults.size,
        )
        if resolved.max_sequence_length is not None and resolved.family != "sd3":
            raise ConfigError(f"max_sequence_length applies to SD3 only; {resolved.model} is a {resolved.family} "
                              "pipeline, whose CLIP text encoder reads 77 tokens")
        return resolved


@dataclass(frozen=True)
class ImageRequest:
    """One image to draw: its prompt, the replicate index it was asked for, the seed derived from them, its key."""

    prompt: str
    replicate: int
    seed: int
    key: str


def family_of(pipeline_class: str) -> str:
    """The family whose pipeline class is ``pipeline_class`` ("other" for any other class)."""
    for family, defaults in FAMILY_DEFAULTS.items():
        if defaults.pipeline == pipeline_class:
            return family
    return "other"


def pipeline_class_name(model: str) -> str:
    """``_class_name`` from the pipeline's ``model_index.json`` (a local directory, or a hub id's cached copy)."""
    from diffusers import DiffusionPipeline

    try:
        config = DiffusionPipeline.load_config(model, **offline_options(model))
    except (OSError, ValueError) as error:
        raise _load_error(model, error) from None
    return str(config["_class_name"])


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


class DiffusionGenerator:
    """A diffusers text-to-image pipeline with DAR's seeding, batching and caching rules.

    The pipeline is loaded on first use (``load``), so ``identity`` and a fully cached ``cached_generate`` need
    only the pipeline's small files, never its weights in memory.
    """

    def __init__(self, settings: DiffusionSettings | None = None, device: str = "cpu", progress: bool = True) -> None:
        self.settings = (settings or DiffusionSettings()).resolved()
        self.device = device
        self.progress = progress
        self.pipeline: Any = None
        self.generated = 0  # images drawn by the pipeline (padding excluded), for reuse figures
        self._identity: dict[str, Any] | None = None
        self._directory: Path | None = None
        self._prompt_tokenizer: tuple[str, Any, int] | None = None
        self._cut_logged = False

    @property
    def dtype(self) -> str:
        return resolve_dtype(self.settings.dtype, self.device)

    # Loading ------------------------------------------------------------------------------------------------------

    def load(self, device: str | None = None) -> Any:
        """Load the pipeline (``from_pretrained`` of the hub id or directory) onto ``device``; returns it."""
        if device is not None and device != self.device:
            self.device, self._identity, self.pipeline = device, None, None
        if self.pipeline is not None:
            return self.pipeline
        settings = self.settings
        pipeline_class = self._pipeline_class()
        # A component saved as [null, null] (SD3 without T5) must be passed as None, or from_pretrained refuses it.
        absent = {name: None for name, value in self._model_index().items()
                  if not name.startswith("_") and isinstance(value, list) and value[0] is None}
        try:
            pipeline = pipeline_class.from_pretrained(settings.model, dtype=DTYPES[self.dtype], **absent,
                                                      **offline_options(str(settings.model)))
        except (OSError, ValueError) as error:
            raise _load_error(settings.model, error) from None
        if settings.scheduler is not None:
            pipeline.scheduler = self._scheduler(pipeline.scheduler)
        pipeline.set_progress_bar_config(disable=True)
        # The pipelines log every prompt cut at their text encoder's 77 tokens, quoting the cut text, once per batch;
        # dialogue-length captions are cut routinely, so only errors of this pipeline's module are logged.
        logging.getLogger(type(pipeline).__module__).setLevel(logging.ERROR)
        self.pipeline = pipeline.to(self.device)
        return self.pipeline

    def _model_index(self) -> dict[str, Any]:
        return json.loads((self.directory() / "model_index.json").read_text(encoding="utf-8"))

    def directory(self) -> Path:
        """The local pipeline directory (a hub id resolves to its download in the hub cache)."""
        if self._directory is None:
            model = str(self.settings.model)
            path = Path(model).expanduser()
            if path.is_dir():
                if not (path / "model_index.json").is_file():
                    raise HarnessError(
                        f"{model} has no model_index.json: pass a diffusers pipeline directory (written by "
                        "save_pretrained or `hf download REPO --local-dir DIR`) or a hub id"
                    )
                self._directory = path
            else:
                from diffusers import DiffusionPipeline

                try:
                    self._directory = Path(DiffusionPipeline.download(model, **offline_options(model)))
                except (OSError, ValueError) as error:
                    raise _load_error(model, error) from None
        return self._directory

    # Identity -----------------------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Everything that changes the images: pipeline class, weights fingerprint, scheduler class and config,
        steps, guidance, size, dtype and negative prompt (plus the model source and library versions, which the
        image keys leave out)."""
        if self._identity is None:
            import diffusers
            import transformers

            settings = self.settings
            directory = self.directory()
            index = self._model_index()
            scheduler = self.pipeline.scheduler if self.pipeline is not None else self._scheduler()
            self._identity = {
                "pipeline": str(index["_class_name"]),
                "family": settings.family,
                "fingerprint": pipeline_fingerprint(directory),
                "scheduler": {"class": type(scheduler).__name__, "config": _public_config(scheduler.config)},
                "steps": settings.steps,
                "guidance_scale": settings.guidance_scale,
                "height": settings.height,
                "width": settings.width,
                "dtype": self.dtype,
                "negative_prompt": settings.negative_prompt,
                "model": settings.model,
                "versions": {"diffusers": diffusers.__version__, "transformers": transformers.__version__},
            }
            if settings.max_sequence_length is not None:  # only when set, so default SD3 images keep their keys
                self._identity["max_sequence_length"] = settings.max_sequence_length
        return dict(self._identity)

    def key_identity(self) -> dict[str, Any]:
        """The part of ``identity`` that goes into image keys and seeds."""
        return {name: value for name, value in self.identity().items() if name not in _NOT_IN_KEY}

    def settings_record(self) -> dict[str, Any]:
        """The resolved settings as JSON-ready data, batch size included, for the run manifest (an unset
        ``max_sequence_length`` is left out, so runs from before the setting resume)."""
        record = asdict(self.settings)
        if record["max_sequence_length"] is None:
            del record["max_sequence_length"]
        return record

    # Prompt length ------------------------------------------------------------------------------------------------

    def truncated(self, prompts: Sequence[str]) -> list[bool] | None:
        """Which ``prompts`` are longer than the pipeline's text encoder reads, so that the image is drawn from their
        start only: SD3's T5 (the long-prompt encoder; ``max_sequence_length`` tokens) where it has one, else the
        first CLIP tokenizer's 77. None for a pipeline of another family, whose limit is not known here. The first
        cut is logged once (a DAR run's manifest counts them all). Needs the tokenizer files only."""
        if self.settings.family not in FAMILY_DEFAULTS:
            return None
        subfolder, tokenizer, limit = self._limit_tokenizer()
        lengths = tokenizer(list(prompts), truncation=False)["input_ids"]
        cut = [len(ids) > limit for ids in lengths]
        if any(cut) and not self._cut_logged:
            self._cut_logged = True
            log.debug("image prompts longer than %d tokens (%s of %s) are cut to their first %d; the run manifest's "
                        "diagnostics count them", limit, subfolder, self.settings.model, limit)
        return cut

    def _limit_tokenizer(self) -> tuple[str, Any, int]:
        if self._prompt_tokenizer is None:
            from transformers import AutoTokenizer

            index = self._model_index()
            has_t5 = self.settings.family == "sd3" and (index.get("text_encoder_3") or [None])[0] is not None
            subfolder = "tokenizer_3" if has_t5 else "tokenizer"
            if (index.get(subfolder) or [None])[0] is None:
                raise HarnessError(f"{self.settings.model} has no {subfolder}: its prompts' length cannot be checked")
            tokenizer = AutoTokenizer.from_pretrained(self.directory() / subfolder)
            limit = (self.settings.max_sequence_length or SD3_T5_TOKENS) if has_t5 else int(tokenizer.model_max_length)
            self._prompt_tokenizer = (subfolder, tokenizer, limit)
        return self._prompt_tokenizer

    # Generation ---------------------------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        """One image per (prompt, seed), in order; uncached. Each image has its own CPU generator seeded with its
        seed; sub-batches run at the full ``batch_size`` so no image depends on its batch neighbours."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        pipeline = self.load()
        size = self.settings.batch_size
        images: list[Image.Image] = []
        with progress_bar(len(prompts), "generating images", "img", self.progress) as bar:
            for start in range(0, len(prompts), size):
                batch_prompts = list(prompts[start:start + size])
                batch_seeds = list(seeds[start:start + size])
                real = len(batch_prompts)
                batch_prompts += [batch_prompts[-1]] * (size - real)
                batch_seeds += [batch_seeds[-1]] * (size - real)
                images.extend(self._run(pipeline, batch_prompts, batch_seeds)[:real])
                self.generated += real
                bar.update(real)
        return images

    def requests(
        self, prompts: Sequence[str], replicate: int | Sequence[int] = 0, global_seed: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[ImageRequest]:
        """The key and seed of each image. ``replicate`` (one index, or one per prompt) tells apart the K images of
        one prompt; explicit ``seeds`` replace the derived ones (they still enter the key)."""
        replicates = [replicate] * len(prompts) if isinstance(replicate, int) else list(replicate)
        if len(replicates) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(replicates)} replicate indexes")
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        generator = self.key_identity()
        generator_hash = stable_hash(generator)
        requests = []
        for index, (prompt, copy) in enumerate(zip(prompts, replicates)):
            seed = derive_seed(global_seed, generator_hash, prompt, copy) if seeds is None else int(seeds[index])
            key = ImageCache.key({"generator": generator, "prompt": prompt, "seed": seed})
            requests.append(ImageRequest(prompt=prompt, replicate=copy, seed=seed, key=key))
        return requests

    def cached_generate(
        self, cache: ImageCache, prompts: Sequence[str], replicate: int | Sequence[int] = 0, global_seed: int = 0,
        seeds: Sequence[int] | None = None, chunk_size: int = 256,
    ) -> list[Image.Image]:
        """Images for ``prompts`` from ``cache``, generating (and storing) only the missing ones; identical requests
        are drawn once. Work is saved every ``chunk_size`` requests, so an interrupted call resumes where it left
        off. With ``seeds=None`` each seed derives from the image's key parts (see ``requests``)."""
        requests = self.requests(prompts, replicate, global_seed, seeds)
        images: list[Image.Image] = []
        for start in range(0, len(requests), chunk_size):
            chunk = requests[start:start + chunk_size]

            def draw(missing: list[int], chunk: list[ImageRequest] = chunk) -> list[Image.Image]:
                return self.generate([chunk[i].prompt for i in missing], [chunk[i].seed for i in missing])

            images.extend(cache.get_or_generate([request.key for request in chunk], draw))
        return images

    # Internals ----------------------------------------------------------------------------------------------------

    def _run(self, pipeline: Any, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        settings = self.settings
        negative = [settings.negative_prompt] * len(prompts) if settings.negative_prompt is not None else None
        extra = {"max_sequence_length": settings.max_sequence_length} if settings.max_sequence_length else {}
        with torch.inference_mode():
            output = pipeline(
                prompt=prompts,
                negative_prompt=negative,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance_scale,
                height=settings.height,
                width=settings.width,
                generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                output_type="pil",
                **extra,
            )
        return list(output.images)

    def _pipeline_class(self) -> Any:
        import diffusers

        settings = self.settings
        found = pipeline_class_name(str(settings.model))
        expected = FAMILY_DEFAULTS[settings.family].pipeline if settings.family in FAMILY_DEFAULTS else found
        if found != expected:
            raise ConfigError(
                f"{settings.model} holds a {found}, not the {expected} of family {settings.family!r}; "
                "pass family='auto' (or the matching family)"
            )
        return getattr(diffusers, found, diffusers.DiffusionPipeline)

    def _scheduler(self, base: Any = None) -> Any:
        """The scheduler images are drawn with: the pipeline's own (from its config file, no weights needed) or the
        class named by ``settings.scheduler`` built from that config."""
        import diffusers

        if base is None:
            directory = self.directory()
            index = json.loads((directory / "model_index.json").read_text(encoding="utf-8"))
            base_class = getattr(diffusers, index["scheduler"][1])
            base = base_class.from_pretrained(directory, subfolder="scheduler")
        name = self.settings.scheduler
        if name is None:
            return base
        scheduler_class = getattr(diffusers, name, None)
        if not (isinstance(scheduler_class, type) and issubclass(scheduler_class, diffusers.SchedulerMixin)):
            compatible = ", ".join(sorted(cls.__name__ for cls in base.compatibles))
            raise ConfigError(f"unknown scheduler {name!r}; schedulers compatible with this pipeline: {compatible}")
        return scheduler_class.from_config(base.config)


def pipeline_fingerprint(directory: Path) -> str:
    """A content fingerprint of what ``from_pretrained(directory)`` loads: ``model_index.json`` and every file of
    the components it names (configs and tokenizer files whole, weights by ``files_fingerprint``: full content,
    memoised per file), with variant weights and a ``.bin`` shadowed by a ``.safetensors`` left out."""
    directory = Path(directory)
    index = json.loads((directory / "model_index.json").read_text(encoding="utf-8"))
    files = [directory / "model_index.json"]
    for name, value in sorted(index.items()):
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        folder = directory / name
        candidates = sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
        candidates = [path for path in candidates if not any(part.startswith(".") for part in path.parts[-2:])]
        has_safetensors = any(path.suffix == ".safetensors" for path in candidates)
        for path in candidates:
            if _VARIANT_FILE.match(path.name) or (has_safetensors and path.suffix == ".bin"):
                continue
            files.append(path)
    layout = [path.relative_to(directory).as_posix() for path in files]
    return stable_hash({"layout": sorted(layout), "files": files_fingerprint(files)})


def _public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    # Entries starting with "_" are bookkeeping (class name, diffusers version), not sampling behaviour.
    return {name: value for name, value in dict(config).items() if not name.startswith("_")}


def _load_error(model: str, error: BaseException) -> HarnessError:
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    if Path(model).expanduser().is_dir():
        return HarnessError(f"cannot load a diffusion pipeline from directory {model}: {first_line}")
    return HarnessError(
        f"cannot load diffusion pipeline {model!r} from the Hugging Face hub ({first_line}). If the hub is "
        f"unreachable, download it on a machine with network access (`hf download {model} --local-dir DIR`; gated "
        "models such as SD3-Medium need their licence accepted and `hf auth login` first) and pass DIR as the "
        "diffusion model source"
    )
