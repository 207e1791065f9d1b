"""ADaFuSE frozen-mode training on synthetic embeddings: it must beat the best static fusion weight, give noisy
images less weight, and a run killed after an epoch or mid-epoch must resume to the same weights as an
uninterrupted one."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from harness.errors import ConfigError
from retrievers.adafuse.data import EmbeddedData
from retrievers.adafuse.model import load_checkpoint
from retrievers.adafuse.train import TrainSettings, pool_ranks, train_adafuse
from retrievers.training import split_by_dialogue

REPO_ROOT = Path(__file__).resolve().parents[3]


def synthetic(dialogues: int, rounds: int = 2, dim: int = 32, text_noise: float = 2.0, image_noise: float = 0.5,
              seed: int = 0) -> tuple[EmbeddedData, torch.Tensor]:
    """Targets in a cone around one direction (as contrastive image embeddings are); per (dialogue, round) a text
    embedding that is the target plus heavy noise (moderately informative), and a generated image that is either
    the target plus light noise (informative, half of the rounds) or an isotropic random unit vector (pure noise).
    Returns the data and the per-example "informative" flags."""
    generator = torch.Generator().manual_seed(seed)
    cone = torch.zeros(dim)
    cone[0] = 1.0
    targets = F.normalize(torch.randn(dialogues, dim, generator=generator) / dim**0.5 + cone, dim=-1)
    index = torch.arange(dialogues).repeat_interleave(rounds)
    target = targets[index]
    text = F.normalize(target + text_noise * torch.randn(target.shape, generator=generator) / dim**0.5, dim=-1)
    informative = torch.rand(len(index), generator=generator) < 0.5
    good = F.normalize(target + image_noise * torch.randn(target.shape, generator=generator) / dim**0.5, dim=-1)
    noise = F.normalize(torch.randn(target.shape, generator=generator), dim=-1)
    image = torch.where(informative[:, None], good, noise)
    return EmbeddedData.from_tensors(text, image, targets, index, [str(i) for i in index.tolist()]), informative


@pytest.fixture
def one_thread():
    # Small matrix products run fastest on one thread (and the same thread count keeps CPU results bit-equal).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hits_at_10(ranks: torch.Tensor) -> float:
    return 100.0 * float((ranks < 10).float().mean())


def degradation(ranks: torch.Tensor, text_only: torch.Tensor) -> float:
    return 100.0 * float((ranks > text_only).float().mean())


def test_frozen_training_beats_the_best_static_weight_and_gates_noisy_images(tmp_path, one_thread):
    data, informative = synthetic(dialogues=3000)
    held_out = split_by_dialogue(data.dialogue_ids, 0.3, seed=99)  # another seed than training's own split
    train, test = held_out.train, held_out.validation

    # The static baseline is an oracle: the text weight w (image weight 1 - w) on a 0.05 grid that is best on the
    # held-out split itself, so the learned fusion has to beat every static weight, not just a tuned one.
    static_ranks = {w: pool_ranks(data, test, w * data.text[test] + (1 - w) * data.image[test])
                    for w in (step / 20 for step in range(21))}
    best_w = max(static_ranks, key=lambda w: (hits_at_10(static_ranks[w]), w))
    static = static_ranks[best_w]
    text_only = pool_ranks(data, test, data.text[test])

    settings = TrainSettings(epochs=12, batch_size=128, lr_fusion=2e-3, warmup_epochs=1, validation_fraction=0.2,
                             hits_k=1, seed=0)
    summary = train_adafuse(settings, data.select(train), None, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file() and summary.best_epoch >= 1
    model = load_checkpoint(tmp_path / "run" / "best").model
    with torch.no_grad():
        fused = model(data.text[test], data.image[test])
    learned = pool_ranks(data, test, fused.query)

    # Measured: text only 36.1, oracle static (w = 0.6) 59.3 Hits@10 with 35.3% degraded; learned 65.7 and 26.6%.
    assert 0.2 <= best_w <= 0.8 and hits_at_10(static) > hits_at_10(text_only) + 10
    assert hits_at_10(learned) >= hits_at_10(static) + 4
    assert degradation(learned, text_only) <= degradation(static, text_only) - 5
    gate_informative = float(fused.gate[informative[test]].mean())
    gate_noisy = float(fused.gate[~informative[test]].mean())
    assert gate_noisy > gate_informative + 0.3  # noisy images get the lower image weight (1 - gate)


KILLED_RUN = """
import os, signal, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from tests.retrievers.adafuse.test_train import resume_settings, synthetic
from retrievers.adafuse.train import train_adafuse

def kill_in_epoch_three(epochs, batches):
    if epochs == 2 and (batches > 0) == {mid_epoch!r}:
        os.kill(os.getpid(), signal.SIGKILL)

train_adafuse(resume_settings(), synthetic(dialogues=60)[0], None, {out!r}, progress=False,
              checkpoint_every={every!r}, on_checkpoint=kill_in_epoch_three)
"""


def resume_settings() -> TrainSettings:
    # 6 batches per epoch: with checkpoint_every=4, last/ is also written 4 batches into epoch 3 (step 16).
    return TrainSettings(epochs=4, batch_size=16, lr_fusion=1e-3, warmup_epochs=1, validation_fraction=0.2, seed=5)


@pytest.mark.parametrize(("every", "mid_epoch"), [(0, False), (4, True)], ids=["after-epoch-2", "mid-epoch-3"])
def test_a_killed_run_resumes_from_last_and_ends_bit_identical(tmp_path, one_thread, every, mid_epoch):
    killed = tmp_path / "killed"
    script = textwrap.dedent(KILLED_RUN).format(root=str(REPO_ROOT), out=str(killed), every=every,
                                                mid_epoch=mid_epoch)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == -signal.SIGKILL, result.stderr
    stored = torch.load(killed / "last" / "training_state.pt", weights_only=True)
    assert stored["epoch"] == 2 and stored["batches_done"] == (4 if mid_epoch else 0)
    assert len(stored["epoch_losses"]) == stored["batches_done"]

    data = synthetic(dialogues=60)[0]
    resumed = train_adafuse(resume_settings(), data, None, killed, progress=False, checkpoint_every=every)
    assert resumed.resumed_from_epoch == 3 and resumed.resumed_at_batch == stored["batches_done"]
    assert resumed.epochs == 4
    # Uninterrupted and without mid-epoch checkpoints: writing them must not change the training either.
    straight = train_adafuse(resume_settings(), data, None, tmp_path / "straight", progress=False)
    assert straight.resumed_from_epoch is None
    for folder in ("last", "best"):
        first = load_file(killed / folder / "model.safetensors")
        second = load_file(tmp_path / "straight" / folder / "model.safetensors")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[name], second[name]) for name in first), folder
    assert resumed.history == straight.history and resumed.best_epoch == straight.best_epoch

    again = train_adafuse(resume_settings(), data, None, killed, progress=False)  # finished: no more epochs
    assert again.epochs == 4 and again.history == straight.history
    with pytest.raises(ConfigError, match="other settings"):
        train_adafuse(TrainSettings(epochs=5, batch_size=16, lr_fusion=1e-3, warmup_epochs=1,
                                    validation_fraction=0.2, seed=5), data, None, killed, progress=False)


def test_split_is_by_dialogue_seeded_and_order_free():
    ids = [str(i // 3) for i in range(300)]
    split = split_by_dialogue(ids, 0.1, seed=0)
    held = {ids[i] for i in split.validation.tolist()}
    assert held.isdisjoint(ids[i] for i in split.train.tolist())
    assert 3 <= len(held) <= 20
    shuffled = list(reversed(ids))
    again = split_by_dialogue(shuffled, 0.1, seed=0)
    assert {shuffled[i] for i in again.validation.tolist()} == held
    assert {ids[i] for i in split_by_dialogue(ids, 0.1, seed=1).validation.tolist()} != held
    assert len(split_by_dialogue(["a", "a", "b"], 0.01, seed=0).validation) >= 1


def test_a_small_validation_pool_warns_and_the_best_epoch_is_chosen_past_the_ties(tmp_path, one_thread, caplog):
    # 12 dialogues: a pool of the validation targets alone is 2 images, where every epoch scored 100% Hits@10 and
    # the untrained first epoch was kept. Now the pool holds every target, the warning says it is still small, and
    # the epochs tied on Hits@10 are told apart by MRR, then by the validation loss.
    data, _ = synthetic(dialogues=12, rounds=3)
    settings = TrainSettings(epochs=5, batch_size=8, lr_fusion=3e-3, warmup_epochs=0, validation_fraction=0.25,
                             seed=1)
    with caplog.at_level("WARNING", logger="harness.adafuse"):
        summary = train_adafuse(settings, data, None, tmp_path / "run", progress=False)
    assert any("validation ranks a pool of 12 images" in record.getMessage() for record in caplog.records)
    history = summary.history
    best = max(history, key=lambda record: (record.validation_hits, record.validation_mrr, -record.validation_loss))
    assert summary.best_epoch == best.epoch
    assert len({record.validation_mrr for record in history}) > 1  # the tie-break has something to break
    assert summary.best_validation_hits == best.validation_hits


def test_the_validation_pool_is_every_target_unless_asked_otherwise():
    data, _ = synthetic(dialogues=12, rounds=2)
    indices = torch.arange(4)  # the rounds of dialogues 0 and 1
    queries = data.targets[data.target_index[indices]]  # a perfect query ranks its target first in either pool
    assert pool_ranks(data, indices, queries).tolist() == [0, 0, 0, 0]
    assert pool_ranks(data, indices, -queries).tolist() == [11, 11, 11, 11]  # last of all 12 targets
    assert pool_ranks(data, indices, -queries, pool="validation-targets").tolist() == [1, 1, 1, 1]
    with pytest.raises(ConfigError, match="validation_pool must be one of"):
        TrainSettings(validation_pool="benchmark")


def test_selection_on_the_benchmark_is_named_warned_and_picks_by_the_benchmark(tmp_path, one_thread, caplog):
    data, _ = synthetic(dialogues=40, rounds=3)
    # A "benchmark" whose queries point away from their targets: the better the model fits the training data, the
    # worse it does here, so choosing on it and choosing on the validation split pick different epochs.
    other, _ = synthetic(dialogues=60, rounds=1, seed=7)
    benchmark = EmbeddedData.from_tensors(-other.text, -other.image, other.targets, other.target_index,
                                          list(other.dialogue_ids))
    settings = TrainSettings(epochs=4, batch_size=16, lr_fusion=3e-3, warmup_epochs=0, seed=2, selection="benchmark")
    with caplog.at_level("WARNING", logger="harness.adafuse"):
        summary = train_adafuse(settings, data, None, tmp_path / "run", progress=False, selection=benchmark)
    assert any("chosen on the benchmark itself" in record.getMessage() and "not held-out" in record.getMessage()
               for record in caplog.records)
    history = summary.history
    assert all(record.benchmark_hits is not None for record in history)  # measured every epoch
    by_validation = max(history, key=lambda record: (record.validation_hits, record.validation_mrr,
                                                     -record.validation_loss)).epoch
    by_benchmark = max(history, key=lambda record: record.benchmark_hits).epoch
    assert by_validation != by_benchmark
    assert history[summary.best_epoch - 1].benchmark_hits == history[by_benchmark - 1].benchmark_hits
    assert "chosen on the benchmark" in summary.describe()
    assert summary.to_dict()["selection"] == "benchmark"

    with pytest.raises(ConfigError, match="needs the benchmark's selection data"):
        train_adafuse(settings, data, None, tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="only it takes them"):
        train_adafuse(TrainSettings(epochs=1, warmup_epochs=0), data, None, tmp_path / "third", progress=False, selection=benchmark)
    with pytest.raises(ConfigError):  # resuming the run with the default selection is another run
        train_adafuse(TrainSettings(epochs=4, batch_size=16, lr_fusion=3e-3, warmup_epochs=0, seed=2), data, None,
                      tmp_path / "run", progress=False)
