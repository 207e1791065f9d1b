"""Caption every image of a search space with a registered captioner: PlugIR's candidate captions.

    harness data caption --data-dir DATA --image-root COCO --captioner blip2 --captioner-model DIR --out captions.json
    harness run ... --questioner plugir --candidate-captions captions.json

Images are captioned in batches with a progress bar; each caption is cached as it is made (the response cache), so
a killed job run again captions only what it had not finished. The output is a JSON list aligned with the search
space, ``{"img": path, "caption": [text]}`` per image, written atomically once every image has a caption, beside a
sidecar ``<out>.manifest.json`` holding the captioner's identity, the search space's file, sha256 and size, and
the output's sha256. An image that could not be captioned (an API failure, every draw empty) stops the job with
the count and the first reason before anything is written; the finished captions stay cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.hashing import sha256_bytes, sha256_file
from harness.progress import progress_bar
from harness.protocols import RunContext, TurnFailure
from harness.sidecar import write_sidecar
from harness.types import SearchSpace


@dataclass(frozen=True)
class CaptionSummary:
    path: Path
    manifest: Path
    images: int
    usage: dict[str, Any]


def caption_search_space(search_space: SearchSpace, search_space_file: Path, captioner: Any, out: Path,
                         context: RunContext, batch_size: int = 64) -> CaptionSummary:
    if batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {batch_size}")
    files = [search_space.resolve(path) for path in search_space.paths]
    missing = [file for file in files if not file.is_file()]
    if missing:
        raise HarnessError(f"{len(missing)} of the {len(files)} search-space images are not under the image root "
                           f"(first: {missing[0]}); check --image-root")
    captioner.prepare(context)
    captions: list[str] = []
    failures: list[tuple[str, str]] = []
    with progress_bar(len(files), "captioning search space", "image", context.progress) as bar:
        for start in range(0, len(files), batch_size):
            outputs = captioner.caption(files[start:start + batch_size])
            for path, output in zip(search_space.paths[start:start + batch_size], outputs):
                if isinstance(output, TurnFailure):
                    failures.append((path, output.reason))
                else:
                    captions.append(str(output))
            bar.update(len(outputs))
    if failures:
        raise HarnessError(f"{len(failures)} of the {len(files)} images could not be captioned (first: "
                           f"{failures[0][0]}: {failures[0][1]}); nothing was written. The finished captions are "
                           "cached: run the same command again to retry the others")
    text = json.dumps([{"img": path, "caption": [caption]} for path, caption in zip(search_space.paths, captions)],
                      ensure_ascii=False, indent=1) + "\n"
    atomic_write_text(out, text)
    manifest = write_sidecar(out, {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "captioner": dict(captioner.identity()),
        "search_space": {"file": str(search_space_file), "sha256": sha256_file(search_space_file),
                         "images": len(search_space)},
        "output_sha256": sha256_bytes(text.encode("utf-8")),
    })
    return CaptionSummary(out, manifest, len(captions), dict(captioner.usage()))
