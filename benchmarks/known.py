"""The published ChatIR benchmarks as data: where each file lives upstream, its record count and its sha256.

    >>> KNOWN_BENCHMARKS["human-blip2"].dialogues.relative_path
    'dialogues/Human_BLIP2.json'
    >>> benchmark = load_visdial_val(Path("data/chatir"), image_root=Path("~/coco").expanduser())  # doctest: +SKIP

``data_dir`` is laid out as the upstream repository (``dialogues/``, ``ChatIR_Protocol/``), so it can be a clone of
levymsn/ChatIR or a folder filled by ``harness data fetch chatir --to DIR``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chatir import CHATIR_TURNS, load_chatir_benchmark
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.types import Benchmark

UPSTREAM_REPOSITORY = "levymsn/ChatIR"
UPSTREAM_COMMIT = "c62600c90a2260c8cca44c5fb6b37bc3df53c43f"
RAW_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPOSITORY}/{UPSTREAM_COMMIT}"
UPSTREAM = f"https://github.com/{UPSTREAM_REPOSITORY}/tree/{UPSTREAM_COMMIT}"


log = logging.getLogger("harness.benchmarks")


class KnownFileMismatchWarning(UserWarning):
    """A local file whose sha256 differs from the published one (it still loads; the manifest records its digest)."""


@dataclass(frozen=True)
class KnownFile:
    """One published data file: its path in the upstream layout, its record count and its sha256."""

    relative_path: str
    records: int
    sha256: str

    def url(self, base_url: str = RAW_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.relative_path}"


@dataclass(frozen=True)
class KnownBenchmark:
    """A published benchmark: its dialogue file, evaluated in the shared 50k search space."""

    name: str
    dialogues: KnownFile
    description: str


SEARCH_SPACE = KnownFile(
    "ChatIR_Protocol/Search_Space_val_50k.json",
    50_000,
    "8a32638192419131513f2e5a6e5159d191de6789678fb3b1faa18e1ab46b44af",
)

KNOWN_BENCHMARKS: dict[str, KnownBenchmark] = {
    known.name: known
    for known in (
        KnownBenchmark(
            "visdial-val",
            KnownFile(
                "dialogues/VisDial_v1.0_queries_val.json",
                2_064,
                "6db15734e21df441c932b84cf538ba660350e82dcb18e5d3ab8d0f99691cd210",
            ),
            "VisDial v1.0 val: human questions, human answers",
        ),
        KnownBenchmark(
            "chatgpt-blip2",
            KnownFile(
                "dialogues/ChatGPT_BLIP2.json",
                2_064,
                "e3a3e3d08aadd6540264d25eca9ef6894ff9364eaa8002ff746e801c151a3cd8",
            ),
            "ChatGPT questions, BLIP-2 answers",
        ),
        KnownBenchmark(
            "human-blip2",
            KnownFile(
                "dialogues/Human_BLIP2.json", 2_064, "780aa994c465e4b92a344c3da0a8945a29da3ec96e3d380a0d1585d9c33cc8ae"
            ),
            "human (VisDial) questions, BLIP-2 answers",
        ),
        KnownBenchmark(
            "flan-blip2",
            KnownFile(
                "dialogues/FLAN_ALPACA_XXL_BLIP2.json",
                2_064,
                "aac9bcb3ecbe736885c6a846e7e1433b69795617449e44a6c8e269efd0be32b7",
            ),
            "Flan-Alpaca-XXL questions, BLIP-2 answers",
        ),
    )
}

KNOWN_FILES: tuple[KnownFile, ...] = (*(known.dialogues for known in KNOWN_BENCHMARKS.values()), SEARCH_SPACE)


def load_known_benchmark(
    name: str, data_dir: Path, image_root: Path | None = None, search_space: Path | None = None
) -> Benchmark:
    """Load a published benchmark from ``data_dir``; ``search_space`` replaces the default 50k list."""
    known = KNOWN_BENCHMARKS[name]
    data_dir = Path(data_dir)
    dialogue_file = locate(known.dialogues, data_dir, name)
    # An overriding search space is the user's own list, so there is no published digest to compare it with.
    space_file = locate(SEARCH_SPACE, data_dir, name) if search_space is None else Path(search_space)
    return load_chatir_benchmark(dialogue_file, space_file, image_root=image_root, name=name)


def load_file_benchmark(
    dialogues: Path,
    search_space: Path | None = None,
    image_root: Path | None = None,
    data_dir: Path | None = None,
    expected_turns: int | None = CHATIR_TURNS,
) -> Benchmark:
    """Any ChatIR-format dialogue file (registered as ``chatir-file``), over ``search_space``, or over the published
    50k search space under ``data_dir`` when no search space is given (said in the log)."""
    if search_space is None:
        if data_dir is None:
            raise HarnessError(f"benchmark file {dialogues} needs a search space (--search-space FILE or --data-dir)")
        search_space = locate(SEARCH_SPACE, Path(data_dir), str(dialogues))
        log.info("%s: no --search-space given, so the search space is --data-dir's %s", dialogues, search_space)
    return load_chatir_benchmark(Path(dialogues), Path(search_space), image_root=image_root,
                                 expected_turns=expected_turns)


def locate(known: KnownFile, data_dir: Path, benchmark: str) -> Path:
    """The known file under ``data_dir``; missing is an error saying how to get it, a changed digest a warning."""
    path = data_dir / known.relative_path
    if not path.is_file():
        raise HarnessError(
            f"benchmark {benchmark!r} needs {known.relative_path} but {path} does not exist; "
            f"download the ChatIR files with `harness data fetch chatir --to {data_dir}` "
            f"or point --data-dir at a clone of {UPSTREAM_REPOSITORY}"
        )
    actual = sha256_file(path)
    if actual != known.sha256:
        warnings.warn(
            f"{path} differs from the published {known.relative_path} (sha256 {actual}, expected {known.sha256}); "
            "it is loaded as it is and the run manifest records its digest",
            KnownFileMismatchWarning,
            stacklevel=4,  # point at the caller of load_<benchmark>
        )
    return path


def load_visdial_val(data_dir: Path, image_root: Path | None = None, search_space: Path | None = None) -> Benchmark:
    """VisDial v1.0 val dialogues (human questions and answers), 2,064 targets in the 50k search space."""
    return load_known_benchmark("visdial-val", data_dir, image_root, search_space)


def load_chatgpt_blip2(data_dir: Path, image_root: Path | None = None, search_space: Path | None = None) -> Benchmark:
    """ChatGPT questions answered by BLIP-2, 2,064 targets in the 50k search space."""
    return load_known_benchmark("chatgpt-blip2", data_dir, image_root, search_space)


def load_human_blip2(data_dir: Path, image_root: Path | None = None, search_space: Path | None = None) -> Benchmark:
    """VisDial's human questions (rotated by one round, as released) answered by BLIP-2."""
    return load_known_benchmark("human-blip2", data_dir, image_root, search_space)


def load_flan_blip2(data_dir: Path, image_root: Path | None = None, search_space: Path | None = None) -> Benchmark:
    """Flan-Alpaca-XXL questions answered by BLIP-2 (with leaked "Answer:" text, as released)."""
    return load_known_benchmark("flan-blip2", data_dir, image_root, search_space)
