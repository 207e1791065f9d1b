"""The seams between stages. Every call takes a batch (one entry per dialogue still running), never one dialogue.

A retriever is anything with ``prepare`` and ``rank``:

    class MyRetriever:
        def identity(self): return {"name": "mine"}
        def prepare(self, search_space, context): ...
        def rank(self, states): return RankBatch(ranks=tuple(...))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from PIL import Image

from harness.messages import Prompt
from harness.types import Benchmark, DialogueState, RankBatch, SearchSpace

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RunContext:
    """Where and how components run: resolved device, the shared cache folder, the run's global seed."""

    device: str
    cache_dir: Path
    seed: int = 0
    progress: bool = True
    keep_top: int = 10  # best images per state that a retriever ranking with the harness lists for the trace


@runtime_checkable
class Retriever(Protocol):
    """Ranks the whole search space for each dialogue state and returns the target's 0-based rank."""

    def identity(self) -> Mapping[str, Any]:
        """What changes this retriever's output (model fingerprint, preprocessing, query mode): goes into the
        manifest and into cache keys."""

    def prepare(self, search_space: SearchSpace, context: RunContext) -> None:
        """Index the search space (cached on disk where that is expensive). Called once before ``rank``."""

    def rank(self, states: Sequence[DialogueState]) -> RankBatch:
        """Rank the search space for every state; ``states[i].target_index`` is the target's position."""


@runtime_checkable
class Questioner(Protocol):
    """Asks the next question of each dialogue from its caption and turns so far (states at round t - 1 give the
    question of round t). A question that could not be produced is a ``TurnFailure``, never a dropped item."""

    def identity(self) -> Mapping[str, Any]:
        """Model identity, prompt template text, decoding parameters, post-processing: goes into the manifest."""

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        """Load models (once). ``benchmark`` gives the search space (image paths) and the recorded dialogues."""

    def ask(self, states: Sequence[DialogueState]) -> list[str | TurnFailure]: ...


@runtime_checkable
class RetrievalView(Protocol):
    """What a retrieval-aware questioner may see of the retriever (read-only; ``Retriever.retrieval_view()`` after
    ``prepare``): texts scored against the search space by the retriever's BASE text encoder and its cached image
    embeddings (for DAR and ADaFuSE, the text-only side: the view's rank of a text X is the rank the retriever gives
    the query X, text-only for fused retrievers), and the retriever's own current ranking of each dialogue state
    (fused for DAR and ADaFuSE). Retrievers that compute no scores (oracle, random) offer no view.

        view = retriever.retrieval_view()
        scores = view.text_scores(["a red bus", "a red bus, is it moving? yes"])    # (2, search space), float32
        best = view.current_ranking(states, depth=500)                               # per state, 500 positions
    """

    @property
    def size(self) -> int:
        """Images in the search space."""

    def text_identity(self) -> Mapping[str, Any]:
        """What the text embeddings depend on (weights, tokenizer, token limit): for caching them."""

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), D) float32 unit vectors from the base text encoder; a text's embedding does not depend on
        the texts beside it (``harness.retrieval_view`` encodes in batches of one fixed shape)."""

    def image_embeddings(self, positions: Sequence[int]) -> torch.Tensor:
        """(len(positions), D) float32 image embeddings of those search-space positions."""

    def text_scores(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), size) float32 dot products of the texts' embeddings with every image."""

    def current_ranking(self, states: Sequence[DialogueState], depth: int) -> list[tuple[int, ...]]:
        """Per state, the retriever's ``depth`` best images, best first (the harness's stable tie rule); empty for a
        state the retriever cannot rank."""


@runtime_checkable
class RetrievalAware(Protocol):
    """A questioner that needs the retriever (``needs_retrieval = True``): the runner binds a ``RetrievalView``
    after preparing the retriever, on every worker, and refuses, before any model loads, a retriever with none."""

    needs_retrieval: bool

    def bind_retrieval(self, view: RetrievalView) -> None: ...


@runtime_checkable
class NoteTaker(Protocol):
    """A questioner that writes notes once a round's turn is known (``DialogueState.notes``): ``states`` are at the
    new round, its turn included; one mapping of note name to text (or ``Generated``) per state, or a failure."""

    def write_notes(self, states: Sequence[DialogueState]) -> list[Mapping[str, str] | TurnFailure]: ...


@runtime_checkable
class Answerer(Protocol):
    """Answers each question looking at the dialogue's target image (``benchmark.search_space.resolve``)."""

    def identity(self) -> Mapping[str, Any]: ...

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None: ...

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]: ...


class Generated(str):
    """A bot's output after post-processing: the string itself is the text the dialogue gets (so a Generated is used
    wherever a plain answer is), ``raw`` the model's output, ``rules`` the cleaning rules that changed it,
    ``rejected`` the invalid draws before it (``harness.turn_validity``) and ``details`` what a multi-step bot did
    to arrive at it (PlugIR's candidates, drawn questions and KL values), all kept in the run's trace."""

    raw: str
    rules: tuple[str, ...]
    rejected: tuple[Mapping[str, Any], ...]
    details: Mapping[str, Any]

    def __new__(cls, text: str, raw: str | None = None, rules: tuple[str, ...] = (),
                rejected: tuple[Mapping[str, Any], ...] = (), details: Mapping[str, Any] | None = None) -> Self:
        generated = super().__new__(cls, text)
        generated.raw = text if raw is None else raw
        generated.rules = tuple(rules)
        generated.rejected = tuple(rejected)
        generated.details = dict(details or {})
        return generated

    @property
    def text(self) -> str:
        return str(self)

    def trace(self) -> dict[str, Any]:
        """What a run's trace keeps of this output."""
        rejected = {"rejected": [dict(entry) for entry in self.rejected]} if self.rejected else {}
        details = {"details": dict(self.details)} if self.details else {}
        return {"raw": self.raw, "text": self.text, "rules": list(self.rules), **rejected, **details}

    def __reduce__(self) -> tuple[Any, ...]:  # for Ray workers: str's own pickling would drop raw and rules
        return Generated, (str(self), self.raw, self.rules, self.rejected, self.details)

    def __repr__(self) -> str:
        rejected = f", rejected={self.rejected!r}" if self.rejected else ""
        return f"Generated({str(self)!r}, raw={self.raw!r}, rules={self.rules!r}{rejected})"


@dataclass(frozen=True)
class TracedTurn:
    """A generated round: the "question? answer" ``text``, what produced it (``trace``: each bot's raw output,
    cleaned text and rules), which the run keeps in trace.jsonl, and the round's notes (``DialogueState.notes``)."""

    text: str
    trace: Mapping[str, Any]
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TurnFailure:
    """A turn that could not be produced (for example an API call that failed after its retries, or every draw
    invalid); ``trace`` holds what the run's trace keeps of it (the rejected draws)."""

    reason: str
    trace: Mapping[str, Any] = field(default_factory=dict, hash=False)


@runtime_checkable
class DialogueSource(Protocol):
    """Supplies turn ``round + 1`` of every running dialogue (given its state at ``round``): recorded (replay) or
    generated (live). The runner never knows which."""

    records_dialog: bool  # True when the turns are generated: run records then keep the dialogue text

    def identity(self) -> Mapping[str, Any]: ...

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None: ...

    def next_turns(self, states: Sequence[DialogueState]) -> list[str | TracedTurn | TurnFailure]: ...


@runtime_checkable
class TextGenerator(Protocol):
    """A text model backend (seq2seq, causal chat, OpenAI-compatible endpoint) behind bots and DAR's
    reformulation: text in, text out, in batches. ``identity()`` holds the model's identity and every decoding
    parameter; a generation that failed for good is a ``TurnFailure`` in its place. ``sampled(temperature)`` and
    ``with_decoding(temperature=, max_new_tokens=, top_p=)`` give copies that decode otherwise and share the loaded
    model or client (redraws, and bots whose steps decode differently, need them).

        generator.load(context)
        generator.generate(["prompt one", "prompt two"], seeds=[11, 12])
    """

    @property
    def sampling(self) -> bool:
        """True when outputs depend on the seed (temperature > 0): the seed then joins the cache key."""

    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def generate(self, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[str | TurnFailure]:
        """A prompt is a string or a role-tagged ``Conversation`` (``harness.messages``): chat back-ends send its
        messages, text-to-text back-ends read it flattened."""


@runtime_checkable
class VisionGenerator(Protocol):
    """A vision-language backend (BLIP-2, OpenAI-compatible vision chat): one image per prompt."""

    @property
    def sampling(self) -> bool: ...

    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def generate(
        self, prompts: Sequence[str], images: Sequence[Image.Image], seeds: Sequence[int]
    ) -> list[str | TurnFailure]: ...
