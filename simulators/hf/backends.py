"""Hugging Face transformers generators for the bots: Flan-T5-style seq2seq, chat causal LMs and BLIP-2.

    generator = Seq2SeqGenerator("declare-lab/flan-alpaca-xxl")             # or a local save_pretrained folder
    generator.load(RunContext(device="cuda", cache_dir=Path("runs/cache")))
    generator.generate(["Ask one question about: a red bus"], seeds=[7])     # -> ["what is the bus doing?"]

    chat = CausalChatGenerator("Qwen/Qwen2.5-1.5B-Instruct")               # any checkpoint with a chat template
    blip2 = Blip2Generator("Salesforce/blip2-flan-t5-xl")                   # FLAN-T5 or OPT language models
    blip2.generate(["a bus. Question: what color is it? Short answer:"], [image], seeds=[7])

A model source is a hub id or a local directory written by ``save_pretrained``; both go through the same
``from_pretrained`` call. Offline, a hub id that is not cached fails with a ``HarnessError`` that says how to
download it and pass the folder (``--questioner-model DIR`` / ``--answerer-model DIR``).

Prompts are generated in sub-batches of ``batch_size`` under ``torch.inference_mode``. Decoding is greedy unless
``temperature > 0``; other settings (repetition penalty, top-k, top-p, ...) come from the checkpoint's
``generation_config.json``, which is part of the fingerprint. Sampling draws every prompt's tokens from a generator
seeded with that prompt's own seed (``simulators.hf.row_sampling``), so a sampled output does not depend on which
prompts shared its batch, on ``batch_size`` or on where a run resumed, and the global RNG is never touched; it
samples one sequence per prompt (``num_beams=1``). Greedy outputs do not depend on the batch either, up to padding
numerics.

``identity()`` (valid after ``resolve``, which reads only the configuration, or ``load``) names the backend, the
source, a fingerprint of the model's files (weights, configuration, tokenizer), the resolved dtype and every
decoding parameter: the bots and DAR's reformulation put it into each cache key, so they can look outputs up
before loading any weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import torch
from PIL import Image

from harness.devices import resolve_device
from harness.errors import ConfigError, HarnessError
from harness.file_digests import files_fingerprint
from harness.hashing import stable_hash
from harness.images import require_one_image_per_prompt
from harness.messages import Prompt, as_messages, as_text
from harness.pretrained import load_pretrained as load_any_pretrained
from harness.protocols import RunContext, TurnFailure
from harness.usage import UsageCounter

DTYPES = ("auto", "float32", "float16", "bfloat16")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
DEFAULT_TOP_K = 50  # what transformers samples with when a checkpoint's generation config sets no top_k
QUESTIONER_OPTION = "--questioner-model"
ANSWERER_OPTION = "--answerer-model"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Small files that change what a checkpoint generates (configuration, generation defaults, tokenizer, chat
# template, processor): fingerprinted together with the weights.
CONFIG_SUFFIXES = (".json", ".jinja", ".model", ".txt")
SKIPPED_FILES = ("training_args.bin",)

Loaded = TypeVar("Loaded")


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA and float32 on the CPU (where half precision is slow and lossy)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def model_files(source: str, config: Any) -> list[Path]:
    """The files a model was loaded from: a local directory's files, or the resolved hub snapshot's."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        folder = _hub_snapshot(source, getattr(config, "_commit_hash", None)) or Path("/nonexistent")
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.name not in SKIPPED_FILES and path.suffix in WEIGHT_SUFFIXES + CONFIG_SUFFIXES
    )


def load_pretrained(loader: Callable[..., Loaded], source: str, option: str, **kwargs: Any) -> Loaded:
    """``harness.pretrained.load_pretrained``, refusing first a local folder that holds no config.json."""
    folder = Path(source).expanduser()
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise HarnessError(f"model directory {source} has no config.json; pass a directory written by "
                           f"save_pretrained (or `hf download ... --local-dir DIR`) or a hub id with {option}")
    return load_any_pretrained(loader, source, option, **kwargs)


class _HFGenerator:
    """What the three backends share: arguments, device and dtype resolution, identity, sub-batching, seeding."""

    backend = "hf"
    option = QUESTIONER_OPTION

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        max_new_tokens: int = 32,
        num_beams: int = 1,
        temperature: float = 0.0,
        batch_size: int = 32,
        device: str | None = None,
        top_p: float | None = None,
    ) -> None:
        dtype = DTYPE_ALIASES.get(dtype, dtype)
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        for name, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams), ("batch_size", batch_size)):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ConfigError(f"temperature must be 0 (greedy) or positive, got {temperature!r}")
        if temperature > 0 and num_beams > 1:
            raise ConfigError("sampling (temperature > 0) draws one sequence per prompt; use num_beams=1 with it")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {top_p!r}")
        self.top_p = top_p  # None: the checkpoint's generation config decides
        self.model = str(model)
        self.dtype = dtype
        self.max_new_tokens = int(max_new_tokens)
        self.num_beams = int(num_beams)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)
        self.device = device
        self._model: Any = None
        self._device = ""
        self._torch_dtype: torch.dtype | None = None
        self._fingerprint = ""
        self._origin: _HFGenerator | None = None  # what a with_decoding() copy loads through
        self._overrides: dict[str, Any] = {}  # the decoding settings such a copy changes
        self.usage_counter = UsageCounter()  # shared with sampled() copies: their draws cost too

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def usage(self) -> dict[str, int]:
        """Prompts generated (``model_calls``) and the tokenizer's count of their input and output tokens."""
        return self.usage_counter.snapshot()

    def _count(self, inputs: Any, generated: torch.Tensor, pad_token_id: int | None) -> None:
        completion = generated if pad_token_id is None else generated != pad_token_id
        self.usage_counter.add(model_calls=len(generated), prompt_tokens=int(inputs["attention_mask"].sum()),
                               completion_tokens=int(completion.sum()))

    def sampled(self, temperature: float) -> Self:
        """This generator sampling at ``temperature`` (one sequence per prompt), sharing its loaded model: what an
        invalid output is redrawn with (``harness.turn_validity``)."""
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"a sampling temperature must be positive, got {temperature!r}")
        return self.with_decoding(temperature=temperature, num_beams=1)

    def with_decoding(self, temperature: float | None = None, max_new_tokens: int | None = None,
                      top_p: float | None = None, num_beams: int | None = None) -> Self:
        """This generator with other decoding settings, sharing its loaded model: what a multi-step bot uses for
        each step (sampling always draws one sequence per prompt)."""
        settings = {"temperature": temperature, "max_new_tokens": max_new_tokens, "top_p": top_p,
                    "num_beams": num_beams}
        if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
            raise ConfigError(f"temperature must be 0 (greedy) or positive, got {temperature!r}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {top_p!r}")
        for name, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams)):
            if value is not None and (int(value) != value or value < 1):
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
        origin = self._origin or self
        overrides = {**self._overrides, **{key: value for key, value in settings.items() if value is not None}}
        if overrides.get("temperature", origin.temperature) > 0:
            overrides["num_beams"] = 1
        copy_ = copy.copy(origin)
        copy_.__dict__.update(overrides)
        copy_._origin, copy_._overrides = origin, overrides
        return copy_

    def decoding(self) -> dict[str, Any]:
        decoding: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.sampling,
            "temperature": self.temperature,
        }
        if self.sampling:  # keeps responses cached by the earlier batch-seeded sampler from being served
            decoding["sampler"] = "per-row"
        if self.top_p is not None:
            decoding["top_p"] = self.top_p
        return decoding

    def identity(self) -> Mapping[str, Any]:
        if self._origin is not None:
            self._follow_origin()
        if not self._fingerprint:
            raise RuntimeError(f"{type(self).__name__}.identity() needs resolve() or load() first (it fingerprints "
                               "the files)")
        return {
            "backend": self.backend,
            "model": self.model,
            "fingerprint": self._fingerprint,
            "dtype": str(self._torch_dtype).removeprefix("torch."),
            **self.decoding(),
        }

    def resolve(self, context: RunContext) -> None:
        """Fix the device, the dtype and the files fingerprint, reading the configuration only (no weights), so
        that ``identity()``, hence every cache key, is known before the model is needed: a caller whose outputs
        are all cached never has to ``load``."""
        from transformers import AutoConfig

        if self._origin is not None:
            self._origin.resolve(context)
            self._follow_origin()
            return
        device = resolve_device(self.device) if self.device else context.device
        if self._fingerprint and device == self._device:
            return
        config = load_pretrained(AutoConfig.from_pretrained, self.model, self.option)
        files = model_files(self.model, config)
        self._fingerprint = files_fingerprint(files, context.cache_dir) if files else stable_hash(
            {"hub": self.model, "commit": getattr(config, "_commit_hash", None)}
        )
        # A model loaded on another device is dropped: the next load() puts it on this one.
        self._device, self._torch_dtype, self._model = device, resolve_dtype(self.dtype, device), None

    def load(self, context: RunContext) -> None:
        """Load the model (once per device) in eval mode onto this generator's device, else the context's. A
        ``with_decoding`` copy loads its original and takes its model, never a second copy of the weights."""
        if self._origin is not None:
            self._origin.load(context)
            self._follow_origin()
            return
        self.resolve(context)
        if self.loaded:
            return
        assert self._torch_dtype is not None
        self._model = self._load(self._torch_dtype).to(self._device).eval()

    def _follow_origin(self) -> None:
        """A ``with_decoding`` copy takes its original's resolved state (device, fingerprint, loaded model)."""
        assert self._origin is not None
        origin, overrides = self._origin, self._overrides
        self.__dict__.update({**origin.__dict__, **overrides, "_origin": origin, "_overrides": overrides})

    def _load(self, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    def _generation_kwargs(self, seeds: Sequence[int]) -> dict[str, Any]:
        """Our decoding parameters over the checkpoint's generation config (its token ids, penalties, ...) for a
        sub-batch whose prompts have ``seeds``."""
        config = self._model.generation_config
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            # Greedy search in both cases: when sampling, the row sampler has already drawn each row's token.
            "do_sample": False,
            # Neutral values, so that a chat checkpoint's sampling defaults neither apply twice nor warn.
            "temperature": None, "top_p": None, "top_k": None,
        }
        if self.sampling:
            from transformers import LogitsProcessorList

            from simulators.hf.row_sampling import RowSampler

            top_k = config.top_k if config.top_k is not None else DEFAULT_TOP_K
            top_p = self.top_p if self.top_p is not None else config.top_p
            sampler = RowSampler(seeds, self.temperature, top_k, top_p, self._device)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        if config.max_length is not None:
            kwargs["max_length"] = None  # max_new_tokens rules; avoids the "both set" warning
        return kwargs

    def _run(self, count: int, seeds: Sequence[int], step: Callable[[slice], list[str]]) -> list[str | TurnFailure]:
        if not self.loaded:
            raise RuntimeError(f"{type(self).__name__}.generate() needs load() first")
        if len(seeds) != count:
            raise ValueError(f"got {count} prompts but {len(seeds)} seeds")
        outputs: list[str | TurnFailure] = []
        with torch.inference_mode():
            for start in range(0, count, self.batch_size):
                outputs.extend(step(slice(start, min(start + self.batch_size, count))))
        return outputs


class Seq2SeqGenerator(_HFGenerator):
    """Encoder-decoder text generation (Flan-T5, Flan-Alpaca) with ``AutoModelForSeq2SeqLM``."""

    backend = "hf-seq2seq"

    def _load(self, dtype: torch.dtype) -> Any:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        # Encoder padding on the right is exact for T5 (relative positions, masked keys).
        self._tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model, self.option, padding_side="right")
        return load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, self.model, self.option, dtype=dtype)

    def generate(self, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[str | TurnFailure]:
        """A role-tagged prompt is read flattened (``harness.messages``)."""
        def step(chunk: slice) -> list[str]:
            texts = [as_text(prompt) for prompt in prompts[chunk]]
            inputs = self._tokenizer(texts, return_tensors="pt", padding=True).to(self._device)
            output = self._model.generate(**inputs, **self._generation_kwargs(seeds[chunk]))
            self._count(inputs, output[:, 1:], self._tokenizer.pad_token_id)  # past the decoder's start token
            return [text.strip() for text in self._tokenizer.batch_decode(output, skip_special_tokens=True)]

        return self._run(len(prompts), seeds, step)


class CausalChatGenerator(_HFGenerator):
    """Decoder-only chat models (``AutoModelForCausalLM``): the prompt is the user message of a one-turn chat,
    rendered with the checkpoint's chat template; batches are padded on the left and only new tokens decoded."""

    backend = "hf-causal-chat"

    def _load(self, dtype: torch.dtype) -> Any:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model, self.option, padding_side="left")
        if not getattr(tokenizer, "chat_template", None):
            raise HarnessError(f"{self.model} has no chat template; hf-chat needs an instruct/chat checkpoint "
                               "(use the flan questioner for plain text-to-text models)")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        return load_pretrained(AutoModelForCausalLM.from_pretrained, self.model, self.option, dtype=dtype)

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads for ``prompt`` (chat template, generation prompt included): a string is
        the user message, a role-tagged prompt its messages."""
        return self._tokenizer.apply_chat_template(as_messages(prompt), add_generation_prompt=True, tokenize=False)

    def generate(self, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[str | TurnFailure]:
        def step(chunk: slice) -> list[str]:
            texts = [self.render(prompt) for prompt in prompts[chunk]]
            # The template already holds the special tokens (BOS, role markers); do not add them twice.
            inputs = self._tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = inputs.to(self._device)
            output = self._model.generate(
                **inputs, pad_token_id=self._tokenizer.pad_token_id, **self._generation_kwargs(seeds[chunk])
            )
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            self._count(inputs, new_tokens, self._tokenizer.pad_token_id)
            return [text.strip() for text in self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

        return self._run(len(prompts), seeds, step)


class Blip2Generator(_HFGenerator):
    """BLIP-2 visual question answering (``Blip2ForConditionalGeneration`` + its processor), over a FLAN-T5 or an
    OPT language model; one image per prompt, short greedy answers by default."""

    backend = "hf-blip2"
    option = ANSWERER_OPTION

    def __init__(
        self,
        model: str = "Salesforce/blip2-flan-t5-xl",
        dtype: str = "auto",
        max_new_tokens: int = 10,
        num_beams: int = 1,
        temperature: float = 0.0,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        super().__init__(model, dtype, max_new_tokens, num_beams, temperature, batch_size, device)

    def _load(self, dtype: torch.dtype) -> Any:
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        processor = load_pretrained(AutoProcessor.from_pretrained, self.model, self.option)
        model = load_pretrained(Blip2ForConditionalGeneration.from_pretrained, self.model, self.option, dtype=dtype)
        if model.config.image_token_index is None or getattr(processor, "num_query_tokens", None) is None:
            # transformers 5 expects the processor to write num_query_tokens <image> placeholders that the model
            # replaces with the Q-Former's outputs; checkpoints saved before that change have neither.
            raise HarnessError(
                f"{self.model} predates BLIP-2's image-token processor (no image_token_index / num_query_tokens); "
                "use a current Salesforce/blip2-* revision or re-save the model and processor with transformers 5"
            )
        self._decoder_only = bool(model.config.use_decoder_only_language_model)
        # A decoder-only language model (OPT) continues the prompt, so batches must be padded on the left.
        processor.tokenizer.padding_side = "left" if self._decoder_only else "right"
        self._processor = processor
        return model

    def generate(
        self, prompts: Sequence[str], images: Sequence[Image.Image], seeds: Sequence[int]
    ) -> list[str | TurnFailure]:
        require_one_image_per_prompt(prompts, images)

        def step(chunk: slice) -> list[str]:
            inputs = self._processor(
                images=[image.convert("RGB") for image in images[chunk]],
                text=list(prompts[chunk]),
                return_tensors="pt",
                padding=True,
            ).to(self._device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self._torch_dtype)
            output = self._model.generate(**inputs, **self._generation_kwargs(seeds[chunk]))
            if self._decoder_only:  # the language model's output starts with the prompt
                output = output[:, inputs["input_ids"].shape[1]:]
            self._count(inputs, output if self._decoder_only else output[:, 1:], self._processor.tokenizer.pad_token_id)
            return [text.strip() for text in self._processor.batch_decode(output, skip_special_tokens=True)]

        return self._run(len(prompts), seeds, step)


def _hub_snapshot(repo_id: str, commit: str | None) -> Path | None:
    """The local snapshot folder of a cached hub model (found through its cached config.json), if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=commit)
    except (ValueError, OSError):  # an id the hub client rejects has no snapshot; fall back to id + commit
        return None
    return Path(found).parent if isinstance(found, str) else None
