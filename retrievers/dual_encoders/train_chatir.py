"""Train ChatIR's retriever: the BLIP text side, contrastively, on (dialogue prefix, target image) pairs.

    harness train chatir --train-dialogues data/visdial_train.json --image-root COCO --base-model model_base.pth \\
            --out checkpoints/chatir
    harness run --retriever chatir --retriever-model checkpoints/chatir ...     # its best/ folder

ChatIR's recipe as its paper states it (the code was never released): every dialogue of the training file gives
one pair per prefix length, the caption alone up to the caption and all its rounds (0..10 for VisDial), the text
being the prefix joined with ", " (ChatIR's query text), the positive its target image. The loss is the symmetric
InfoNCE of ``retrievers.training.contrastive_loss`` with a learnable temperature (1 / 0.07 at start, at most 100):
the prefixes of one dialogue share a target, so in a batch the other copies of a query's target are masked out of
its negatives and each copy counts once, as its own row's positive.

``image_side="frozen"`` (the default) trains the text encoder and text projection only; the target images are
embedded once by the base image side and cached (the same cache a retriever's index uses). ``"trained"`` trains the
image side too, re-encoding each batch's targets from their pixels. The base is any BLIP source the dual encoders
load, by default the original ``model_base.pth`` (converted as `harness convert` does).

Defaults: ADaFuSE's published end-to-end recipe (../shared/PROTOCOL.md section 6: AdamW, lr 1e-5, weight decay
0.05 on weight matrices, 5 warm-up epochs then cosine decay, batch 128, 50 epochs). The split is by dialogue; each
epoch ranks the validation prefixes against every distinct target (the training targets as distractors; the
validation-pool rule), and the best epoch by Hits@10 (ties: MRR, then the lower validation loss) is kept. The loop
is the shared one (``retrievers.training``): ``best/`` and ``last/`` are transformers directories (weights,
configuration, tokenizer and ``training.json``) that ``--retriever-model`` loads, ``last/`` with the optimizer,
schedule and RNG states; killed at any point (``checkpoint_every`` N writes ``last/`` inside epochs too) and
resumed, a run ends bit-identical on the CPU to an uninterrupted one. Train with the token limit the retriever
will rank with (``max_text_tokens``, 200 by default as the chatir preset) and at BLIP's 224 px, as ChatIR did.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import click
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from harness.atomic import atomic_write_text
from harness.errors import ConfigError
from harness.hashing import stable_hash
from harness.images import load_rgb
from harness.protocols import RunContext
from harness.types import Dialogue, SearchSpace
from retrievers.dual_encoders.encoders import BlipDualEncoder
from retrievers.dual_encoders.retriever import ZS_CHECKPOINT_URL, image_index
from retrievers.dual_encoders.text_side import text_side_parameters
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

log = logging.getLogger("harness.chatir")

IMAGE_SIDES = ("frozen", "trained")
IMAGE_PREFIXES = ("vision_model.", "vision_proj.")
TRAINING_FILE = "training.json"
SUMMARY_FILE = "summary.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ChatIRSettings:
    """Everything that changes the trained weights, plus ``device`` (which does not enter the resume check)."""

    image_side: str = "frozen"
    lr: float = 1e-5
    epochs: int = 50
    batch_size: int = 128
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    temperature: float = 0.07
    learn_temperature: bool = True
    seed: int = 0
    validation_fraction: float = 0.1
    hits_k: int = 10
    rounds: int | None = None  # prefixes up to this many rounds (None: every round of each dialogue)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.image_side not in IMAGE_SIDES:
            raise ConfigError(f"image_side must be one of {', '.join(IMAGE_SIDES)}, got {self.image_side!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.hits_k < 1:
            raise ConfigError("epochs must be at least 1, batch_size at least 2 (in-batch negatives), hits_k at least 1")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if min(self.lr, self.temperature) <= 0 or self.weight_decay < 0:
            raise ConfigError("the learning rate and temperature must be positive, weight decay not negative")
        if self.rounds is not None and self.rounds < 0:
            raise ConfigError(f"rounds must be 0 or more, got {self.rounds}")

    def resume_identity(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("device")
        return values


@dataclass(frozen=True)
class PrefixPairs:
    """The training pairs: per example its dialogue, its text (the prefix joined with ", ") and its target's row in
    ``targets`` (the distinct target images, as a search space under the image root)."""

    dialogue_ids: tuple[str, ...]
    texts: tuple[str, ...]
    target_index: torch.Tensor
    targets: SearchSpace
    fingerprint: str = field(default="")

    def __len__(self) -> int:
        return len(self.texts)


def prefix_pairs(dialogues: Sequence[Dialogue], image_root: Path, rounds: int | None = None) -> PrefixPairs:
    """One pair per dialogue and prefix length 0..``rounds`` (every round by default)."""
    targets = sorted({dialogue.target for dialogue in dialogues})
    row = {path: index for index, path in enumerate(targets)}
    ids, texts, target_rows = [], [], []
    for dialogue in dialogues:
        last = len(dialogue.turns) - 1 if rounds is None else min(rounds, len(dialogue.turns) - 1)
        for length in range(last + 1):
            ids.append(dialogue.dialogue_id)
            texts.append(", ".join(dialogue.turns[: length + 1]))
            target_rows.append(row[dialogue.target])
    space = SearchSpace(tuple(targets), image_root, source="training targets")
    fingerprint = stable_hash({"pairs": [ids, texts, [targets[index] for index in target_rows]]})
    return PrefixPairs(tuple(ids), tuple(texts), torch.tensor(target_rows, dtype=torch.long), space, fingerprint)


class EpochRecord(NamedTuple):
    epoch: int
    train_loss: float
    validation_hits: float
    validation_mrr: float
    validation_loss: float
    temperature: float
    lr: float


@dataclass(frozen=True)
class ChatIRSummary:
    out_dir: Path
    epochs: int
    best_epoch: int
    best_validation_hits: float
    hits_k: int
    train_pairs: int
    validation_pairs: int
    pool: int
    resumed_from_epoch: int | None
    resumed_at_batch: int
    history: tuple[EpochRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "epochs": self.epochs, "best_epoch": self.best_epoch,
                f"best_validation_Hits@{self.hits_k}": self.best_validation_hits, "train_pairs": self.train_pairs,
                "validation_pairs": self.validation_pairs, "validation_pool": self.pool,
                "resumed_from_epoch": self.resumed_from_epoch, "resumed_at_batch": self.resumed_at_batch,
                "history": [record._asdict() for record in self.history]}

    def describe(self) -> str:
        return (f"ChatIR text side in {self.out_dir}: {self.epochs} epochs, {self.train_pairs} training and "
                f"{self.validation_pairs} validation pairs\nbest epoch {self.best_epoch}: validation Hits@{self.hits_k} "
                f"{self.best_validation_hits:.2f} over {self.pool} images\ncheckpoint: {self.out_dir / 'best'} "
                "(--retriever chatir --retriever-model this folder)")


class ChatIRTrainer:
    """The encoder's trained side(s), temperature, optimizer and schedule; ``step`` trains one batch of pairs."""

    def __init__(self, settings: ChatIRSettings, pairs: PrefixPairs, encoder: BlipDualEncoder,
                 image_matrix: torch.Tensor | None, steps: int) -> None:
        if not isinstance(encoder, BlipDualEncoder):
            raise ConfigError(f"train chatir trains a BLIP dual encoder, not {type(encoder).__name__}")
        if encoder.dtype != "float32" or encoder.device != settings.device:
            raise ConfigError(f"training runs the encoder in float32 on {settings.device}, not {encoder.dtype} on "
                              f"{encoder.device}")
        self.settings, self.pairs, self.encoder = settings, pairs, encoder
        self.image_matrix = image_matrix  # frozen image side: the targets' cached embeddings
        self.device = settings.device
        for parameter in encoder.model.parameters():
            parameter.requires_grad_(False)
        trained = dict(text_side_parameters(encoder))
        if settings.image_side == "trained":
            trained.update({name: parameter for name, parameter in encoder.model.named_parameters()
                            if name.startswith(IMAGE_PREFIXES)})
        for parameter in trained.values():
            parameter.requires_grad_(True)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / settings.temperature), device=self.device),
                                        requires_grad=settings.learn_temperature)
        groups = decay_groups(trained.values(), settings.lr, settings.weight_decay)
        if settings.learn_temperature:
            groups.append({"params": [self.logit_scale], "lr": settings.lr, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(round(settings.warmup_epochs * steps), settings.epochs * steps))

    def texts(self, indices: torch.Tensor, grad: bool) -> torch.Tensor:
        encoder = self.encoder
        tokens = encoder.tokenizer([self.pairs.texts[i] for i in indices.tolist()], padding="longest",
                                   truncation=True, max_length=encoder.max_text_tokens,
                                   return_tensors="pt").to(self.device)
        with torch.set_grad_enabled(grad):
            # encode_texts runs under inference_mode; training takes the same path with gradients.
            features = encoder._text_features(tokens["input_ids"], tokens["attention_mask"])
        return F.normalize(features.to(torch.float32), dim=-1)

    def images(self, rows: torch.Tensor, grad: bool) -> torch.Tensor:
        if self.image_matrix is not None:
            return self.image_matrix[rows].to(self.device)
        encoder, space = self.encoder, self.pairs.targets
        pixels = encoder.preprocessing(load_rgb([space.resolve(space.paths[row]) for row in rows.tolist()]))
        with torch.set_grad_enabled(grad):
            features = encoder._image_features(pixels.to(self.device))
        return F.normalize(features.to(torch.float32), dim=-1)

    def step(self, indices: torch.Tensor) -> float:
        self.encoder.model.train(True)
        rows = self.pairs.target_index[indices]
        loss = contrastive_loss(self.texts(indices, True), self.images(rows, True), rows.to(self.device),
                                self.logit_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, indices: torch.Tensor, chunk: int = 256) -> tuple[float, float, float]:
        """Hits@k, MRR and cross-entropy of the pairs ``indices`` ranking every distinct target."""
        self.encoder.model.train(False)
        pool = torch.cat([self.images(part, False) for part in torch.arange(len(self.pairs.targets)).split(chunk)])
        scale = self.logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE)
        hits, reciprocal, losses = 0, 0.0, 0.0
        for part in indices.split(chunk):
            scores = self.texts(part, False) @ pool.T
            columns = self.pairs.target_index[part]
            ranks = ranks_in_pool(scores, columns)
            hits += int((ranks < self.settings.hits_k).sum())
            reciprocal += float((1.0 / (ranks + 1.0)).sum())
            losses += float(F.cross_entropy(scale * scores, columns.to(self.device), reduction="sum"))
        count = max(1, len(indices))
        return 100.0 * hits / count, reciprocal / count, losses / count

    def state_dict(self) -> dict[str, Any]:
        return optimizer_state(self.optimizer, self.scheduler, self.logit_scale)

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        self.encoder.model.load_state_dict(load_file(directory / WEIGHTS_FILE, device=str(self.device)))
        restore_optimizer_state(state, self.optimizer, self.scheduler, self.logit_scale)


class _ChatIRTask:
    """``ChatIRTrainer`` as the shared loop drives it: validation records and transformers checkpoint folders."""

    def __init__(self, trainer: ChatIRTrainer, validation: torch.Tensor, metadata: dict[str, Any]) -> None:
        self.trainer, self.validation, self.metadata = trainer, validation, metadata

    def step(self, indices: torch.Tensor) -> float:
        return self.trainer.step(indices)

    def validate(self, epoch: int, train_loss: float) -> Validated[EpochRecord]:
        trainer = self.trainer
        hits, mrr, loss = trainer.evaluate(self.validation)
        record = EpochRecord(epoch, train_loss, hits, mrr, loss, float(1.0 / trainer.logit_scale.detach().exp()),
                             float(trainer.optimizer.param_groups[0]["lr"]))
        log.info("epoch %d: loss %.4f, validation Hits@%d %.2f, MRR %.4f, loss %.4f", epoch, train_loss,
                 trainer.settings.hits_k, hits, mrr, loss)
        return Validated(record, (hits, mrr, -loss))

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load(self, directory: Path, state: dict[str, Any]) -> None:
        self.trainer.load(directory, state)

    def write_checkpoint(self, directory: Path, epoch: int, batches: int, history: Sequence[EpochRecord]) -> None:
        encoder = self.trainer.encoder
        directory.mkdir(parents=True, exist_ok=True)
        encoder.model.save_pretrained(directory)
        encoder.tokenizer.save_pretrained(directory)
        atomic_write_text(directory / TRAINING_FILE, json.dumps(
            {**self.metadata, "epoch": epoch, "batches_done": batches,
             "history": [record._asdict() for record in history]}, indent=1, default=str))


def train_chatir(settings: ChatIRSettings, pairs: PrefixPairs, encoder: BlipDualEncoder, out_dir: Path,
                 context: RunContext, checkpoint_every: int = 0, on_checkpoint: Any = None,
                 embed_batch_size: int = 64) -> ChatIRSummary:
    """Train (or resume, or return the finished summary of) the run in ``out_dir``; see the module doc. ``encoder``
    is trained in place and keeps the identity (weight fingerprints) of the base it was loaded from: load ``best/``
    anew to use the trained weights."""
    out_dir = Path(out_dir)
    split = split_by_dialogue(list(pairs.dialogue_ids), settings.validation_fraction, settings.seed, "chatir")
    if len(split.validation) == 0:
        raise ConfigError("best-checkpoint selection needs a validation split: use a validation fraction above 0 "
                          "and more than one dialogue")
    pool = len(pairs.targets)
    if pool < MIN_POOL_PER_K * settings.hits_k:
        log.warning("validation ranks a pool of %d images, under %d x k = %d: Hits@%d is near 100%% for any model, "
                    "so the best epoch is chosen on MRR and loss; use more training dialogues", pool,
                    MIN_POOL_PER_K, MIN_POOL_PER_K * settings.hits_k, settings.hits_k)
    base = encoder.identity()
    matrix = None
    if settings.image_side == "frozen":
        matrix = torch.from_numpy(image_index(encoder, pairs.targets, context, embed_batch_size,
                                              "embedding training targets")).to(settings.device)
    trainer = ChatIRTrainer(settings, pairs, encoder, matrix, steps_per_epoch(len(split.train), settings.batch_size))
    identity = {"settings": settings.resume_identity(), "data": pairs.fingerprint, "base": stable_hash(base)}
    metadata = {"format": "chatir-training", "base_encoder": base, "settings": settings.resume_identity(),
                "data": pairs.fingerprint, "train_pairs": len(split.train), "validation_pairs": len(split.validation)}
    loop = LoopSettings(settings.epochs, settings.batch_size, settings.seed, "chatir", checkpoint_every)
    result = train_loop(_ChatIRTask(trainer, split.validation, metadata), split.train, loop, out_dir, identity,
                        EpochRecord, progress=context.progress, on_checkpoint=on_checkpoint)
    encoder.model.train(False)
    for parameter in encoder.model.parameters():
        parameter.requires_grad_(False)
    summary = ChatIRSummary(out_dir, len(result.history), result.best_epoch,
                            result.history[result.best_epoch - 1].validation_hits if result.history else float("nan"),
                            settings.hits_k, len(split.train), len(split.validation), pool, result.resumed_from_epoch,
                            result.resumed_at_batch, result.history)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=1))
    return summary


@click.command("chatir")
@click.option("--train-dialogues", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="ChatIR-format dialogue file (`harness data convert visdial` writes VisDial train as one).")
@click.option("--image-root", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder the dialogues' image paths are relative to.")
@click.option("--base-model", default=ZS_CHECKPOINT_URL, show_default=True,
              help="BLIP weights to start from: original checkpoint (model_base.pth), directory or hub id.")
@click.option("--tokenizer", default=None, help="Tokenizer for original-format checkpoints.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--image-side", default="frozen", show_default=True, type=click.Choice(IMAGE_SIDES),
              help="frozen: embed the targets once (cached); trained: train the image side too.")
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=1e-5, show_default=True, type=float)
@click.option("--weight-decay", default=0.05, show_default=True, type=float)
@click.option("--warmup-epochs", default=5.0, show_default=True, type=float)
@click.option("--temperature", default=0.07, show_default=True, type=float, help="Initial (or, fixed, the) temperature.")
@click.option("--fixed-temperature", is_flag=True, help="Do not learn the temperature.")
@click.option("--validation-fraction", default=0.1, show_default=True, type=float)
@click.option("--rounds", default=None, type=click.IntRange(min=0), help="Prefixes up to N rounds (default: all).")
@click.option("--max-text-tokens", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--checkpoint-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also write last/ every N optimizer steps inside an epoch (0: at epoch ends only).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--cache-dir", default=None, type=click.Path(path_type=Path, file_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bars.")
def chatir(train_dialogues: Path, image_root: Path, base_model: str, tokenizer: str | None, out_dir: Path,
           image_side: str, epochs: int, batch_size: int, lr: float, weight_decay: float, warmup_epochs: float,
           temperature: float, fixed_temperature: bool, validation_fraction: float, rounds: int | None,
           max_text_tokens: int, seed: int, checkpoint_every: int, device: str, cache_dir: Path | None,
           quiet: bool) -> None:
    """Train ChatIR's text encoder on (dialogue prefix, target image) pairs; the best epoch's weights load with
    `harness run --retriever chatir --retriever-model OUT`."""
    from harness.config import default_cache_dir
    from harness.devices import resolve_device
    from harness.dialogue_files import read_chatir_dialogues
    from harness.errors import HarnessError
    from harness.library_output import silence_library_progress
    from retrievers.dual_encoders.loading import EncoderSettings, load_encoder
    from retrievers.dual_encoders.preprocess import BLIP_224

    if quiet:
        silence_library_progress()
    try:
        resolved = resolve_device(device)
        settings = ChatIRSettings(image_side, lr, epochs, batch_size, weight_decay, warmup_epochs, temperature,
                                  not fixed_temperature, seed, validation_fraction, rounds=rounds, device=resolved)
        context = RunContext(device=resolved, cache_dir=cache_dir or default_cache_dir(), seed=seed,
                             progress=not quiet)
        pairs = prefix_pairs(read_chatir_dialogues(train_dialogues, expected_turns=None), image_root, rounds)
        encoder = load_encoder(EncoderSettings("blip", base_model, BLIP_224, max_text_tokens, tokenizer), resolved,
                               context.cache_dir, context.progress)
        summary = train_chatir(settings, pairs, encoder, out_dir, context, checkpoint_every)  # type: ignore[arg-type]
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.describe())
