"""Where model weights come from: a model source string resolved to a checkpoint file, a directory or a hub id.

    resolve_source("runs/chatir_weights.ckpt")          # ModelSource(kind="checkpoint", location=...)
    resolve_source("Salesforce/blip-itm-base-coco")     # ModelSource(kind="hub", ...)
    resolve_source("https://.../model_base.pth")       # ModelSource(kind="url", ...)
    path = fetch_checkpoint(source, cache_dir)           # downloads a URL once into <cache_dir>/checkpoints/
    model = from_pretrained(BlipForImageTextRetrieval, "Salesforce/blip-itm-base-coco")

Rules, in order: an existing file with a checkpoint suffix is an original checkpoint (converted on load); an existing
directory holding ``config.json`` is a transformers directory (a training run's folder, whose ``best/`` holds one,
stands for that); an http(s) URL is an original checkpoint to download;
anything else is a Hugging Face hub id. Failures offline say what to download and which option to pass. Messages
never include request headers or tokens: only the source string and the error's own text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from harness.atomic import atomic_writer
from harness.errors import HarnessError
from harness.pretrained import load_pretrained
from harness.progress import progress_bar

CHECKPOINT_SUFFIXES = (".pth", ".ckpt", ".pt", ".bin")
SOURCE_KINDS = ("checkpoint", "directory", "url", "hub")
MODEL_OPTION = "--retriever-model"

Loadable = TypeVar("Loadable")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model source: ``kind`` is one of SOURCE_KINDS, ``location`` a path, URL or hub id."""

    kind: str
    location: str

    @property
    def path(self) -> Path:
        return Path(self.location)


def resolve_source(source: str) -> ModelSource:
    """Classify ``source`` by the rules in the module docstring."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise HarnessError(
                f"model source {source!r} is a file but not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}); "
                "pass an original checkpoint file, a transformers directory or a hub id"
            )
        return ModelSource("checkpoint", str(path))
    if path.is_dir():
        if not (path / "config.json").is_file() and _trained_here(path / "best"):
            return ModelSource("directory", str(path / "best"))  # a `train chatir` run's folder: its best epoch
        if not (path / "config.json").is_file():
            raise HarnessError(
                f"model directory {source!r} has no config.json (nor a best/ of `harness train chatir`); pass a "
                "directory written by save_pretrained (or by `harness convert`, or a training run's best/), an "
                "original checkpoint file or a hub id"
            )
        return ModelSource("directory", str(path))
    if urllib.parse.urlparse(source).scheme in ("http", "https"):
        return ModelSource("url", source)
    # A hub id is "name" or "owner/name": anything else that looks like a path is a path that does not exist.
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise HarnessError(f"model source {source!r}: no such file or directory (and it is not a hub id)")
    return ModelSource("hub", source)


def _trained_here(directory: Path) -> bool:
    """Whether ``directory`` is the best/ epoch `harness train chatir` wrote (an ADaFuSE best/ is no encoder)."""
    try:
        return json.loads((directory / "training.json").read_text()).get("format") == "chatir-training"
    except (OSError, ValueError, AttributeError):
        return False


def fetch_checkpoint(source: ModelSource, cache_dir: Path, progress: bool = True) -> Path:
    """The local file of a checkpoint source; a URL is downloaded once into ``<cache_dir>/checkpoints/``."""
    if source.kind == "checkpoint":
        return source.path
    if source.kind != "url":
        raise ValueError(f"{source.kind} source {source.location!r} is not a checkpoint")
    name = Path(urllib.parse.urlparse(source.location).path).name or "checkpoint.pth"
    target = Path(cache_dir) / "checkpoints" / name
    if target.is_file():
        return target
    try:
        _download(source.location, target, progress)
    except (urllib.error.URLError, OSError) as error:
        raise HarnessError(
            f"could not download {source.location} ({error}). If this machine is offline, download the file "
            f"elsewhere and either pass it with {MODEL_OPTION} PATH or place it at {target}"
        ) from None
    return target


def from_pretrained(cls: type[Loadable], source: str, **kwargs: Any) -> Loadable:
    """``cls.from_pretrained(source)`` for a directory or hub id, with an actionable error when it fails."""
    return load_pretrained(cls.from_pretrained, source, MODEL_OPTION, **kwargs)  # type: ignore[attr-defined]


def float32_pretrained(cls: type[Loadable], source: str) -> Loadable:
    """Load weights in float32 whatever dtype they were saved in: fingerprints are taken in float32."""
    return from_pretrained(cls, source, dtype=torch.float32)


def _download(url: str, target: Path, progress: bool) -> None:
    # Streamed (a checkpoint is close to a gigabyte) through an atomic writer, so an interrupted download never
    # leaves a truncated checkpoint under the final name.
    with urllib.request.urlopen(url, timeout=60) as response, atomic_writer(target) as stream:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total, f"downloading {target.name}", "B", progress, unit_scale=True) as bar:
            while chunk := response.read(1 << 20):
                stream.write(chunk)
                bar.update(len(chunk))
