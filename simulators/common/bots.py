"""Questioner and answerer bots: prompt templates + a generator backend + the response cache + the post-processor.

    questioner = LLMQuestioner(Seq2SeqGenerator("google/flan-t5-xl"), load_template("questioner"))
    answerer = VisionAnswerer(Blip2Generator("Salesforce/blip2-flan-t5-xl"), load_template("answerer"))
    questioner.prepare(benchmark, context); answerer.prepare(benchmark, context)
    questions = questioner.ask(states)                 # one batched call for every running dialogue
    answers = answerer.answer(states, questions)

Every response is cached on disk under (generator identity, full prompt, image content hash for answerers,
decoding parameters, and the seed when decoding samples), so a resumed or repeated run makes no repeated model or
API call. Seeds derive from (run seed, dialogue id, round), never from batch order. An output invalid after cleaning
(an empty question or answer, a question without "?") is redrawn, fails its dialogue or is kept flagged, as the
bot's ``InvalidPolicy`` says (``harness.turn_validity``; redraw seeds add the attempt to the dialogue's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.hashing import derive_seed, sha256_file
from harness.images import load_rgb
from harness.protocols import Generated, RunContext, TextGenerator, TurnFailure, VisionGenerator
from harness.response_cache import ResponseCache
from harness.turn_validity import DEFAULT_POLICY, InvalidPolicy, generate_valid, require_resampling
from harness.types import Benchmark, DialogueState
from harness.usage import usage_of
from simulators.common.cleaning import answer_problem, clean_answer, clean_question, question_problem
from simulators.common.prompts import PromptTemplate, render_for_state


class _CachedBot:
    """What every generating bot shares: the cache, the seeds, the prepared state, the invalid-output policy."""

    role = "bot"

    def __init__(self, generator: TextGenerator | VisionGenerator, template: PromptTemplate, clean: bool,
                 policy: InvalidPolicy) -> None:
        require_resampling(policy, generator, self.role)
        self.generator = generator
        self.template = template
        self.clean = clean
        self.policy = policy
        self._cache: ResponseCache | None = None
        self._seed = 0

    def identity(self) -> Mapping[str, Any]:
        return {
            "role": self.role,
            "generator": dict(self.generator.identity()),
            "template": self.template.identity(),
            "clean": self.clean,
            "invalid": self.policy.identity(),
        }

    def _prepare_cache(self, context: RunContext) -> None:
        self.generator.load(context)
        self._cache = ResponseCache(context.cache_dir)
        self._seed = context.seed

    def _seed_of(self, state: DialogueState, *attempt: object) -> int:
        # 31 bits: every backend accepts them (some servers reject 64-bit ``seed`` values).
        return derive_seed(self._seed, self.role, state.dialogue_id, state.round + 1, *attempt) % 2**31

    def _valid_outputs(self, states: Sequence[DialogueState], key_prompts: Sequence[Any], generate: Generate,
                       clean: Callable[[int, str], Generated],
                       problem: Callable[[Generated], str | None]) -> list[Generated | TurnFailure]:
        """Every state's output, cached, cleaned and checked (redrawn, failed or kept by the policy)."""
        first_seeds = [self._seed_of(state) for state in states]

        def draw(generator: Any, items: list[int], seeds: list[int] | None) -> list[str | TurnFailure]:
            item_seeds = seeds if seeds is not None else [first_seeds[item] for item in items]
            decoding = [{"seed": seed} if generator.sampling else {} for seed in item_seeds]
            keys = [self.cache.key(model=generator.identity(), prompt=key_prompts[item], decoding=fixed)
                    for item, fixed in zip(items, decoding)]
            return self.cache.get_or_compute(keys, lambda missing: generate(
                generator, [items[m] for m in missing], [item_seeds[m] for m in missing]))

        return generate_valid(self.policy, self.generator, len(states), draw, clean, problem,
                              lambda item, attempt: self._seed_of(states[item], "redraw", attempt), self.role)

    def usage(self) -> dict[str, int]:
        """What the generator spent, and the response cache's hits and misses."""
        return {**usage_of(self.generator), "cache_hits": self.cache.hits, "cache_misses": self.cache.misses}

    def use_cache(self, cache: ResponseCache) -> None:
        """Replace the response cache ``prepare`` opened (benchmarks use one that never reuses a response)."""
        self._cache = cache

    @property
    def cache(self) -> ResponseCache:
        if self._cache is None:
            raise RuntimeError(f"the {self.role} was used before prepare()")
        return self._cache


# generate(generator, items, seeds): raw outputs for the states at positions ``items``
Generate = Callable[[Any, list[int], list[int]], Sequence[str | TurnFailure]]


class LLMQuestioner(_CachedBot):
    """Asks with any text generator (seq2seq, causal chat, OpenAI-compatible endpoint)."""

    role = "questioner"

    def __init__(self, generator: TextGenerator, template: PromptTemplate, clean: bool = True,
                 policy: InvalidPolicy = DEFAULT_POLICY) -> None:
        super().__init__(generator, template, clean, policy)

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._prepare_cache(context)

    def ask(self, states: Sequence[DialogueState]) -> list[Generated | TurnFailure]:
        prompts = [render_for_state(self.template, state) for state in states]

        def generate(generator: TextGenerator, items: list[int], seeds: list[int]) -> Sequence[str | TurnFailure]:
            return generator.generate([prompts[item] for item in items], seeds)

        return self._valid_outputs(states, prompts, generate,
                                   lambda item, raw: clean_question(raw) if self.clean else Generated(raw, raw),
                                   question_problem)


class VisionAnswerer(_CachedBot):
    """Answers with any vision generator (BLIP-2, OpenAI-compatible vision chat) looking at the target image."""

    role = "answerer"
    needs_images = True  # the runner refuses a run without --image-root before any model loads

    def __init__(self, generator: VisionGenerator, template: PromptTemplate, clean: bool = True,
                 policy: InvalidPolicy = DEFAULT_POLICY, reads_notes: tuple[str, ...] = ()) -> None:
        super().__init__(generator, template, clean, policy)
        # Notes its prompt reads (``DialogueState.notes``): the runner refuses a questioner that writes none.
        self.reads_notes = tuple(reads_notes)
        self._benchmark: Benchmark | None = None
        self._image_digests: dict[str, str] = {}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._prepare_cache(context)
        self._benchmark = benchmark

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[Generated | TurnFailure]:
        assert self._benchmark is not None, "prepare() the answerer first"
        search_space = self._benchmark.search_space
        paths = [search_space.resolve(state.target) for state in states]
        prompts = [render_for_state(self.template, state, question) for state, question in zip(states, questions)]
        key_prompts = [{"text": prompt, "image_sha256": self._digest(state.target, path)}
                       for prompt, state, path in zip(prompts, states, paths)]

        def generate(generator: VisionGenerator, items: list[int], seeds: list[int]) -> Sequence[str | TurnFailure]:
            return generator.generate([prompts[item] for item in items], load_rgb([paths[item] for item in items]),
                                      seeds)

        def clean(item: int, raw: str) -> Generated:
            return clean_answer(raw, questions[item]) if self.clean else Generated(raw, raw)

        return self._valid_outputs(states, key_prompts, generate, clean, answer_problem)

    def _digest(self, target: str, path: Any) -> str:
        if target not in self._image_digests:
            self._image_digests[target] = sha256_file(path)
        return self._image_digests[target]
