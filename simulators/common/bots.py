"""Questioner and answerer bots: prompt templates + a generator backend + the response cache + the post-processor.

    questioner = LLMQuestioner(Seq2SeqGenerator("google/flan-t5-xl"), load_template("questioner"))
    answerer = VisionAnswerer(Blip2Generator("Salesforce/blip2-flan-t5-xl"), load_template("answerer"))
    questioner.prepare(benchmark, context); answerer.prepare(benchmark, context)
    questions = questioner.ask(states)                 # one batched call for every running dialogue
    answers = answerer.answer(states, questions)

Every response is cached on disk under (generator identity, full prompt, image content hash for answerers,
decoding parameters, and the seed when decoding samples), so a resumed or repeated run makes no repeated model or
API call. Seeds derive from (run seed, dialogue id, round), never from batch order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.hashing import derive_seed, sha256_file
from harness.images import load_rgb
from harness.protocols import Generated, RunContext, TextGenerator, TurnFailure, VisionGenerator
from harness.response_cache import ResponseCache
from harness.types import Benchmark, DialogueState
from simulators.common.cleaning import clean_answer, clean_question
from simulators.common.prompts import PromptTemplate, render_for_state


class _CachedBot:
    """What every generating bot shares: the cache, the seeds, the prepared state."""

    role = "bot"

    def __init__(self, generator: TextGenerator | VisionGenerator, template: PromptTemplate, clean: bool) -> None:
        self.generator = generator
        self.template = template
        self.clean = clean
        self._cache: ResponseCache | None = None
        self._seed = 0

    def identity(self) -> Mapping[str, Any]:
        return {
            "role": self.role,
            "generator": dict(self.generator.identity()),
            "template": self.template.identity(),
            "clean": self.clean,
        }

    def _prepare_cache(self, context: RunContext) -> None:
        self.generator.load(context)
        self._cache = ResponseCache(context.cache_dir)
        self._seed = context.seed

    def _seeds(self, states: Sequence[DialogueState]) -> list[int]:
        # 31 bits: every backend accepts them (some servers reject 64-bit ``seed`` values).
        return [derive_seed(self._seed, self.role, state.dialogue_id, state.round + 1) % 2**31 for state in states]

    def _key(self, prompt: Any, seed: int) -> str:
        assert self._cache is not None, "prepare() the bot first"
        decoding = {"seed": seed} if self.generator.sampling else {}
        return self._cache.key(model=self.generator.identity(), prompt=prompt, decoding=decoding)

    def use_cache(self, cache: ResponseCache) -> None:
        """Replace the response cache ``prepare`` opened (benchmarks use one that never reuses a response)."""
        self._cache = cache

    @property
    def cache(self) -> ResponseCache:
        if self._cache is None:
            raise RuntimeError(f"the {self.role} was used before prepare()")
        return self._cache


class LLMQuestioner(_CachedBot):
    """Asks with any text generator (seq2seq, causal chat, OpenAI-compatible endpoint)."""

    role = "questioner"

    def __init__(self, generator: TextGenerator, template: PromptTemplate, clean: bool = True) -> None:
        super().__init__(generator, template, clean)

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._prepare_cache(context)

    def ask(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        prompts = [render_for_state(self.template, state) for state in states]
        seeds = self._seeds(states)
        keys = [self._key(prompt, seed) for prompt, seed in zip(prompts, seeds)]
        generator: TextGenerator = self.generator  # type: ignore[assignment]
        raw = self.cache.get_or_compute(
            keys, lambda missing: generator.generate([prompts[i] for i in missing], [seeds[i] for i in missing])
        )
        return [text if isinstance(text, TurnFailure) else clean_question(text) if self.clean else Generated(text, text)
                for text in raw]


class VisionAnswerer(_CachedBot):
    """Answers with any vision generator (BLIP-2, OpenAI-compatible vision chat) looking at the target image."""

    role = "answerer"
    needs_images = True  # the runner refuses a run without --image-root before any model loads

    def __init__(self, generator: VisionGenerator, template: PromptTemplate, clean: bool = True) -> None:
        super().__init__(generator, template, clean)
        self._benchmark: Benchmark | None = None
        self._image_digests: dict[str, str] = {}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._prepare_cache(context)
        self._benchmark = benchmark

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]:
        assert self._benchmark is not None, "prepare() the answerer first"
        search_space = self._benchmark.search_space
        paths = [search_space.resolve(state.target) for state in states]
        prompts = [render_for_state(self.template, state, question) for state, question in zip(states, questions)]
        seeds = self._seeds(states)
        keys = [
            self._key({"text": prompt, "image_sha256": self._digest(state.target, path)}, seed)
            for prompt, seed, state, path in zip(prompts, seeds, states, paths)
        ]
        generator: VisionGenerator = self.generator  # type: ignore[assignment]

        def compute(missing: list[int]) -> list[str | TurnFailure]:
            images = load_rgb([paths[i] for i in missing])
            return generator.generate([prompts[i] for i in missing], images, [seeds[i] for i in missing])

        raw = self.cache.get_or_compute(keys, compute)
        return [
            text if isinstance(text, TurnFailure) else clean_answer(text, question) if self.clean
            else Generated(text, text) for text, question in zip(raw, questions)
        ]

    def _digest(self, target: str, path: Any) -> str:
        if target not in self._image_digests:
            self._image_digests[target] = sha256_file(path)
        return self._image_digests[target]
