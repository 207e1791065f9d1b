"""Sampling for transformers' ``generate`` in which each prompt's tokens depend on its own seed only.

transformers samples with one ``torch.multinomial`` over the whole batch from the global RNG, so a sampled output
changes with the prompts that share its batch (a resumed run, another ``batch_size``). ``RowSampler`` is a logits
processor that makes the draw itself, each row from its own ``torch.Generator`` seeded with that row's seed, and
returns scores that leave only the drawn token; ``generate`` then runs greedily (``do_sample=False``) and its argmax
takes that token. Rows that finished early still draw (their tokens are padding), which never touches another row.

    sampler = RowSampler(seeds=[11, 12], temperature=0.7, top_k=50, top_p=1.0, device="cpu")
    model.generate(**inputs, do_sample=False, logits_processor=LogitsProcessorList([sampler]))

The warping is transformers' own (temperature, then top-k, then top-p, as ``generate`` orders them when sampling);
the generation config's other processors (penalties, forced tokens) run before it, as they do when sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper


class RowSampler(LogitsProcessor):
    """Draws row ``i``'s next token from the warped distribution with the generator seeded by ``seeds[i]``."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int | None, top_p: float | None,
                 device: str) -> None:
        self._warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(temperature)]
        if top_k:
            self._warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            self._warpers.append(TopPLogitsWarper(top_p))
        self._generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self._generators):
            raise ValueError(f"{scores.shape[0]} rows to sample but {len(self._generators)} seeds")
        for warper in self._warpers:
            scores = warper(input_ids, scores)
        probabilities = torch.softmax(scores.float(), dim=-1)
        tokens = torch.cat([
            torch.multinomial(row, 1, generator=generator) for row, generator in zip(probabilities, self._generators)
        ])
        only_drawn = torch.full_like(scores, float("-inf"))
        return only_drawn.scatter_(1, tokens.unsqueeze(1), 0.0)  # type: ignore[return-value]
