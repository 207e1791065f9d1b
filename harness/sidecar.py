"""The sidecar manifest beside a file a data job writes: ``<file>.manifest.json``, what made it and from what.

    write_sidecar(Path("captions.json"), {"captioner": ..., "search_space": {"sha256": ...}})
    sidecar_path(Path("captions.json"))     # captions.json.manifest.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def write_sidecar(out: Path, manifest: Mapping[str, Any]) -> Path:
    path = sidecar_path(out)
    atomic_write_text(path, json.dumps(json.loads(json.dumps(dict(manifest), default=str)), indent=1) + "\n")
    return path
