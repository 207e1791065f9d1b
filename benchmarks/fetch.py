"""Download the published ChatIR files into the upstream layout, verified against their known sha256.

    >>> paths = fetch_chatir(Path("data/chatir"))  # doctest: +SKIP
    >>> [path.name for path in paths]  # doctest: +SKIP
    ['VisDial_v1.0_queries_val.json', 'ChatGPT_BLIP2.json', 'Human_BLIP2.json', ...]

Files already in place with the right digest are not downloaded again. Each file is written atomically, so an
interrupted fetch never leaves half a file that a later run would read. Without network access the error lists
the URLs to download by hand and where each file goes.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from benchmarks.known import KNOWN_FILES, RAW_BASE_URL, KnownFile
from harness.atomic import atomic_write_bytes
from harness.errors import HarnessError
from harness.hashing import sha256_file


def fetch_chatir(
    to: Path, base_url: str = RAW_BASE_URL, timeout: float = 30, files: Sequence[KnownFile] = KNOWN_FILES
) -> list[Path]:
    """Put every file of ``files`` (by default the four dialogue files and the 50k search space) under ``to``
    and return their paths. A digest mismatch or an unreachable server is a ``HarnessError``."""
    to = Path(to)
    paths = []
    for position, known in enumerate(files):
        path = to / known.relative_path
        paths.append(path)
        if _in_place(path, known):
            continue
        try:
            with urllib.request.urlopen(known.url(base_url), timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as error:
            # URLError covers HTTP errors and refused connections; OSError covers timeouts and resets mid-read.
            missing = [
                known,
                *(later for later in files[position + 1 :] if not _in_place(to / later.relative_path, later)),
            ]
            raise HarnessError(_by_hand(error, known.url(base_url), missing, to, base_url)) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != known.sha256:
            # The download is checked before it is written, so a bad file never replaces a good one.
            raise HarnessError(
                f"{known.url(base_url)} (for {path}) has sha256 {actual}, expected {known.sha256}; nothing was written"
            )
        atomic_write_bytes(path, data)
    return paths


def _in_place(path: Path, known: KnownFile) -> bool:
    return path.is_file() and sha256_file(path) == known.sha256


def _by_hand(error: Exception, url: str, remaining: Sequence[KnownFile], to: Path, base_url: str) -> str:
    reason = f"HTTP {error.code} {error.reason}" if isinstance(error, urllib.error.HTTPError) else error
    reason = getattr(reason, "reason", reason)  # URLError wraps the socket error that says what went wrong
    steps = "\n".join(f"  {known.url(base_url)}\n    -> {to / known.relative_path}" for known in remaining)
    return (
        f"could not download {url} ({reason}). Download these files by hand and put each where shown, "
        f"then run `harness data validate --data-dir {to}`:\n{steps}"
    )
