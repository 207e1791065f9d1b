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
from typing import Any, Protocol, Self, runtime_checkable

from PIL import Image

from harness.types import Benchmark, DialogueState, RankBatch, SearchSpace


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
class Answerer(Protocol):
    """Answers each question looking at the dialogue's target image (``benchmark.search_space.resolve``)."""

    def identity(self) -> Mapping[str, Any]: ...

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None: ...

    def answer(self, states: Sequence[DialogueState], questions: Sequence[str]) -> list[str | TurnFailure]: ...


class Generated(str):
    """A bot's output after post-processing: the string itself is the text the dialogue gets (so a Generated is used
    wherever a plain answer is), ``raw`` the model's output, ``rules`` the cleaning rules that changed it and
    ``rejected`` the invalid draws before it (``harness.turn_validity``), all kept in the run's trace."""

    raw: str
    rules: tuple[str, ...]
    rejected: tuple[Mapping[str, Any], ...]

    def __new__(cls, text: str, raw: str | None = None, rules: tuple[str, ...] = (),
                rejected: tuple[Mapping[str, Any], ...] = ()) -> Self:
        generated = super().__new__(cls, text)
        generated.raw = text if raw is None else raw
        generated.rules = tuple(rules)
        generated.rejected = tuple(rejected)
        return generated

    @property
    def text(self) -> str:
        return str(self)

    def trace(self) -> dict[str, Any]:
        """What a run's trace keeps of this output."""
        rejected = {"rejected": [dict(entry) for entry in self.rejected]} if self.rejected else {}
        return {"raw": self.raw, "text": self.text, "rules": list(self.rules), **rejected}

    def __reduce__(self) -> tuple[Any, ...]:  # for Ray workers: str's own pickling would drop raw and rules
        return Generated, (str(self), self.raw, self.rules, self.rejected)

    def __repr__(self) -> str:
        rejected = f", rejected={self.rejected!r}" if self.rejected else ""
        return f"Generated({str(self)!r}, raw={self.raw!r}, rules={self.rules!r}{rejected})"


@dataclass(frozen=True)
class TracedTurn:
    """A generated round: the "question? answer" ``text`` and what produced it (``trace``: each bot's raw output,
    cleaned text and rules), which the run keeps in trace.jsonl."""

    text: str
    trace: Mapping[str, Any]


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
    parameter; a generation that failed for good is a ``TurnFailure`` in its place.

        generator.load(context)
        generator.generate(["prompt one", "prompt two"], seeds=[11, 12])
    """

    @property
    def sampling(self) -> bool:
        """True when outputs depend on the seed (temperature > 0): the seed then joins the cache key."""

    def identity(self) -> Mapping[str, Any]: ...

    def load(self, context: RunContext) -> None: ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[str | TurnFailure]: ...


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
