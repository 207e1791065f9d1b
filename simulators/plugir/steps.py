"""The LLM calls of a multi-step bot: one generator per step, each decoding its own way and sharing one loaded
model or client, every call through the shared response cache.

    steps = LLMSteps(generator, {"question": StepDecoding(0.5, 32), "filter": StepDecoding(0.0, 10)})
    steps.load(context)                                 # fixes identities; weights wait for the first cache miss
    answers = steps.draw("filter", conversations, seeds)

A key holds the step generator's identity (its decoding included), the prompt's role-tagged messages and, when the
step samples, the seed. Like DAR's reformulation, a generator that can tell its identity from its files
(``resolve``) loads its weights only on the first miss, so a fully cached run never holds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import ConfigError
from harness.messages import Prompt, prompt_key
from harness.protocols import Generated, RunContext, TextGenerator, TurnFailure
from harness.response_cache import ResponseCache
from harness.turn_validity import InvalidPolicy, generate_valid
from harness.usage import usage_of


@dataclass(frozen=True)
class StepDecoding:
    temperature: float
    max_new_tokens: int
    top_p: float | None = None


class LLMSteps:
    def __init__(self, generator: TextGenerator, decodings: Mapping[str, StepDecoding], what: str) -> None:
        if not callable(getattr(generator, "with_decoding", None)):
            raise ConfigError(f"the {what}'s generator {type(generator).__name__} cannot change its decoding per step "
                              "(it has no with_decoding()); use hf-seq2seq, hf-chat or openai")
        self.generator = generator
        self.decodings = dict(decodings)
        self.what = what
        self._generators = {step: generator.with_decoding(**asdict(decoding))  # type: ignore[attr-defined]
                            for step, decoding in self.decodings.items()}
        self.calls: Counter[str] = Counter()  # generations asked for (cache misses), per step
        self._cache: ResponseCache | None = None
        self._context: RunContext | None = None

    def identity(self) -> dict[str, Any]:
        return {"generator": dict(self.generator.identity()),
                "steps": {step: asdict(decoding) for step, decoding in self.decodings.items()}}

    def load(self, context: RunContext) -> None:
        self._cache, self._context = ResponseCache(context.cache_dir), context
        for generator in (self.generator, *self._generators.values()):
            resolve = getattr(generator, "resolve", None)
            (resolve if resolve is not None else generator.load)(context)

    def usage(self) -> dict[str, int]:
        cache = self._cache
        return {**usage_of(self.generator), "cache_hits": cache.hits if cache else 0,
                "cache_misses": cache.misses if cache else 0}

    def draw(self, step: str, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[str | TurnFailure]:
        """One output per prompt (a failure where the back-end gave up), cached."""
        return self._draw(self._generators[step], step, list(range(len(prompts))), prompts, list(seeds))

    def valid(self, step: str, prompts: Sequence[Prompt], seeds: Sequence[int], policy: InvalidPolicy,
              clean: Callable[[int, str], Generated], problem: Callable[[Generated], str | None],
              redraw_seed: Callable[[int, int], int]) -> list[Generated | TurnFailure]:
        """Cleaned outputs, an invalid one redrawn, failed or kept as ``policy`` says (``harness.turn_validity``)."""
        def draw(generator: Any, items: list[int], item_seeds: list[int] | None) -> list[str | TurnFailure]:
            chosen = item_seeds if item_seeds is not None else [seeds[item] for item in items]
            return self._draw(generator, step, items, prompts, chosen)

        return generate_valid(policy, self._generators[step], len(prompts), draw, clean, problem, redraw_seed,
                              f"{self.what} ({step})")

    def _draw(self, generator: Any, step: str, items: list[int], prompts: Sequence[Prompt],
              seeds: list[int]) -> list[str | TurnFailure]:
        if self._cache is None or self._context is None:
            raise RuntimeError(f"load() the {self.what}'s steps first")
        context, cache, model = self._context, self._cache, generator.identity()
        keys = [cache.key(model=model, prompt=prompt_key(prompts[item]),
                          decoding={"seed": seed} if generator.sampling else {})
                for item, seed in zip(items, seeds)]

        def compute(missing: list[int]) -> list[str | TurnFailure]:
            generator.load(context)  # the first miss loads the weights; later calls return at once
            self.calls[step] += len(missing)
            return generator.generate([prompts[items[m]] for m in missing], [seeds[m] for m in missing])

        return cache.get_or_compute(keys, compute)
