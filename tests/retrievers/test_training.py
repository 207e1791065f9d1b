"""The shared training loop on a toy task (a linear model fitting a fixed target): seeded epochs, best-epoch
selection, refusal of another run's folder, and a run stopped at a mid-epoch checkpoint that resumes to the same
weights as an uninterrupted one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

from harness.errors import ConfigError
from retrievers.training import (
    LoopSettings,
    Validated,
    batches_for_epoch,
    steps_per_epoch,
    train_loop,
    warmup_cosine,
)


class ToyRecord(NamedTuple):
    epoch: int
    train_loss: float
    validation_loss: float


class ToyTask:
    """Fits ``inputs @ w`` to ``targets`` with SGD and dropout, so the RNG state matters on resume."""

    def __init__(self, scores: Sequence[float] | None = None) -> None:
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(40, 3, generator=generator)
        self.targets = self.inputs @ torch.tensor([1.0, -2.0, 0.5])
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.optimizer = torch.optim.SGD([self.weight], lr=0.05)
        self.scores = scores  # fixed validation scores per epoch, to test the selection

    def step(self, indices: torch.Tensor) -> float:
        inputs = torch.nn.functional.dropout(self.inputs[indices], p=0.1, training=True)
        loss = ((inputs @ self.weight - self.targets[indices]) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def validate(self, epoch: int, train_loss: float) -> Validated[ToyRecord]:
        with torch.no_grad():
            loss = float(((self.inputs @ self.weight - self.targets) ** 2).mean())
        score = self.scores[epoch - 1] if self.scores is not None else -loss
        return Validated(ToyRecord(epoch, train_loss, loss), score)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state()}

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.load(directory / "weight.pt", weights_only=True))
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])

    def write_checkpoint(self, directory: Path, epoch: int, batches: int, history: Sequence[ToyRecord]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.weight.detach().clone(), directory / "weight.pt")
        (directory / "epoch.txt").write_text(f"{epoch} {batches} {len(history)}")


SETTINGS = LoopSettings(epochs=3, batch_size=8, seed=4, seed_name="toy", checkpoint_every=3)
IDENTITY = {"settings": {"lr": 0.05}, "data": "toy-40"}


class Stop(Exception):
    pass


def _run(out: Path, task: ToyTask | None = None, stop_at: tuple[int, int] | None = None, **changes: Any):
    def on_checkpoint(epochs: int, batches: int) -> None:
        if (epochs, batches) == stop_at:
            raise Stop

    settings = LoopSettings(**{**SETTINGS.__dict__, **changes})
    return train_loop(task or ToyTask(), torch.arange(40), settings, out, IDENTITY, ToyRecord, progress=False,
                      on_checkpoint=on_checkpoint)


@pytest.mark.parametrize(("count", "batch_size"), [(1, 2), (9, 4), (16, 8), (17, 8), (18, 8), (5, 1), (40, 40)])
def test_steps_per_epoch_counts_the_batches_of_every_shuffle(count: int, batch_size: int) -> None:
    for epoch in (1, 2):
        assert steps_per_epoch(count, batch_size) == len(batches_for_epoch(count, batch_size, 0, epoch, "toy"))


def test_warmup_then_cosine_to_zero() -> None:
    factor = warmup_cosine(2, 10)
    assert [factor(step) for step in (0, 1)] == [0.5, 1.0]
    assert factor(2) == 1.0 and factor(10) == pytest.approx(0.0) and 0 < factor(6) < 1


def test_a_run_stopped_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    torch.manual_seed(123)  # the loop seeds the RNG itself at each epoch's start
    straight = _run(tmp_path / "straight")
    with pytest.raises(Stop):
        _run(tmp_path / "stopped", stop_at=(1, 4))  # step 9 of 5-batch epochs: 4 batches into epoch 2
    resumed = _run(tmp_path / "stopped")
    assert resumed.resumed_from_epoch == 2 and resumed.resumed_at_batch == 4 and straight.resumed_from_epoch is None
    assert resumed.history == straight.history
    for folder in ("best", "last"):
        assert torch.equal(torch.load(tmp_path / "stopped" / folder / "weight.pt"),
                           torch.load(tmp_path / "straight" / folder / "weight.pt")), folder
    finished = _run(tmp_path / "stopped")  # nothing left to train
    assert finished.history == straight.history and finished.resumed_from_epoch == SETTINGS.epochs + 1


def test_the_best_epoch_is_the_first_of_the_highest_score(tmp_path: Path) -> None:
    result = _run(tmp_path / "run", ToyTask(scores=[0.2, 0.7, 0.7]), checkpoint_every=0)
    assert result.best_epoch == 2 and result.best_score == 0.7
    assert (tmp_path / "run" / "best" / "epoch.txt").read_text() == "2 0 2"
    assert (tmp_path / "run" / "last" / "epoch.txt").read_text() == "3 0 3"


def test_a_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "run", checkpoint_every=0, epochs=1)
    with pytest.raises(ConfigError, match="other settings or data"):
        train_loop(ToyTask(), torch.arange(40), SETTINGS, tmp_path / "run", {**IDENTITY, "data": "other"}, ToyRecord,
                   progress=False)
