"""The ``RetrievalView`` of a retriever built on a dual encoder: its text encoder, its image index and its own way of
turning a dialogue state into a query embedding (the encoded query text, or DAR's fused query).

    view = EncoderView(encoder, index, query_embeddings=retriever.query_embeddings)
    view.text_scores(["a red bus"])              # what the retriever's text side scores for that query
    view.current_ranking(states, depth=500)      # what the retriever itself ranks first for each state
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from harness.ranking import best_images
from harness.types import DialogueState


class TextEncoder(Protocol):
    def identity(self) -> Mapping[str, Any]: ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor: ...


FIXED_ROWS = 16  # texts per text-encoder batch of the view (every batch has this shape)
# Per state, its query embedding, or None where the retriever cannot rank that state.
QueryEmbeddings = Callable[[Sequence[DialogueState]], list[torch.Tensor | None]]


class EncoderView:
    def __init__(self, encoder: TextEncoder, index: torch.Tensor, query_embeddings: QueryEmbeddings) -> None:
        self._encoder = encoder
        self._index = index
        self._query_embeddings = query_embeddings

    @property
    def size(self) -> int:
        return int(self._index.shape[0])

    def text_identity(self) -> Mapping[str, Any]:
        """The encoder's identity and its device (another device can move an embedding's last bits)."""
        return {**self._encoder.identity(), "device": str(getattr(self._encoder, "device", ""))}

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Padded beside longer texts, or in a batch of another size, a text's embedding moves in its last bits, and
        so would every value a questioner derives from it (entropies, KL). So the distinct texts are encoded in
        batches of one shape: texts of one token length, ``FIXED_ROWS`` at a time, a short batch filled up with
        copies of its last text (an encoder without a tokenizer to count with encodes each text alone)."""
        if not texts:
            return torch.zeros((0, self._index.shape[1]), dtype=torch.float32, device=self._index.device)
        encoded: dict[str, torch.Tensor] = {}
        rows = FIXED_ROWS if self._counts_tokens else 1
        for group in self._same_shape_groups(list(dict.fromkeys(texts))):
            for start in range(0, len(group), rows):
                chunk = group[start:start + rows]
                encoded.update(zip(chunk, self._encoder.encode_texts(chunk + [chunk[-1]] * (rows - len(chunk)))))
        return torch.stack([encoded[text] for text in texts]).to(device=self._index.device, dtype=torch.float32)

    @property
    def _counts_tokens(self) -> bool:
        return getattr(self._encoder, "tokenizer", None) is not None

    def _same_shape_groups(self, texts: list[str]) -> list[list[str]]:
        if not self._counts_tokens:
            return [texts]
        limit = getattr(self._encoder, "max_text_tokens", None)
        lengths = self._encoder.tokenizer(texts, truncation=limit is not None, max_length=limit)["input_ids"]  # type: ignore[attr-defined]
        groups: dict[int, list[str]] = {}
        for text, ids in zip(texts, lengths):
            groups.setdefault(len(ids), []).append(text)
        return list(groups.values())

    def image_embeddings(self, positions: Sequence[int]) -> torch.Tensor:
        return self._index[torch.as_tensor(list(positions), dtype=torch.long, device=self._index.device)]

    def text_scores(self, texts: Sequence[str]) -> torch.Tensor:
        return self._scores(self.embed_texts(texts))

    def current_ranking(self, states: Sequence[DialogueState], depth: int) -> list[tuple[int, ...]]:
        queries = self._query_embeddings(states)
        rows = [row for row, query in enumerate(queries) if query is not None]
        ranking: list[tuple[int, ...]] = [() for _ in states]
        if not rows:
            return ranking
        scores = self._scores(torch.stack([queries[row] for row in rows]).to(self._index.device))  # type: ignore[misc]
        for row, best in zip(rows, best_images(scores, depth)):
            ranking[row] = best
        return ranking

    def _scores(self, queries: torch.Tensor) -> torch.Tensor:
        return queries.to(torch.float32) @ self._index.to(torch.float32).T
