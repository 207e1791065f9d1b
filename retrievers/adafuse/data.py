"""ADaFuSE training data: reformulated dialogues, one generated image per (dialogue, round), target images.

    examples = load_training_set(Path("visdial_train_summarised.json"), Path("GEN"), Path("COCO"))
    data = embed_training_set(examples, encoder, cache_dir=Path("~/.cache/itir-harness"))    # cached on disk

The dialogues file is in ChatIR format where each entry of ``dialog`` is already the full caption of its round (a
"summarised" VisDial train file); ``img`` names the target under the image root. Generated images are found in
either layout, detected from the folder: ``round{r}/{index}.jpg`` or ``{index}_{round}.jpg`` (``.png``/``.jpeg``
too), ``index`` being the dialogue's position in the file. A missing image is a ``DataError`` naming the file(s)
expected.

Embeddings come from the frozen base encoder, once: three matrices (round captions, generated images, distinct
target images) in the harness EmbeddingCache, keyed by the encoder's identity (text side for captions, image side
for images) and the content (caption text; image file name, size and modification time), so a second training run
over the same files starts in seconds. Tests and benchmarks build ``EmbeddedData.from_tensors`` directly.

The train/validation split is by dialogue (``retrievers.training.split_by_dialogue``: every round of a dialogue
lands on the same side), from a seeded hash of the dialogue id: the same ids, fraction and seed always give the
same split, whatever the file order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.dialogue_files import read_chatir_dialogues
from harness.embedding_cache import EmbeddingCache
from harness.errors import ConfigError, DataError
from harness.hashing import sha256_file, stable_hash
from harness.images import load_rgb
from retrievers.dar.image_layout import detect_layout, generated_image_path

if TYPE_CHECKING:
    from retrievers.dual_encoders.encoders import DualEncoder

@dataclass(frozen=True)
class TrainingItem:
    """One (dialogue, round): the round's caption, its generated image and the dialogue's target."""

    dialogue_id: str
    round: int
    caption: str
    generated: Path
    target: str  # relative to the image root


@dataclass(frozen=True)
class TrainingSet:
    items: tuple[TrainingItem, ...]
    dialogues_file: Path
    images_dir: Path
    image_root: Path
    layout: str

    @property
    def targets(self) -> tuple[str, ...]:
        """Distinct targets in order of first appearance."""
        return tuple(dict.fromkeys(item.target for item in self.items))


def load_training_set(
    dialogues_file: Path, images_dir: Path, image_root: Path, rounds: int | None = None, only_last: bool = False
) -> TrainingSet:
    """Every (dialogue, round) of ``dialogues_file`` (rounds 0..``rounds`` when given; only the last of them with
    ``only_last``), with its generated image and target checked to exist."""
    dialogues = read_chatir_dialogues(dialogues_file, expected_turns=None)
    if not dialogues:
        raise DataError(dialogues_file, "holds no dialogues")
    if not image_root.is_dir():
        raise ConfigError(f"--image-root {image_root} is not a folder")
    layout = detect_layout(images_dir)
    items = []
    for dialogue in dialogues:
        target = image_root / dialogue.target
        if not target.is_file():
            raise DataError(dialogues_file, f"target image {target} does not exist", record=int(dialogue.dialogue_id),
                            field="img")
        last = len(dialogue.turns) if rounds is None else min(len(dialogue.turns), rounds + 1)
        for round_ in range(last - 1 if only_last else 0, last):
            generated = generated_image_path(images_dir, layout, dialogue.dialogue_id, round_)
            items.append(TrainingItem(dialogue.dialogue_id, round_, dialogue.turns[round_], generated, dialogue.target))
    return TrainingSet(tuple(items), dialogues_file, images_dir, image_root, layout)


@dataclass(frozen=True)
class EmbeddedData:
    """Training examples as embeddings: ``text`` and ``image`` (N, D) unit rows, ``targets`` (M, D) unit rows of
    the distinct targets, ``target_index`` (N,) the row of each example's target; ``captions`` (for end-to-end
    training, which re-encodes them); ``fingerprint`` identifies the content (a resumed run must see the same)."""

    text: torch.Tensor
    image: torch.Tensor
    targets: torch.Tensor
    target_index: torch.Tensor
    dialogue_ids: tuple[str, ...]
    captions: tuple[str, ...] | None
    fingerprint: str

    def __post_init__(self) -> None:
        count = self.text.shape[0]
        if self.image.shape != self.text.shape or self.text.dim() != 2:
            raise ValueError(f"text {tuple(self.text.shape)} and image {tuple(self.image.shape)} must both be (N, D)")
        if self.targets.dim() != 2 or self.targets.shape[1] != self.text.shape[1]:
            raise ValueError(f"targets {tuple(self.targets.shape)} must be (M, {self.text.shape[1]})")
        if self.target_index.shape != (count,) or len(self.dialogue_ids) != count:
            raise ValueError("target_index and dialogue_ids need one entry per example")
        if self.captions is not None and len(self.captions) != count:
            raise ValueError("captions need one entry per example")

    def __len__(self) -> int:
        return self.text.shape[0]

    @property
    def embed_dim(self) -> int:
        return self.text.shape[1]

    @classmethod
    def from_tensors(
        cls,
        text: torch.Tensor,
        image: torch.Tensor,
        targets: torch.Tensor,
        target_index: torch.Tensor | Sequence[int],
        dialogue_ids: Sequence[str],
        captions: Sequence[str] | None = None,
    ) -> EmbeddedData:
        """In-memory data (tests, benchmarks); the fingerprint hashes the tensors' bytes."""
        text, image, targets = (tensor.detach().to("cpu", torch.float32).contiguous() for tensor in (text, image, targets))
        index = torch.as_tensor(target_index, dtype=torch.long)
        digest = hashlib.sha256()
        for tensor in (text, image, targets, index):
            digest.update(tensor.numpy().tobytes())
        digest.update(stable_hash([list(dialogue_ids), list(captions) if captions is not None else None]).encode())
        return cls(text, image, targets, index, tuple(str(i) for i in dialogue_ids),
                   tuple(captions) if captions is not None else None, digest.hexdigest())

    def select(self, indices: torch.Tensor) -> EmbeddedData:
        """The examples at ``indices`` (targets kept whole; ``fingerprint`` extended with the selection)."""
        positions = indices.tolist()
        return EmbeddedData(
            self.text[indices], self.image[indices], self.targets, self.target_index[indices],
            tuple(self.dialogue_ids[i] for i in positions),
            tuple(self.captions[i] for i in positions) if self.captions is not None else None,
            stable_hash([self.fingerprint, positions]),
        )


def _listing(paths: Sequence[Path]) -> str:
    """Content key of image files: name, size and modification time of each, in order (a changed or replaced
    file changes its size or time, and reading 1.5M files to hash them would make every start slow)."""
    entries = []
    for path in paths:
        stat = path.stat()
        entries.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return stable_hash(entries)


def embed_training_set(
    training_set: TrainingSet, encoder: DualEncoder, cache_dir: Path, batch_size: int = 64, progress: bool = True,
    search_space: Sequence[str] | None = None,
) -> EmbeddedData:
    """Embed captions, generated images and targets with the frozen ``encoder`` (cached; see the module doc).
    With ``search_space`` (image paths under the image root) the targets are every image of it, in its order, and
    each item's target must be one of them: how a benchmark is ranked when the best epoch is chosen on it."""
    cache = EmbeddingCache(cache_dir)
    items = training_set.items
    captions = [item.caption for item in items]
    targets = training_set.targets if search_space is None else tuple(search_space)
    if search_space is not None:
        members = set(targets)
        absent = next((item for item in items if item.target not in members), None)
        if absent is not None:
            raise DataError(training_set.dialogues_file, f"target {absent.target!r} is not in the search space",
                            record=int(absent.dialogue_id), field="img")
    target_paths = [training_set.image_root / target for target in targets]
    generated_paths = [item.generated for item in items]

    def images_from(paths: Sequence[Path]) -> Callable[[int, int], np.ndarray]:
        def encode(start: int, stop: int) -> np.ndarray:
            return encoder.encode_images(encoder.preprocessing(load_rgb(paths[start:stop]))).cpu().numpy()
        return encode

    def encode_texts(start: int, stop: int) -> np.ndarray:
        return encoder.encode_texts(captions[start:stop]).cpu().numpy()

    keys = {
        "text": {"adafuse": "captions", "encoder": encoder.identity(), "texts": stable_hash(captions)},
        "image": {"adafuse": "generated", "encoder": encoder.image_identity(), "images": _listing(generated_paths)},
        "target": {"adafuse": "targets", "encoder": encoder.image_identity(), "images": _listing(target_paths)},
    }
    text = cache.load_or_build(keys["text"], len(captions), encode_texts, batch_size,
                               "embedding training captions", progress)
    image = cache.load_or_build(keys["image"], len(items), images_from(generated_paths), batch_size,
                                "embedding generated images", progress)
    target_matrix = cache.load_or_build(keys["target"], len(targets), images_from(target_paths), batch_size,
                                        "embedding target images" if search_space is None else
                                        "embedding the search space", progress)
    positions = {target: index for index, target in enumerate(targets)}
    return EmbeddedData(
        torch.from_numpy(text), torch.from_numpy(image), torch.from_numpy(target_matrix),
        torch.tensor([positions[item.target] for item in items], dtype=torch.long),
        tuple(item.dialogue_id for item in items), tuple(captions),
        stable_hash({"keys": keys, "dialogues": sha256_file(training_set.dialogues_file),
                     "layout": training_set.layout}),
    )


