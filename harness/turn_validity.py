"""What happens to a generated turn that is invalid after cleaning (an empty question, a statement where a question
was asked for, an empty answer or caption): resample it, fail its dialogue, or keep it flagged.

    policy = InvalidPolicy(on_invalid="resample", max_resamples=2)   # the default of every generating bot
    outputs = generate_valid(policy, generator, len(prompts), draw, clean, problem, redraw_seed, "questioner")

``generate_valid`` cleans every first output and checks it with ``problem`` (a reason, or None when valid). Under
``resample`` each invalid one is drawn again up to ``max_resamples`` times, sampling (temperature: the policy's, else
the generator's own when it samples, else 0.7; one sequence per prompt) with a seed that depends only on the item
and the attempt (``redraw_seed(item, attempt)``: the bots use (run seed, role, dialogue, round, attempt)), so redraws
are reproducible and do not depend on the batch or where a run resumed; every redraw goes through the response
cache like a first draw. An item still invalid after its last redraw, or any invalid item under ``fail``, becomes an
``InvalidTurn`` (a ``TurnFailure``) with the reason and the rejected outputs; under ``keep`` the invalid output
stays, its rules naming the problem (``invalid:<reason>``). Every rejected draw (raw output, cleaned text, reason, attempt) travels with
the result into the run's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.protocols import Generated, TurnFailure

ON_INVALID = ("resample", "fail", "keep")
REDRAW_TEMPERATURE = 0.7  # when the generator itself is greedy


@dataclass(frozen=True)
class InvalidPolicy:
    on_invalid: str = "resample"
    max_resamples: int = 2
    temperature: float | None = None  # of the redraws; None: the generator's own when it samples, else 0.7

    def __post_init__(self) -> None:
        if self.on_invalid not in ON_INVALID:
            raise ConfigError(f"on_invalid must be one of {', '.join(ON_INVALID)}, got {self.on_invalid!r}")
        if int(self.max_resamples) != self.max_resamples or self.max_resamples < 0:
            raise ConfigError(f"max_resamples must be a whole number of at least 0, got {self.max_resamples!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"the redraw temperature must be positive, got {self.temperature!r}")

    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {"on_invalid": self.on_invalid}
        if self.on_invalid == "resample":
            identity.update(max_resamples=self.max_resamples, temperature=self.temperature)
        return identity

    def redraw_temperature(self, generator: Any) -> float:
        if self.temperature is not None:
            return self.temperature
        own = getattr(generator, "temperature", 0.0)
        return float(own) if getattr(generator, "sampling", False) and own > 0 else REDRAW_TEMPERATURE


@dataclass(frozen=True)
class InvalidTurn(TurnFailure):
    """A turn whose every draw was invalid (as opposed to a generation that failed, say an API error)."""


DEFAULT_POLICY = InvalidPolicy()


def require_resampling(policy: InvalidPolicy, generator: Any, what: str) -> None:
    """Refuse, before any model loads, a resample policy over a generator that cannot sample: one without
    ``sampled(temperature)``, a copy that samples one sequence per prompt and shares the loaded weights or client."""
    if policy.on_invalid == "resample" and policy.max_resamples and not callable(getattr(generator, "sampled", None)):
        raise ConfigError(f"the {what}'s generator {type(generator).__name__} cannot redraw (it has no sampled()); "
                          "pass on_invalid=fail or on_invalid=keep")


# draw(generator, items, seeds): one output per item, through the response cache (None: the first draw's seeds)
Draw = Callable[[Any, list[int], list[int] | None], Sequence[str | TurnFailure]]


def generate_valid(
    policy: InvalidPolicy,
    generator: Any,
    count: int,
    draw: Draw,
    clean: Callable[[int, str], Generated],
    problem: Callable[[Generated], str | None],
    redraw_seed: Callable[[int, int], int],
    what: str,
) -> list[Generated | TurnFailure]:
    """``count`` cleaned, valid outputs (or failures), drawing again where ``policy`` says so."""
    results: list[Generated | TurnFailure] = [
        output if isinstance(output, TurnFailure) else clean(item, output)
        for item, output in enumerate(draw(generator, list(range(count)), None))
    ]
    rejected: dict[int, list[Mapping[str, Any]]] = {}
    pending = []
    for item, output in enumerate(results):
        reason = None if isinstance(output, TurnFailure) else problem(output)
        if reason is not None:
            assert isinstance(output, Generated)
            rejected[item] = [_rejection(output, reason, 0)]
            pending.append(item)
    if policy.on_invalid == "keep":
        for item in pending:
            kept = results[item]
            assert isinstance(kept, Generated)
            results[item] = Generated(kept.text, kept.raw, (*kept.rules, f"invalid:{rejected[item][0]['reason']}"))
        return results
    if policy.on_invalid == "resample" and pending and policy.max_resamples:
        sampler = generator.sampled(policy.redraw_temperature(generator))
        for attempt in range(1, policy.max_resamples + 1):
            outputs = draw(sampler, pending, [redraw_seed(item, attempt) for item in pending])
            still_invalid = []
            for item, output in zip(pending, outputs):
                if isinstance(output, TurnFailure):
                    results[item] = TurnFailure(output.reason, {"rejected": rejected.pop(item), "error": output.reason})
                    continue
                cleaned = clean(item, output)
                reason = problem(cleaned)
                if reason is None:
                    results[item] = Generated(cleaned.text, cleaned.raw, cleaned.rules, tuple(rejected.pop(item)))
                else:
                    rejected[item].append(_rejection(cleaned, reason, attempt))
                    still_invalid.append(item)
            pending = still_invalid
            if not pending:
                break
    for item in pending:
        draws = rejected[item]
        reasons = ", ".join(dict.fromkeys(str(entry["reason"]) for entry in draws))
        results[item] = InvalidTurn(f"{what} output invalid in {len(draws)} draws ({reasons}); last raw output "
                                    f"{draws[-1]['raw']!r}", {"rejected": draws})
    return results


def _rejection(output: Generated, reason: str, attempt: int) -> dict[str, Any]:
    return {"attempt": attempt, "raw": output.raw, "text": output.text, "reason": reason}
