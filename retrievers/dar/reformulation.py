"""DAR's two LLM steps: R1 rewrites a dialogue prefix into one retrieval caption S_t; R2 writes K diffusion prompts
from S_t. Any registered text generator serves (``hf-seq2seq``, ``hf-chat``, ``openai``).

    reformulator = Reformulator(REGISTRY.build("generator", "openai", model="gpt-4o-mini")[0],
                                caption_template, prompts_template)
    reformulator.load(context)                                                      # no weights yet
    prefixes = [state.query_turns for state in states]
    captions = reformulator.captions(prefixes)                      # S_t per dialogue prefix (Generated, cleaned)
    prompts = reformulator.image_prompts(captions, 3, prefixes)     # K prompts per caption, one per line

Both steps go through the shared response cache, keyed by (generator identity, template, input, decoding), so a
second run over the same dialogues (another base encoder, another benchmark holding the same prefix) makes no LLM
call. The LLM loads on the first cache miss: a generator that can tell its identity from its files (``resolve``,
the transformers backends) is only resolved by ``load``, so a fully cached run never holds its weights. A
generation that fails for good stops the run with its reason; what was generated before stays cached. Outputs are
cleaned (``retrievers.dar.cleaning``, unless ``clean`` is off) and an invalid one (an empty S_t, an R2 answer with
no prompt line) is redrawn, failed (an ``InvalidTurn``: DAR fails that dialogue) or kept, as ``policy`` says
(``harness.turn_validity``); a redraw's seed comes from (step, prompt, attempt), like its cache key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.hashing import derive_seed
from harness.prompts import PromptTemplate, load_template
from harness.protocols import Generated, RunContext, TextGenerator, TurnFailure
from harness.response_cache import ResponseCache
from harness.turn_validity import DEFAULT_POLICY, InvalidPolicy, InvalidTurn, generate_valid, require_resampling
from harness.turns import format_dialogue
from retrievers.dar.cleaning import CLEANING_VERSION, LIST_MARKER, caption_problem, clean_caption, clean_image_prompts

CAPTION_FIELDS = ("caption", "dialogue")
IMAGE_PROMPT_FIELDS = ("caption", "count")


def load_caption_template(source: str) -> PromptTemplate:
    return load_template(source, package="retrievers.dar", fields=CAPTION_FIELDS)


def load_image_prompt_template(source: str) -> PromptTemplate:
    return load_template(source, package="retrievers.dar", fields=IMAGE_PROMPT_FIELDS)


def parse_prompt_lines(text: str, count: int, fallback: str) -> list[str]:
    """The first ``count`` non-empty lines of R2's answer, list markers removed; missing lines are filled with the
    caption itself (so K images are always drawn, and the shortfall is visible in the cached answer)."""
    lines = [LIST_MARKER.sub("", line).strip() for line in text.splitlines()]
    prompts = [line for line in lines if line][:count]
    return prompts + [fallback] * (count - len(prompts))


class Reformulator:
    def __init__(self, generator: TextGenerator, caption_template: PromptTemplate,
                 image_prompt_template: PromptTemplate, clean: bool = True,
                 policy: InvalidPolicy = DEFAULT_POLICY) -> None:
        require_resampling(policy, generator, "DAR reformulator")
        self.generator = generator
        self.caption_template = caption_template
        self.image_prompt_template = image_prompt_template
        self.clean = clean
        self.policy = policy
        self._cache: ResponseCache | None = None
        self._context: RunContext | None = None

    def identity(self) -> Mapping[str, Any]:
        return {
            "generator": dict(self.generator.identity()),
            "caption_template": self.caption_template.identity(),
            "image_prompt_template": self.image_prompt_template.identity(),
            "cleaning": CLEANING_VERSION if self.clean else None,
            "invalid": self.policy.identity(),
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

    @property
    def cache_hits(self) -> int:
        return self._cache.hits if self._cache else 0

    def captions(self, prefixes: Sequence[Sequence[str]]) -> list[Generated | InvalidTurn]:
        """S_t for each dialogue prefix (caption first, then "question? answer" turns), cleaned; an S_t invalid in
        every draw is an ``InvalidTurn``."""
        prompts = [
            self.caption_template.render(caption=prefix[0], dialogue=format_dialogue(prefix)) for prefix in prefixes
        ]

        def clean(item: int, raw: str) -> Generated:
            return clean_caption(raw, prefixes[item]) if self.clean else Generated(raw.strip(), raw)

        return self._generate(prompts, "caption", clean)

    def image_prompts(self, captions: Sequence[str], count: int,
                      prefixes: Sequence[Sequence[str]]) -> list[Generated | InvalidTurn]:
        """``count`` diffusion prompts for each caption (one per line of the ``Generated``); ``prefixes``: the
        dialogue each caption was written from (for the copied-line rule)."""
        prompts = [self.image_prompt_template.render(caption=caption, count=count) for caption in captions]

        # One prompt per line: a caption written over several lines (cleaning off) fills in as one line.
        fills = [" ".join(caption.split()) for caption in captions]

        def clean(item: int, raw: str) -> Generated:
            if self.clean:
                return clean_image_prompts(raw, count, fills[item], prefixes[item])
            return Generated("\n".join(parse_prompt_lines(raw, count, fills[item])), raw)

        outputs = self._generate(prompts, "image prompts", clean)
        # An answer kept though no prompt line was left (on_invalid=keep) draws K images of S_t, as a shortfall does.
        return [Generated("\n".join([fills[item]] * count), output.raw, (*output.rules, "filled-with-caption"))
                if isinstance(output, Generated) and not output.text else output
                for item, output in enumerate(outputs)]

    def _generate(self, prompts: list[str], step: str,
                  clean: Callable[[int, str], Generated]) -> list[Generated | InvalidTurn]:
        if self._cache is None or self._context is None:
            raise RuntimeError("load() the reformulator first")
        context, cache = self._context, self._cache

        def draw(generator: Any, items: list[int], seeds: list[int] | None) -> list[str | TurnFailure]:
            # Greedy by default; a sampling generator gets a fixed seed so that a prompt always maps to one answer.
            item_seeds = seeds if seeds is not None else [0] * len(items)
            keys = [cache.key(model=generator.identity(), prompt=prompts[item], decoding={"seed": seed})
                    for item, seed in zip(items, item_seeds)]

            def compute(missing: list[int]) -> list[str | TurnFailure]:
                generator.load(context)  # the first miss loads the weights; later calls return at once
                return generator.generate([prompts[items[m]] for m in missing], [item_seeds[m] for m in missing])

            return cache.get_or_compute(keys, compute)

        outputs = generate_valid(self.policy, self.generator, len(prompts), draw, clean, caption_problem,
                                 lambda item, attempt: derive_seed(0, step, prompts[item], attempt) % 2**31,
                                 f"DAR reformulation ({step})")
        failed = [output for output in outputs if isinstance(output, TurnFailure) and not isinstance(output, InvalidTurn)]
        if failed:
            raise HarnessError(f"DAR reformulation ({step}) failed for {len(failed)} prompts: {failed[0].reason}; "
                               "rerun to retry (finished reformulations are cached)")
        return outputs  # type: ignore[return-value]
