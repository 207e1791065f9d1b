"""Train ADaFuSE: symmetric InfoNCE between fused queries and target-image embeddings, frozen or end-to-end.

    data = embed_training_set(load_training_set(dialogues, generated, coco), encoder, cache_dir)
    summary = train_adafuse(TrainSettings(mode="frozen", epochs=50), data, encoder, Path("checkpoints/adafuse"))
    summary.best_epoch, summary.best_validation_hits, summary.parameters.describe()

Modes:
- ``frozen``: only the fusion module trains, on the cached embeddings (captions, generated images, targets): an
  epoch over VisDial train is a few million small matrix products, minutes on a GPU.
- ``end-to-end``: the base encoder's TEXT side (text encoder + text projection) trains too, at ``lr_encoder``,
  re-encoding each batch's captions every step. The vision tower stays frozen (as in ChatIR's and ADaFuSE's
  recipes), so generated-image and target embeddings stay the cached ones; the fine-tuned text side is saved
  beside the fusion weights (``text_encoder.safetensors``) and a retriever loads it over its base weights.

Recipe defaults (PROTOCOL.md section 6): AdamW, lr 5e-5 (fusion) / 1e-5 (encoder), 50 epochs, batch 128, weight
decay 0.05 (on weight matrices; biases, norms and the temperature are not decayed), 5 epochs of linear warm-up then
cosine decay to 0, stepped per batch. Temperature: a learnable logit scale initialised at 1 / 0.07 as in CLIP and
BLIP (clamped to at most 100), or fixed at ``temperature`` with ``learn_temperature=False``. Several rounds of one
dialogue share a target; inside a batch such duplicates are masked out as negatives.

Model selection: after every epoch the fused validation queries rank the pool of all validation targets (the
0-based rank counts pool images scoring strictly higher than the target); Hits@10 = % of validation examples
ranked < 10. The loop is the shared one of ``retrievers.training``: the best epoch (first one on ties) is kept in
``best/``, and ``last/`` holds the latest epoch with optimizer, scheduler, temperature, RNG states and history, from
which the same call resumes; with ``checkpoint_every`` N it is also written every N optimizer steps inside an epoch,
with the number of batches of the epoch done and their losses (an end-to-end epoch over VisDial train takes hours). Shuffling is seeded per epoch from
(seed, epoch) and dropout too at each epoch's start, its RNG state travelling in ``last/``, so a run killed at any
point and resumed ends bit-identical (on CPU) to an uninterrupted one. The split is by dialogue
(``split_by_dialogue``); the benchmark being reported is never seen.

``selection="benchmark"`` picks the best epoch as the ADaFuSE authors' training does: on the benchmark itself
(round-10 Hits@10 of its reformulated dialogues over its whole search space, given as ``selection`` data). It is
offered to reproduce their numbers, with a warning: figures of a model chosen on the benchmark are not held-out
results. The validation split is still measured and recorded.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from harness.atomic import atomic_write_text
from harness.errors import ConfigError
from harness.hashing import derive_seed
from retrievers.adafuse.data import EmbeddedData
from retrievers.adafuse.model import (
    MODEL_FILE,
    TEXT_ENCODER_FILE,
    AdaFuse,
    AdaFuseConfig,
    FusionOutput,
    ParameterIncrease,
    parameter_count,
    parameter_increase,
    save_checkpoint,
)
from retrievers.dual_encoders.text_side import TEXT_PREFIXES, load_text_side, text_side_parameters
from retrievers.training import (
    MAX_LOGIT_SCALE,
    MIN_POOL_PER_K,
    LoopSettings,
    Validated,
    contrastive_loss,
    decay_groups,
    optimizer_state,
    ranks_in_pool,
    restore_optimizer_state,
    split_by_dialogue,
    steps_per_epoch,
    train_loop,
    warmup_cosine,
)

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

log = logging.getLogger("harness.adafuse")

MODES = ("frozen", "end-to-end")
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that changes the trained weights, plus ``device`` (which does not enter the resume check)."""

    mode: str = "frozen"
    lr_fusion: float = 5e-5
    lr_encoder: float = 1e-5
    epochs: int = 50
    batch_size: int = 128
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    temperature: float = 0.07
    learn_temperature: bool = True
    seed: int = 0
    validation_fraction: float = 0.1
    hits_k: int = 10
    # What validation ranks against: every distinct target, the training split's as distractors (a pool of the
    # validation targets alone can be so small that every epoch scores 100% and the untrained one is kept).
    validation_pool: str = "all-targets"
    selection: str = "validation"  # or "benchmark": the authors' choice of the best epoch (see the module doc)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"training mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if self.validation_pool not in POOLS:
            raise ConfigError(f"validation_pool must be one of {', '.join(POOLS)}, got {self.validation_pool!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.hits_k < 1:
            raise ConfigError("epochs must be at least 1, batch_size at least 2 (in-batch negatives), hits_k at least 1")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if min(self.lr_fusion, self.lr_encoder, self.temperature) <= 0 or self.weight_decay < 0:
            raise ConfigError("learning rates and temperature must be positive, weight decay not negative")

    def resume_identity(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("device")
        if values["selection"] == "validation":
            values.pop("selection")  # runs from before the option resume
        return values


class EpochRecord(NamedTuple):
    epoch: int
    train_loss: float
    validation_hits: float  # Hits@k of fused queries ranking the validation pool
    text_only_hits: float  # the same for the text embeddings alone
    gate_mean: float  # mean lambda (text weight) over validation examples
    temperature: float
    lr_fusion: float
    validation_mrr: float = float("nan")  # mean 1 / (rank + 1) of fused queries: the first tie-break
    validation_loss: float = float("nan")  # cross-entropy of the target over the pool: the second tie-break
    benchmark_hits: float | None = None  # Hits@k on the benchmark, with selection="benchmark" only


@dataclass(frozen=True)
class TrainSummary:
    out_dir: Path
    mode: str
    epochs: int  # epochs completed
    best_epoch: int
    best_validation_hits: float
    hits_k: int
    parameters: ParameterIncrease | None  # None when no base encoder was given
    fusion_parameters: int
    train_examples: int
    validation_examples: int
    resumed_from_epoch: int | None
    history: tuple[EpochRecord, ...] = field(default_factory=tuple)
    resumed_at_batch: int = 0  # batches of epoch ``resumed_from_epoch`` that were done before the resume
    selection: str = "validation"

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "mode": self.mode,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            f"best_validation_Hits@{self.hits_k}": self.best_validation_hits,
            "fusion_parameters": self.fusion_parameters,
            "base_parameters": self.parameters.base if self.parameters else None,
            "parameter_increase_percent": self.parameters.percent if self.parameters else None,
            "train_examples": self.train_examples,
            "validation_examples": self.validation_examples,
            "resumed_from_epoch": self.resumed_from_epoch,
            "resumed_at_batch": self.resumed_at_batch,
            "selection": self.selection,
            "history": [record._asdict() for record in self.history],
        }

    def describe(self) -> str:
        best = self.history[self.best_epoch - 1] if self.history else None
        lines = [
            (f"ADaFuSE ({self.mode}) in {self.out_dir}: {self.epochs} epochs, {self.train_examples} training and "
             f"{self.validation_examples} validation examples"),
            f"best epoch {self.best_epoch}: validation Hits@{self.hits_k} {self.best_validation_hits:.2f}"
            + (f" (text only {best.text_only_hits:.2f}, mean gate {best.gate_mean:.3f})" if best else ""),
            self.parameters.describe() if self.parameters else f"{self.fusion_parameters:,} fusion parameters",
            f"checkpoint: {self.out_dir / 'best'}",
        ]
        if self.selection == "benchmark" and best is not None:
            lines.insert(2, f"chosen on the benchmark (Hits@{self.hits_k} {best.benchmark_hits:.2f}), as the ADaFuSE "
                            "authors did: its benchmark figures are not held-out results")
        return "\n".join(lines)


class Validation(NamedTuple):
    hits: float
    text_only_hits: float
    gate_mean: float
    mrr: float
    loss: float
    pool: int  # images ranked per query


class Trainer:
    """The fusion module, temperature, optimizer and schedule of one training run; ``step`` trains one batch."""

    def __init__(
        self, settings: TrainSettings, data: EmbeddedData, encoder: DualEncoder | None, steps_per_epoch: int
    ) -> None:
        self.settings = settings
        self.data = data
        self.encoder = encoder
        self.device = settings.device
        self.end_to_end = settings.mode == "end-to-end"
        if self.end_to_end:
            if encoder is None or data.captions is None:
                raise ConfigError("end-to-end training needs the base encoder and the caption texts")
            if encoder.dtype != "float32":
                raise ConfigError(f"end-to-end training runs the encoder in float32, not {encoder.dtype}")
            if encoder.device != self.device:
                raise ConfigError(f"the encoder is on {encoder.device} but training runs on {self.device}")
        self.config = AdaFuseConfig.for_embed_dim(data.embed_dim)
        torch.manual_seed(derive_seed(settings.seed, "adafuse-init"))
        self.model = AdaFuse(self.config).to(self.device)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / settings.temperature), device=self.device),
                                        requires_grad=settings.learn_temperature)
        self.text_parameters: dict[str, nn.Parameter] = {}
        if self.end_to_end:
            assert encoder is not None
            for parameter in encoder.model.parameters():
                parameter.requires_grad_(False)
            self.text_parameters = text_side_parameters(encoder)
            for parameter in self.text_parameters.values():
                parameter.requires_grad_(True)
        groups = decay_groups(self.model.parameters(), settings.lr_fusion, settings.weight_decay)
        groups += decay_groups(self.text_parameters.values(), settings.lr_encoder, settings.weight_decay)
        if settings.learn_temperature:
            groups.append({"params": [self.logit_scale], "lr": settings.lr_fusion, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups)
        total = settings.epochs * steps_per_epoch
        warmup = round(settings.warmup_epochs * steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(warmup, total))

    # -- one batch --------------------------------------------------------------------------------------------
    def text_embeddings(self, indices: torch.Tensor, grad: bool, data: EmbeddedData | None = None) -> torch.Tensor:
        """Cached text embeddings (frozen), or the captions re-encoded by the current text side (end-to-end), of
        examples ``indices`` of ``data`` (the training data by default)."""
        data = self.data if data is None else data
        if not self.end_to_end:
            return data.text[indices].to(self.device)
        assert self.encoder is not None and data.captions is not None
        captions = [data.captions[i] for i in indices.tolist()]
        encoder = self.encoder
        tokens = encoder.tokenizer(captions, padding="longest", truncation=True, max_length=encoder.max_text_tokens,
                                   return_tensors="pt").to(self.device)
        with torch.set_grad_enabled(grad):
            # The dual encoder's own encode_texts runs under inference_mode; training needs the same path with grad.
            features = encoder._text_features(tokens["input_ids"], tokens["attention_mask"])
        return F.normalize(features.to(torch.float32), dim=-1)

    def fuse(
        self, indices: torch.Tensor, grad: bool = True, data: EmbeddedData | None = None
    ) -> tuple[torch.Tensor, FusionOutput]:
        data = self.data if data is None else data
        text = self.text_embeddings(indices, grad, data)
        with torch.set_grad_enabled(grad):
            return text, self.model(text, data.image[indices].to(self.device))

    def step(self, indices: torch.Tensor) -> float:
        self.train_mode(True)
        _, fused = self.fuse(indices)
        target_ids = self.data.target_index[indices].to(self.device)
        targets = self.data.targets[self.data.target_index[indices]].to(self.device)
        loss = contrastive_loss(fused.query, targets, target_ids, self.logit_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def train_mode(self, training: bool) -> None:
        self.model.train(training)
        if self.end_to_end:
            assert self.encoder is not None
            self.encoder.model.train(training)

    # -- validation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, indices: torch.Tensor, chunk: int = 1024, data: EmbeddedData | None = None) -> Validation:
        """Hits@k, MRR and cross-entropy of fused queries, and Hits@k of text-only ones, ranking the validation pool
        (``settings.validation_pool``) with the harness's tie rule; of examples ``indices`` of ``data`` (the
        training data by default; benchmark selection data ranks all its targets, the whole search space)."""
        self.train_mode(False)
        pool_rule = self.settings.validation_pool if data is None else "all-targets"
        data = self.data if data is None else data
        pool_ids = _pool_ids(data, indices, pool_rule)
        pool = data.targets[pool_ids].to(self.device)
        hits = text_hits = 0
        reciprocal, losses, gates = 0.0, 0.0, []
        scale = self.logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE)
        for part in indices.split(chunk):
            text, fused = self.fuse(part, grad=False, data=data)
            columns = _pool_columns(data, part, pool_ids)
            fused_scores = fused.query @ pool.T
            ranks = ranks_in_pool(fused_scores, columns)
            hits += int((ranks < self.settings.hits_k).sum())
            reciprocal += float((1.0 / (ranks + 1.0)).sum())
            losses += float(F.cross_entropy(scale * fused_scores, columns.to(self.device), reduction="sum"))
            text_hits += int((ranks_in_pool(text @ pool.T, columns) < self.settings.hits_k).sum())
            gates.append(fused.gate.cpu())
        count = max(1, len(indices))
        return Validation(100.0 * hits / count, 100.0 * text_hits / count, float(torch.cat(gates).mean()),
                          reciprocal / count, losses / count, len(pool_ids))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def text_state(self) -> dict[str, torch.Tensor] | None:
        if not self.end_to_end:
            return None
        assert self.encoder is not None
        prefixes = TEXT_PREFIXES[type(self.encoder).__name__]
        return {name: tensor for name, tensor in self.encoder.model.state_dict().items() if name.startswith(prefixes)}

    def state_dict(self) -> dict[str, Any]:
        return optimizer_state(self.optimizer, self.scheduler, self.logit_scale)

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        self.model.load_state_dict(load_file(directory / MODEL_FILE, device=str(self.device)))
        if self.end_to_end:
            assert self.encoder is not None
            load_text_side(self.encoder, directory / TEXT_ENCODER_FILE)
        restore_optimizer_state(state, self.optimizer, self.scheduler, self.logit_scale)


POOLS = ("all-targets", "validation-targets")
SELECTIONS = ("validation", "benchmark")


def _pool_ids(data: EmbeddedData, indices: torch.Tensor, pool: str) -> torch.Tensor:
    """The target rows validation ranks: every distinct target, or the targets of the examples ``indices``."""
    if pool == "all-targets":
        return torch.arange(len(data.targets))
    return torch.unique(data.target_index[indices])


def _pool_columns(data: EmbeddedData, indices: torch.Tensor, pool_ids: torch.Tensor) -> torch.Tensor:
    """Each example's target column in the pool ``pool_ids``."""
    position = torch.full((len(data.targets),), -1, dtype=torch.long)
    position[pool_ids] = torch.arange(len(pool_ids))
    return position[data.target_index[indices]]


class _AdaFuseTask:
    """``Trainer`` as the shared training loop drives it: validation records, logging and checkpoint folders."""

    def __init__(self, trainer: Trainer, validation: torch.Tensor,
                 metadata: Callable[[int, int, Sequence[EpochRecord]], dict[str, Any]],
                 selection: EmbeddedData | None = None) -> None:
        self.trainer = trainer
        self.validation = validation
        self.metadata = metadata
        self.selection = selection

    def step(self, indices: torch.Tensor) -> float:
        return self.trainer.step(indices)

    def validate(self, epoch: int, train_loss: float) -> Validated[EpochRecord]:
        trainer = self.trainer
        validation = trainer.evaluate(self.validation)
        chosen = validation
        if self.selection is not None:
            chosen = trainer.evaluate(torch.arange(len(self.selection)), data=self.selection)
            log.info("epoch %d: benchmark Hits@%d %.2f over %d images (selection)", epoch, trainer.settings.hits_k,
                     chosen.hits, chosen.pool)
        record = EpochRecord(epoch, train_loss, validation.hits, validation.text_only_hits, validation.gate_mean,
                             float(1.0 / trainer.logit_scale.detach().exp()),
                             float(trainer.optimizer.param_groups[0]["lr"]), validation.mrr, validation.loss,
                             chosen.hits if self.selection is not None else None)
        log.info("epoch %d: loss %.4f, validation Hits@%d %.2f (text only %.2f), MRR %.4f, loss %.4f over %d images, "
                 "mean gate %.3f", epoch, record.train_loss, trainer.settings.hits_k, record.validation_hits,
                 record.text_only_hits, record.validation_mrr, record.validation_loss, validation.pool,
                 record.gate_mean)
        # Best by Hits@k; ties (common on small pools) by MRR, then by the lower validation loss.
        return Validated(record, (chosen.hits, chosen.mrr, -chosen.loss))

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        self.trainer.load(directory, state)

    def write_checkpoint(self, directory: Path, epoch: int, batches: int, history: Sequence[EpochRecord]) -> None:
        trainer = self.trainer
        save_checkpoint(directory, trainer.model, trainer.config, self.metadata(epoch, batches, history),
                        trainer.text_state())


def train_adafuse(
    settings: TrainSettings,
    data: EmbeddedData,
    encoder: DualEncoder | None,
    out_dir: Path,
    progress: bool = True,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[int, int], None] | None = None,
    selection: EmbeddedData | None = None,
) -> TrainSummary:
    """Train (or resume, or return the finished summary of) the run in ``out_dir``; see the module doc.

    ``encoder`` is the base encoder the embeddings came from: its identity is recorded in the checkpoints and its
    parameter count is the reference for the parameter increase (frozen mode on in-memory tensors may pass None).
    ``last/`` is written after every epoch and, with ``checkpoint_every`` N > 0, after every N-th optimizer step
    inside an epoch too (counted over the whole run); N does not change the weights, so it may differ on resume.
    ``on_checkpoint(epochs, batches)`` runs after each write of ``last/`` with the position stored there: ``epochs``
    complete plus ``batches`` of the next one (tests use it to kill a run). ``selection``: the benchmark's round-10
    examples over its whole search space, required by (and only for) ``settings.selection="benchmark"``."""
    loop = LoopSettings(settings.epochs, settings.batch_size, settings.seed, "adafuse", checkpoint_every)
    out_dir = Path(out_dir)
    split = split_by_dialogue(data.dialogue_ids, settings.validation_fraction, settings.seed)
    if len(split.validation) == 0:
        raise ConfigError("best-checkpoint selection needs a validation split: use a validation fraction above 0 "
                          "and more than one dialogue")
    train_count = len(split.train)
    if (settings.selection == "benchmark") != (selection is not None):
        raise ConfigError("selection='benchmark' needs the benchmark's selection data, and only it takes them")
    if selection is not None:
        log.warning("the best epoch is chosen on the benchmark itself (Hits@%d of %d examples over %d images), as the "
                    "ADaFuSE authors did: this reproduces their numbers, but the benchmark figures of the chosen "
                    "model are not held-out results; the default chooses on a validation split",
                    settings.hits_k, len(selection), len(selection.targets))
    pool = len(_pool_ids(data, split.validation, settings.validation_pool))
    if pool < MIN_POOL_PER_K * settings.hits_k:
        log.warning("validation ranks a pool of %d images, under %d x k = %d: Hits@%d is near 100%% for any model, "
                    "so the best epoch is chosen on MRR and loss; use more training dialogues for a pool that "
                    "means something", pool, MIN_POOL_PER_K, MIN_POOL_PER_K * settings.hits_k, settings.hits_k)
    base_identity = encoder.identity() if encoder is not None else None
    trainer = Trainer(settings, data, encoder, steps_per_epoch(train_count, settings.batch_size))
    fusion_parameters = parameter_count(trainer.model)
    parameters = parameter_increase(trainer.model, encoder.model) if encoder is not None else None
    log.info("ADaFuSE: %s", parameters.describe() if parameters else f"{fusion_parameters:,} fusion parameters")

    def metadata(epoch: int, batches: int, history: Sequence[EpochRecord]) -> dict[str, Any]:
        return {
            "base_encoder": base_identity,
            "training": {
                "settings": settings.resume_identity(),
                "epoch": epoch,
                "batches_done": batches,  # of epoch + 1 (a mid-epoch last/)
                "data": data.fingerprint,
                "fusion_parameters": fusion_parameters,
                "base_parameters": parameters.base if parameters else None,
                "parameter_increase_percent": parameters.percent if parameters else None,
                "history": [record._asdict() for record in history],
            },
        }

    identity = {"settings": settings.resume_identity(), "data": data.fingerprint}
    if selection is not None:
        identity["selection_data"] = selection.fingerprint
    result = train_loop(_AdaFuseTask(trainer, split.validation, metadata, selection), split.train, loop, out_dir,
                        identity=identity,
                        record_type=EpochRecord, progress=progress, on_checkpoint=on_checkpoint)
    trainer.train_mode(False)
    if encoder is not None:
        for parameter in encoder.model.parameters():
            parameter.requires_grad_(False)
    summary = TrainSummary(
        out_dir=out_dir, mode=settings.mode, epochs=len(result.history), best_epoch=result.best_epoch,
        best_validation_hits=result.history[result.best_epoch - 1].validation_hits if result.history else float("nan"),
        hits_k=settings.hits_k, parameters=parameters,
        fusion_parameters=fusion_parameters, train_examples=train_count,
        validation_examples=len(split.validation), resumed_from_epoch=result.resumed_from_epoch,
        history=result.history, resumed_at_batch=result.resumed_at_batch, selection=settings.selection,
    )
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=1))
    return summary


def pool_ranks(data: EmbeddedData, indices: torch.Tensor, queries: torch.Tensor,
               pool: str = "all-targets") -> torch.Tensor:
    """0-based rank of each example's target in the pool validation ranks (``pool``), for ``queries``
    (len(indices), D), under the harness's tie rule."""
    pool_ids = _pool_ids(data, indices, pool)
    columns = _pool_columns(data, indices, pool_ids)
    return ranks_in_pool(queries @ data.targets[pool_ids].to(queries.device).T, columns).cpu()
