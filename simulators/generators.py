"""The model backends behind the bots (and behind DAR's reformulation): text in, text out, in batches.

    generator.load(context)                                    # once: weights onto the device, clients opened
    generator.generate(["prompt one", "prompt two"], seeds=[11, 12])
    vision.generate(prompts, images, seeds)                    # one image per prompt

``identity()`` holds the model's identity and every decoding parameter; the bots put it, the prompt and (for
sampled decoding only) the seed into the response-cache key. A generation that failed for good (an API error after
its retries) is returned as a ``TurnFailure`` in its place; the rest of the batch is unaffected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from harness.protocols import RunContext, TurnFailure


@runtime_checkable
class TextGenerator(Protocol):
    @property
    def sampling(self) -> bool:
        """True when outputs depend on the seed (temperature > 0): the seed then joins the cache key."""

    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str | TurnFailure]: ...


@runtime_checkable
class VisionGenerator(Protocol):
    @property
    def sampling(self) -> bool: ...

    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def generate(
        self, prompts: Sequence[str], images: Sequence[Image.Image], seeds: Sequence[int]
    ) -> list[str | TurnFailure]: ...
