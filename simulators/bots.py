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
from harness.protocols import RunContext, TextGenerator, TurnFailure, VisionGenerator
from harness.response_cache import ResponseCache
from harness.turns import split_turn
from harness.types import Benchmark, DialogueState
from simulators.cleaning import clean_answer, clean_question
from simulators.prompts import PromptTemplate, render_for_state


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
        return [clean_question(text) if self.clean and isinstance(text, str) else text for text in raw]


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
            clean_answer(text, question) if self.clean and isinstance(text, str) else text
            for text, question in zip(raw, questions)
        ]

    def _digest(self, target: str, path: Any) -> str:
        if target not in self._image_digests:
            self._image_digests[target] = sha256_file(path)
        return self._image_digests[target]


class _RecordedTurns:
    """The benchmark's recorded rounds, by dialogue id, split into question and answer."""

    def __init__(self) -> None:
        self._turns: dict[str, tuple[str, ...]] = {}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self._turns = {dialogue.dialogue_id: dialogue.turns for dialogue in benchmark.dialogues}

    def recorded(self, state: DialogueState) -> str:
        turns = self._turns[state.dialogue_id]
        round_ = state.round + 1
        if round_ >= len(turns):
            raise IndexError(f"dialogue {state.dialogue_id} has no recorded round {round_}")
        return turns[round_]


class ReplayQuestioner(_RecordedTurns):
    """The benchmark's recorded questions (the text up to the last "?" of each turn). A turn without a "?" holds no
    question to re-ask, so its dialogue fails (naming the turn) instead of sending the answerer an empty question."""

    def identity(self) -> Mapping[str, Any]:
        return {"role": "questioner", "name": "replay"}

    def ask(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        questions: list[str | TurnFailure] = []
        for state in states:
            turn = self.recorded(state)
            question = split_turn(turn)[0]
            questions.append(question or TurnFailure(
                f"dialogue {state.dialogue_id}, round {state.round + 1}: the recorded turn {turn!r} has no '?', "
                "so it holds no question to replay"
            ))
        return questions


class ReplayAnswerer(_RecordedTurns):
    """The benchmark's recorded answers (the text after the last "?" of each turn)."""

    def identity(self) -> Mapping[str, Any]:
        return {"role": "answerer", "name": "replay"}

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]:
        return [split_turn(self.recorded(state))[1] for state in states]


class ScriptedQuestioner:
    """Asks ``questions[round - 1]`` (cycling), for tests and install checks; no model."""

    def __init__(self, questions: Sequence[str]) -> None:
        self.questions = tuple(questions)

    def identity(self) -> Mapping[str, Any]:
        return {"role": "questioner", "name": "scripted", "questions": list(self.questions)}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        return None

    def ask(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]:
        return [self.questions[state.round % len(self.questions)] for state in states]


class ScriptedAnswerer:
    """Answers from the target's file name and the question, deterministically ("yes"/"no" by a hash), or fails
    on chosen (dialogue id, round) pairs to exercise failure handling; no model."""

    def __init__(self, fail_on: Sequence[str] = ()) -> None:
        self.fail_on = frozenset(fail_on)

    def identity(self) -> Mapping[str, Any]:
        return {"role": "answerer", "name": "scripted", "fail_on": sorted(self.fail_on)}

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        return None

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]:
        answers: list[str | TurnFailure] = []
        for state, question in zip(states, questions):
            if f"{state.dialogue_id}:{state.round + 1}" in self.fail_on:
                answers.append(TurnFailure(f"scripted failure at round {state.round + 1}"))
            else:
                answers.append("yes" if derive_seed(0, state.target, question) % 2 else "no")
        return answers
