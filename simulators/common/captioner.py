"""Captioners: one caption per image from any vision generator (BLIP-2, an OpenAI-compatible vision model), for the
candidate captions PlugIR's questioner shows (``harness data caption``).

    captioner = VisionCaptioner(Blip2Generator("Salesforce/blip2-flan-t5-xl", max_new_tokens=30),
                                load_template("captioner"))
    captioner.prepare(context)
    captions = captioner.caption(paths)        # a Generated (or a TurnFailure) per image, in order

Every caption is cached on disk under (generator identity, prompt, image content hash), like the answerers'
responses, so an interrupted captioning job run again captions only the images it had not finished. An empty
caption is redrawn, failed or kept as the ``InvalidPolicy`` says; greedy by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.hashing import derive_seed, sha256_file
from harness.images import load_rgb
from harness.prompts import PromptTemplate
from harness.protocols import Generated, RunContext, TurnFailure, VisionGenerator
from harness.response_cache import ResponseCache
from harness.turn_validity import DEFAULT_POLICY, InvalidPolicy, generate_valid, require_resampling
from harness.usage import usage_of


class VisionCaptioner:
    role = "captioner"

    def __init__(self, generator: VisionGenerator, template: PromptTemplate,
                 policy: InvalidPolicy = DEFAULT_POLICY) -> None:
        require_resampling(policy, generator, self.role)
        self.generator = generator
        self.template = template
        self.policy = policy
        self._cache: ResponseCache | None = None
        self._context: RunContext | None = None

    def identity(self) -> Mapping[str, Any]:
        return {"role": self.role, "generator": dict(self.generator.identity()), "template": self.template.identity(),
                "invalid": self.policy.identity()}

    def prepare(self, context: RunContext) -> None:
        """Fix the generator's identity; its weights load on the first image not in the cache."""
        self._cache, self._context = ResponseCache(context.cache_dir), context
        resolve = getattr(self.generator, "resolve", None)
        (resolve if resolve is not None else self.generator.load)(context)

    def usage(self) -> dict[str, int]:
        cache = self._cache
        return {**usage_of(self.generator), "cache_hits": cache.hits if cache else 0,
                "cache_misses": cache.misses if cache else 0}

    def caption(self, paths: Sequence[Path]) -> list[Generated | TurnFailure]:
        if self._cache is None or self._context is None:
            raise RuntimeError("prepare() the captioner first")
        cache, context = self._cache, self._context
        prompt = self.template.render()
        digests = [sha256_file(path) for path in paths]

        def draw(generator: Any, items: list[int], seeds: list[int] | None) -> list[str | TurnFailure]:
            item_seeds = seeds if seeds is not None else [0] * len(items)
            model = generator.identity()
            keys = [cache.key(model=model, prompt={"text": prompt, "image_sha256": digests[item]},
                              decoding={"seed": seed} if generator.sampling else {})
                    for item, seed in zip(items, item_seeds)]

            def compute(missing: list[int]) -> list[str | TurnFailure]:
                generator.load(context)
                chosen = [items[m] for m in missing]
                return generator.generate([prompt] * len(chosen), load_rgb([paths[item] for item in chosen]),
                                          [item_seeds[m] for m in missing])

            return cache.get_or_compute(keys, compute)

        return generate_valid(self.policy, self.generator, len(paths), draw,
                              lambda item, raw: Generated(" ".join(raw.split()), raw),
                              lambda caption: None if caption.text else "empty",
                              lambda item, attempt: derive_seed(0, "caption", digests[item], attempt) % 2**31,
                              self.role)
