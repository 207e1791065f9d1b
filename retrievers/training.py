"""The training loop every trainer here shares: seeded epochs, resume after a crash, mid-epoch checkpoints, RNG
state and best-checkpoint selection. What is trained, and how one batch and one validation go, is the task's.

    result = train_loop(task, train_indices, LoopSettings(epochs=50, batch_size=128, seed=0, seed_name="adafuse"),
                        out_dir, identity={"settings": ..., "data": ...}, record_type=EpochRecord)
    result.best_epoch, result.history

Layout of ``out_dir``: ``best/`` holds the best epoch by the task's validation score (the first one on ties),
``last/`` the latest state the run resumes from: the task's checkpoint files plus ``training_state.pt`` (the task's
optimizer, schedule and RNG states, the history, the best score, the position). ``last/`` is written after every
epoch and, with ``checkpoint_every`` N, after every N-th optimizer step inside an epoch (counted over the whole run),
with the number of batches of the epoch done and their losses. Each folder is written beside its old version and
swapped in, so a kill mid-write never leaves a half-written one.

Shuffling is seeded per epoch from (seed, ``{seed_name}-order``, epoch) and the torch RNG (dropout) from (seed,
``{seed_name}-dropout``, epoch) at each epoch's start; a mid-epoch resume goes on from the RNG state stored in
``last/``. A run killed at any point and resumed therefore ends bit-identical (on the CPU) to an uninterrupted one.
A stored run whose ``identity`` (settings, data fingerprint) differs from the new one is refused.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import torch
import torch.nn.functional as F

from harness.atomic import atomic_torch_save
from harness.errors import ConfigError
from harness.hashing import derive_seed
from harness.progress import progress_bar
from harness.ranking import ranks_from_scores

log = logging.getLogger("harness.training")

STATE_FILE = "training_state.pt"
MAX_LOGIT_SCALE = 100.0  # the learnable temperature's bound, as CLIP and BLIP clamp it
MIN_POOL_PER_K = 10  # a validation pool under 10 x k images makes Hits@k nearly always 100%
Record = TypeVar("Record", bound=tuple)


class Validated(NamedTuple, Generic[Record]):
    """One epoch's validation: the record kept in the history, and the score the best epoch is chosen by (a number,
    or a tuple compared element by element: the later elements break ties of the earlier)."""

    record: Record
    score: float | tuple[float, ...]


class TrainingTask(Protocol[Record]):
    """The trainer of one model, driven by ``train_loop``."""

    def step(self, indices: torch.Tensor) -> float:
        """Train one batch of example ``indices``; return its loss."""

    def validate(self, epoch: int, train_loss: float) -> Validated[Record]:
        """Validate the model after ``epoch`` (whose mean batch loss was ``train_loss``)."""

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule and RNG states (the model's weights go into ``write_checkpoint``)."""

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        """Restore the weights written into ``directory`` and the states of ``state_dict``."""

    def write_checkpoint(self, directory: Path, epoch: int, batches: int, history: Sequence[Record]) -> None:
        """Write the model as of ``epoch`` complete epochs plus ``batches`` of the next into ``directory``."""


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    seed: int
    seed_name: str  # the namespace of the shuffling and dropout seeds (kept per trainer, so results never move)
    checkpoint_every: int = 0  # 0: ``last/`` at epoch ends only

    def __post_init__(self) -> None:
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be 0 (epoch ends only) or positive, got {self.checkpoint_every}")


@dataclass(frozen=True)
class LoopResult(Generic[Record]):
    history: tuple[Record, ...]
    best_epoch: int
    best_score: float | tuple[float, ...] | None
    resumed_from_epoch: int | None  # the first epoch this call ran, None for a fresh run
    resumed_at_batch: int  # batches of that epoch done before the resume


class _Position(NamedTuple):
    """Where ``last/`` stands: ``epochs`` complete, plus ``batches`` of the next one (with their ``losses``)."""

    epochs: int
    batches: int
    losses: tuple[float, ...]


def batches_for_epoch(count: int, batch_size: int, seed: int, epoch: int, seed_name: str) -> list[torch.Tensor]:
    """A seeded shuffle of ``range(count)`` cut into batches; a last batch of one example (no negatives) is
    dropped."""
    generator = torch.Generator().manual_seed(derive_seed(seed, f"{seed_name}-order", epoch))
    order = torch.randperm(count, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over ``count`` examples (the same for every epoch's shuffle)."""
    batches = math.ceil(count / batch_size)
    last = count - (batches - 1) * batch_size
    return batches - 1 if batches > 1 and last < 2 else batches


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over ``warmup_steps``, then cosine decay to 0 at the end."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def decay_groups(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups decaying weight matrices only (biases, norms and scalars are not decayed)."""
    parameters = list(parameters)
    decay = [p for p in parameters if p.dim() >= 2]
    plain = [p for p in parameters if p.dim() < 2]
    return [group for group in ({"params": decay, "lr": lr, "weight_decay": weight_decay},
                                {"params": plain, "lr": lr, "weight_decay": 0.0}) if group["params"]]


def train_loop(
    task: TrainingTask[Record],
    examples: torch.Tensor,
    settings: LoopSettings,
    out_dir: Path,
    identity: Mapping[str, Any],
    record_type: Callable[..., Record],
    progress: bool = True,
    on_checkpoint: Callable[[int, int], None] | None = None,
) -> LoopResult[Record]:
    """Train ``task`` on the example indices ``examples`` for ``settings.epochs`` (or resume the run in ``out_dir``,
    or return the finished one); see the module doc. ``record_type`` rebuilds stored history records.
    ``on_checkpoint(epochs, batches)`` runs after each write of ``last/`` with the position stored there (tests use
    it to kill a run)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("best", "last"):
        _recover(out_dir, name)
    per_epoch = steps_per_epoch(len(examples), settings.batch_size)
    history: list[Record] = []
    best_score: Any = None
    best_epoch, position, resumed = 0, _Position(0, 0, ()), None
    state_path = out_dir / "last" / STATE_FILE
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if any(state[key] != value for key, value in identity.items()):
            raise ConfigError(f"{out_dir} holds a training run with other settings or data; use another --out "
                              f"(stored settings: {json.dumps(state.get('settings'), sort_keys=True)})")
        task.load(out_dir / "last", state["trainer"])
        history = [record_type(*record) for record in state["history"]]
        # States written by the first trainer name the best score "best_hits".
        best_score, best_epoch = state.get("best_score", state.get("best_hits")), state["best_epoch"]
        # States written before mid-epoch checkpoints existed carry neither key: they stand at an epoch's end.
        position = _Position(state["epoch"], state.get("batches_done", 0), tuple(state.get("epoch_losses", ())))
        resumed = position.epochs + 1
        if resumed <= settings.epochs:
            log.info("resuming %s after epoch %d and %d more batches", out_dir, position.epochs, position.batches)
    resumed_at_batch = position.batches

    def save_last(at: _Position) -> None:
        # Called right after a step or an epoch's validation: the task's state (RNG included) is the one that
        # continues from ``at``, and the shuffled order of the epoch is rebuilt from (seed, epoch).
        def write(path: Path) -> None:
            task.write_checkpoint(path, at.epochs, at.batches, history)
            atomic_torch_save({"epoch": at.epochs, "batches_done": at.batches, "epoch_losses": list(at.losses),
                               **identity, "trainer": task.state_dict(),
                               "history": [tuple(record) for record in history], "best_score": best_score,
                               "best_epoch": best_epoch}, path / STATE_FILE)

        _replace_dir(out_dir, "last", write)
        if on_checkpoint is not None:
            on_checkpoint(at.epochs, at.batches)

    for epoch in range(position.epochs + 1, settings.epochs + 1):
        skip, losses = position.batches, list(position.losses)
        if skip == 0:  # the epoch's dropout seed; a mid-epoch resume goes on from the RNG state in last/
            torch.manual_seed(derive_seed(settings.seed, f"{settings.seed_name}-dropout", epoch))
        batches = batches_for_epoch(len(examples), settings.batch_size, settings.seed, epoch, settings.seed_name)
        with progress_bar(len(batches), f"epoch {epoch}/{settings.epochs}", "batch", progress, initial=skip) as bar:
            for done, batch in enumerate(batches[skip:], start=skip + 1):
                losses.append(task.step(examples[batch]))
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                step = (epoch - 1) * per_epoch + done
                if settings.checkpoint_every and step % settings.checkpoint_every == 0 and done < len(batches):
                    save_last(_Position(epoch - 1, done, tuple(losses)))
        validated = task.validate(epoch, sum(losses) / max(1, len(losses)))
        history.append(validated.record)
        if best_score is None or validated.score > best_score:
            best_score, best_epoch = validated.score, epoch
            _replace_dir(out_dir, "best", lambda path, epoch=epoch: task.write_checkpoint(path, epoch, 0, history))
        position = _Position(epoch, 0, ())
        save_last(position)
    return LoopResult(tuple(history), best_epoch, best_score, resumed, resumed_at_batch)


def _replace_dir(out_dir: Path, name: str, write: Callable[[Path], None]) -> None:
    """Write a checkpoint folder beside ``out_dir/name`` and swap it in, so a kill mid-write never leaves a
    half-written ``name``: the old folder is moved aside first and restored by ``_recover`` if needed."""
    final, partial, old = out_dir / name, out_dir / f"{name}.partial", out_dir / f"{name}.old"
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _recover(out_dir: Path, name: str) -> None:
    final, old = out_dir / name, out_dir / f"{name}.old"
    if not final.exists() and old.exists():
        old.rename(final)


class Split(NamedTuple):
    train: torch.Tensor  # example indices
    validation: torch.Tensor


def split_by_dialogue(dialogue_ids: Sequence[str], validation_fraction: float, seed: int,
                      seed_name: str = "adafuse") -> Split:
    """Examples whose dialogue's seeded hash falls below ``validation_fraction`` go to validation. With a positive
    fraction at least one dialogue is held out (the one with the lowest hash), and at least one is kept for
    training. ``seed_name`` is the trainer's seed namespace (kept per trainer, so splits never move)."""
    if not 0 <= validation_fraction < 1:
        raise ConfigError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    distinct = sorted(set(dialogue_ids))
    scores = {dialogue: derive_seed(seed, f"{seed_name}-validation", dialogue) / 2**63 for dialogue in distinct}
    held_out = {dialogue for dialogue, score in scores.items() if score < validation_fraction}
    if validation_fraction > 0 and not held_out and len(distinct) > 1:
        held_out = {min(distinct, key=scores.__getitem__)}
    if len(held_out) == len(distinct):
        raise ConfigError(f"the validation split ({validation_fraction}) leaves no dialogue to train on")
    flags = torch.tensor([dialogue in held_out for dialogue in dialogue_ids], dtype=torch.bool)
    indices = torch.arange(len(dialogue_ids))
    return Split(indices[~flags], indices[flags])


def contrastive_loss(
    queries: torch.Tensor, targets: torch.Tensor, target_ids: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch: query i's positive is target i; rows sharing a target are not negatives."""
    logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * queries @ targets.T
    duplicates = (target_ids[:, None] == target_ids[None, :]) & ~torch.eye(len(target_ids), dtype=torch.bool,
                                                                            device=logits.device)
    logits = logits.masked_fill(duplicates, float("-inf"))
    labels = torch.arange(len(target_ids), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def ranks_in_pool(scores: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """0-based ranks under the harness's stable tie rule; an unrankable query counts as last."""
    ranking = ranks_from_scores(scores, columns.tolist())
    ranks = torch.tensor(ranking.ranks, dtype=torch.float64)
    return torch.where(ranks < 0, float(scores.shape[1]), ranks)


def optimizer_state(optimizer: torch.optim.Optimizer, scheduler: Any, logit_scale: torch.Tensor) -> dict[str, Any]:
    """What a contrastive trainer's ``state_dict`` holds besides its weights: the optimizer, the schedule, the
    temperature and the RNG states (so a resumed run draws the same dropout masks)."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "logit_scale": logit_scale.detach().cpu(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_optimizer_state(state: Mapping[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any,
                            logit_scale: torch.Tensor) -> None:
    """Undo ``optimizer_state``."""
    with torch.no_grad():
        logit_scale.copy_(state["logit_scale"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
