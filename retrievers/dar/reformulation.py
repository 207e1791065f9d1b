"""DAR's two LLM steps: R1 rewrites a dialogue prefix into one retrieval caption S_t; R2 writes K diffusion prompts
from S_t. Any registered text generator serves (``hf-seq2seq``, ``hf-chat``, ``openai``).

    reformulator = Reformulator(REGISTRY.build("generator", "openai", model="gpt-4o-mini")[0],
                                caption_template, prompts_template)
    reformulator.load(context)                                                      # no weights yet
    captions = reformulator.captions([state.query_turns for state in states])       # S_t per dialogue prefix
    prompts = reformulator.image_prompts(captions, count=3)                         # K prompts per caption

Both steps go through the shared response cache, keyed by (generator identity, template, input, decoding), so a
second run over the same dialogues (another base encoder, another benchmark holding the same prefix) makes no LLM
call. The LLM loads on the first cache miss: a generator that can tell its identity from its files (``resolve``,
the transformers backends) is only resolved by ``load``, so a fully cached run never holds its weights. A
generation that fails for good stops the run with its reason; what was generated before stays cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.prompts import PromptTemplate, load_template
from harness.protocols import RunContext, TextGenerator, TurnFailure
from harness.response_cache import ResponseCache
from harness.turns import format_dialogue

CAPTION_FIELDS = ("caption", "dialogue")
IMAGE_PROMPT_FIELDS = ("caption", "count")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\(?\d+[.):])\s*")


def load_caption_template(source: str) -> PromptTemplate:
    return load_template(source, package="retrievers.dar", fields=CAPTION_FIELDS)


def load_image_prompt_template(source: str) -> PromptTemplate:
    return load_template(source, package="retrievers.dar", fields=IMAGE_PROMPT_FIELDS)


def parse_prompt_lines(text: str, count: int, fallback: str) -> list[str]:
    """The first ``count`` non-empty lines of R2's answer, list markers removed; missing lines are filled with the
    caption itself (so K images are always drawn, and the shortfall is visible in the cached answer)."""
    lines = [_LIST_MARKER.sub("", line).strip() for line in text.splitlines()]
    prompts = [line for line in lines if line][:count]
    return prompts + [fallback] * (count - len(prompts))


class Reformulator:
    def __init__(self, generator: TextGenerator, caption_template: PromptTemplate,
                 image_prompt_template: PromptTemplate) -> None:
        self.generator = generator
        self.caption_template = caption_template
        self.image_prompt_template = image_prompt_template
        self._cache: ResponseCache | None = None
        self._context: RunContext | None = None

    def identity(self) -> Mapping[str, Any]:
        return {
            "generator": dict(self.generator.identity()),
            "caption_template": self.caption_template.identity(),
            "image_prompt_template": self.image_prompt_template.identity(),
        }

    def load(self, context: RunContext) -> None:
        """Open the response cache and fix the generator's identity (the cache keys). Weights wait for the first
        miss; a generator without ``resolve`` (an API client, the scripted one) is cheap to load and loads now."""
        self._cache, self._context = ResponseCache(context.cache_dir), context
        resolve = getattr(self.generator, "resolve", None)
        (resolve if resolve is not None else self.generator.load)(context)

    @property
    def calls(self) -> int:
        """LLM generations this reformulator asked for (cache misses)."""
        return self._cache.misses if self._cache else 0

    def captions(self, prefixes: Sequence[Sequence[str]]) -> list[str]:
        """S_t for each dialogue prefix (caption first, then "question? answer" turns)."""
        prompts = [
            self.caption_template.render(caption=prefix[0], dialogue=format_dialogue(prefix)) for prefix in prefixes
        ]
        return self._generate(prompts, "caption")

    def image_prompts(self, captions: Sequence[str], count: int) -> list[list[str]]:
        """``count`` diffusion prompts for each caption."""
        prompts = [self.image_prompt_template.render(caption=caption, count=count) for caption in captions]
        answers = self._generate(prompts, "image prompts")
        return [parse_prompt_lines(answer, count, caption) for answer, caption in zip(answers, captions)]

    def _generate(self, prompts: list[str], step: str) -> list[str]:
        if self._cache is None or self._context is None:
            raise RuntimeError("load() the reformulator first")
        context, model = self._context, self.generator.identity()
        # Greedy by default; a sampling generator gets a fixed seed so that a prompt always maps to one answer.
        keys = [self._cache.key(model=model, prompt=prompt, decoding={"seed": 0}) for prompt in prompts]

        def compute(missing: list[int]) -> list[str | TurnFailure]:
            self.generator.load(context)  # the first miss loads the weights; later calls return at once
            return self.generator.generate([prompts[i] for i in missing], [0] * len(missing))

        outputs = self._cache.get_or_compute(keys, compute)
        failed = [output for output in outputs if isinstance(output, TurnFailure)]
        if failed:
            raise HarnessError(f"DAR reformulation ({step}) failed for {len(failed)} prompts: {failed[0].reason}; "
                               "rerun to retry (finished reformulations are cached)")
        return [str(output).strip() for output in outputs]
