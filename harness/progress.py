"""Progress bars that nest and that read well in a log file.

    with progress_bar(total=len(pending), desc="evaluating dar", unit="dialogue", enabled=progress) as bar:
        ...                      # a bar opened inside (image generation) takes the next line and goes when done
        bar.update(len(records))

On a terminal each open bar has its own line (``position``), and an inner bar clears its line when it closes, so no
inner bar breaks its outer one. On a stream that is no terminal (a log file, CI, ``nohup``), a bar writes a plain
line when it opens, at most every ``PLAIN_INTERVAL`` seconds, and when it closes: no carriage returns, no cursor
movement, nothing for a log to garble.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL = 30.0  # seconds between the plain lines of a bar on a stream that is no terminal
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_lock = threading.Lock()
_taken: set[int] = set()  # terminal lines held by open bars


class PlainLines:
    """A stream for tqdm that turns each redraw into one plain line on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        for line in re.split(r"[\r\n]", _CONTROL.sub("", text)):
            if line.strip():
                self.stream.write(line.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 **options: Any) -> Iterator[tqdm]:
    """A tqdm bar on stderr, on the first terminal line no open bar holds (``options`` go to tqdm: ``initial``,
    ...); bars may close in any order."""
    stream = sys.stderr
    with _lock:
        position = min(set(range(len(_taken) + 1)) - _taken)
        if enabled:
            _taken.add(position)
    try:
        if stream.isatty():
            bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=stream, position=position,
                       leave=position == 0, dynamic_ncols=True, **options)
        else:
            bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=PlainLines(stream),
                       mininterval=PLAIN_INTERVAL, maxinterval=PLAIN_INTERVAL, ncols=100, ascii=True, **options)
        with bar:
            yield bar
    finally:
        if enabled:
            with _lock:
                _taken.discard(position)
