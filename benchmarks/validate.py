"""Check benchmark files before a run: schema, targets, images, duplicates, digests and the known quirks.

    >>> report = validate_data_dir(Path("data/chatir"), image_root=Path("~/coco").expanduser())  # doctest: +SKIP
    >>> report.ok, print(report.render())  # doctest: +SKIP

Validation collects every problem instead of stopping at the first, and it never changes a file: the quirks of the
published files (Human_BLIP2's rotated questions, FLAN's leaked "Answer:" text, ...) are reported as warnings with
counts, because results are only comparable with published ones when the files are used as released.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chatir import duplicates, parse_search_path
from benchmarks.known import KNOWN_BENCHMARKS, SEARCH_SPACE, KnownFile
from benchmarks.quirks import (
    EXAMPLES,
    QuirkCount,
    count_empty_turns,
    count_leaked_answer_rounds,
    count_multi_question_rounds,
    count_repeated_question_dialogues,
    count_rotated_dialogues,
)
from harness.dialogue_files import CHATIR_TURNS, RecordError, parse_dialogue, read_json, require_list
from harness.errors import DataError, HarnessError
from harness.hashing import sha256_file
from harness.types import Dialogue

LEVELS = ("error", "warning", "info")
REFERENCE_BENCHMARK = "visdial-val"  # the human dialogues that the other files' questions are compared with


@dataclass(frozen=True)
class Finding:
    """One result of validation: ``level`` is "error", "warning" or "info"; ``count`` says how many records,
    rounds or paths show it and ``examples`` the first few."""

    level: str
    code: str
    message: str
    file: str
    count: int = 1
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    """Every finding of a validation, for the CLI (``render``) and for programs (``ok``, ``find``)."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and info do not stop a run)."""
        return not any(finding.level == "error" for finding in self.findings)

    def find(self, code: str, file: str | None = None) -> tuple[Finding, ...]:
        """The findings with ``code``, optionally only those about a file whose path ends with ``file``."""
        return tuple(
            finding
            for finding in self.findings
            if finding.code == code and (file is None or finding.file.endswith(file))
        )

    def render(self) -> str:
        """Errors first, then warnings, then info, each with its count and examples."""
        lines: list[str] = []
        for level in LEVELS:
            chosen = [finding for finding in self.findings if finding.level == level]
            if not chosen:
                continue
            lines.append(f"{level.upper()}S ({len(chosen)})" if level != "info" else "INFO")
            for finding in chosen:
                lines.append(f"  [{finding.code}] {finding.file}: {finding.message}")
                lines.extend(f"      e.g. {example}" for example in finding.examples)
        errors = sum(finding.level == "error" for finding in self.findings)
        warnings = sum(finding.level == "warning" for finding in self.findings)
        lines.append(f"{'OK' if self.ok else 'FAILED'}: {errors} error(s), {warnings} warning(s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Checked:
    """What checking one file produced: its findings and the records that parsed (None when the file did not)."""

    findings: tuple[Finding, ...]
    items: tuple | None


def validate_search_space_file(
    path: Path, image_root: Path | None = None, known: KnownFile | None = None
) -> ValidationReport:
    """Check a search-space list, and that every image exists under ``image_root`` when one is given."""
    return ValidationReport(_check_search_space(Path(path), image_root, known).findings)


def validate_benchmark_file(
    path: Path,
    search_space: Path | None = None,
    image_root: Path | None = None,
    known: KnownFile | None = None,
    reference: Path | None = None,
    expected_turns: int | None = CHATIR_TURNS,
) -> ValidationReport:
    """Check one ChatIR-format dialogue file; with ``search_space`` also the search space and that it holds every
    target; with ``reference`` (VisDial's human dialogues) also the one-round question rotation."""
    findings: list[Finding] = []
    space_paths = None
    if search_space is not None:
        checked_space = _check_search_space(Path(search_space), image_root, None)
        findings.extend(checked_space.findings)
        space_paths = checked_space.items
    checked = _check_dialogues(Path(path), space_paths, known, expected_turns)
    findings.extend(checked.findings)
    if reference is not None:
        reference_checked = _check_dialogues(Path(reference), None, None, expected_turns)
        if checked.items is not None and reference_checked.items is not None:
            findings.extend(_rotation_findings(path, checked.items, reference_checked.items, Path(reference)))
    return ValidationReport(tuple(findings))


def validate_data_dir(
    data_dir: Path, image_root: Path | None = None, benchmarks: Sequence[str] | None = None
) -> ValidationReport:
    """Check the published files under ``data_dir`` (upstream layout): the search space and each named benchmark
    (all by default). Question rotation is checked when ``visdial-val`` is among them."""
    data_dir = Path(data_dir)
    names = list(KNOWN_BENCHMARKS) if not benchmarks else list(dict.fromkeys(benchmarks))
    unknown = [name for name in names if name not in KNOWN_BENCHMARKS]
    if unknown:
        raise HarnessError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(KNOWN_BENCHMARKS)}")
    space = _check_search_space(data_dir / SEARCH_SPACE.relative_path, image_root, SEARCH_SPACE)
    findings = list(space.findings)
    parsed: dict[str, tuple[Dialogue, ...] | None] = {}
    for name in names:
        known = KNOWN_BENCHMARKS[name].dialogues
        checked = _check_dialogues(data_dir / known.relative_path, space.items, known, CHATIR_TURNS)
        findings.extend(checked.findings)
        parsed[name] = checked.items
    reference = parsed.get(REFERENCE_BENCHMARK)
    if reference is not None:
        reference_file = data_dir / KNOWN_BENCHMARKS[REFERENCE_BENCHMARK].dialogues.relative_path
        for name, dialogues in parsed.items():
            if name != REFERENCE_BENCHMARK and dialogues is not None:
                file = data_dir / KNOWN_BENCHMARKS[name].dialogues.relative_path
                findings.extend(_rotation_findings(file, dialogues, reference, reference_file))
    elif REFERENCE_BENCHMARK not in names:
        message = f"question rotation not checked: validate {REFERENCE_BENCHMARK} in the same call to check it"
        findings.append(Finding("info", "rotation-not-checked", message, str(data_dir)))
    return ValidationReport(tuple(findings))


def _check_search_space(path: Path, image_root: Path | None, known: KnownFile | None) -> _Checked:
    entries, findings = _read_list(path, "image paths", known)
    if entries is None:
        return _Checked(tuple(findings), None)
    paths, problems = [], []
    for index, entry in enumerate(entries):
        try:
            paths.append(parse_search_path(entry, index, path))
        except RecordError as error:
            problems.append(error)
    findings.extend(_problem_findings(path, problems))
    repeated = duplicates(paths)
    if repeated:
        message = f"{len(repeated):,} paths occur more than once; a rank would be ambiguous"
        findings.append(Finding("error", "duplicate-path", message, str(path), len(repeated), _quote(repeated)))
    findings.extend(_count_findings(path, len(entries), "image paths", known))
    if image_root is not None:
        findings.extend(_image_findings(path, paths, Path(image_root)))
    return _Checked(tuple(findings), tuple(paths))


def _check_dialogues(
    path: Path, space_paths: tuple[str, ...] | None, known: KnownFile | None, expected_turns: int | None
) -> _Checked:
    records, findings = _read_list(path, "dialogue records", known)
    if records is None:
        return _Checked(tuple(findings), None)
    dialogues, problems = [], []
    for index, record in enumerate(records):
        try:
            dialogues.append(parse_dialogue(record, index, path, expected_turns))
        except RecordError as error:
            problems.append(error)
    findings.extend(_problem_findings(path, problems))
    findings.extend(_count_findings(path, len(records), "dialogues", known))
    targets = [dialogue.target for dialogue in dialogues]
    repeated = duplicates(targets)
    if repeated:
        message = f"{len(repeated):,} targets are the target of more than one dialogue"
        findings.append(Finding("error", "duplicate-target", message, str(path), len(repeated), _quote(repeated)))
    if space_paths is not None:
        members = set(space_paths)
        absent = [f"record {d.dialogue_id}: {d.target!r}" for d in dialogues if d.target not in members]
        if absent:
            message = f"{len(absent):,} targets are not in the search space"
            findings.append(
                Finding(
                    "error", "target-not-in-search-space", message, str(path), len(absent), tuple(absent[:EXAMPLES])
                )
            )
    findings.extend(_quirk_findings(path, dialogues))
    return _Checked(tuple(findings), tuple(dialogues))


def _read_list(path: Path, what: str, known: KnownFile | None) -> tuple[list | None, list[Finding]]:
    """The file's top-level list (None when unusable) and the findings about the file as a whole."""
    if not path.is_file():
        hint = " (get the published files with `harness data fetch chatir --to DIR`)" if known else ""
        return None, [Finding("error", "missing-file", f"the file does not exist{hint}", str(path))]
    findings = []
    if known is not None:
        actual = sha256_file(path)
        if actual != known.sha256:
            message = f"sha256 {actual} differs from the published {known.sha256}; it is used as it is"
            findings.append(Finding("warning", "sha256-mismatch", message, str(path)))
    try:
        return require_list(read_json(path), path, what), findings
    except DataError as error:
        return None, [*findings, Finding("error", getattr(error, "code", "unreadable"), str(error), str(path))]


def _problem_findings(path: Path, problems: Sequence[RecordError]) -> list[Finding]:
    """Schema problems grouped by kind, each example naming the record and the field."""
    grouped: dict[str, list[RecordError]] = defaultdict(list)
    for problem in problems:
        grouped[problem.code].append(problem)
    return [
        Finding(
            "error",
            code,
            f"{len(errors):,} records fail the schema check ({code})",
            str(path),
            len(errors),
            tuple(str(error).removeprefix(f"{path}, ") for error in errors[:EXAMPLES]),
        )
        for code, errors in grouped.items()
    ]


def _count_findings(path: Path, count: int, what: str, known: KnownFile | None) -> list[Finding]:
    if known is None or count == known.records:
        suffix = " as published" if known else ""
        return [Finding("info", "records", f"{count:,} {what}{suffix}", str(path), count)]
    message = f"{count:,} {what}, the published file has {known.records:,}"
    return [Finding("warning", "record-count", message, str(path), count)]


def _image_findings(path: Path, paths: Sequence[str], image_root: Path) -> list[Finding]:
    if not image_root.is_dir():
        return [Finding("error", "image-root-missing", f"the image root {image_root} is not a folder", str(path))]
    absent = _missing_images(paths, image_root)
    findings = []
    escaping = _escaping_images(paths, image_root)
    if escaping:
        message = (f"{len(escaping):,} of {len(paths):,} images resolve outside the image root {image_root.resolve()} "
                   "(symbolic links or '..'); runs refuse to read them")
        findings.append(Finding("error", "image-outside-root", message, str(path), len(escaping), _quote(escaping)))
    if not absent:
        return [*findings, Finding("info", "images", f"all {len(paths):,} images exist under {image_root}", str(path))]
    message = f"{len(absent):,} of {len(paths):,} images are missing under {image_root}"
    return [*findings, Finding("error", "missing-image", message, str(path), len(absent), _quote(absent))]


def _escaping_images(paths: Sequence[str], image_root: Path) -> list[str]:
    """Images whose real path lies outside the real image root: a symbolic link (of the file or of a folder on its
    way) or '..' leads elsewhere. Only links and '..' are resolved, so 50k plain files cost no extra system call."""
    root = image_root.resolve()
    folders: dict[str, Path] = {}
    escaping = []
    for relative in paths:
        folder, _, name = relative.replace("\\", "/").rpartition("/")
        if folder not in folders:
            folders[folder] = (image_root / folder).resolve()
        candidate = folders[folder] / name
        real = candidate.resolve() if candidate.is_symlink() else candidate
        if real != root and root not in real.parents:
            escaping.append(relative)
    return escaping


def _missing_images(paths: Sequence[str], image_root: Path) -> list[str]:
    # One directory listing per folder instead of one stat per image: 50k images cost a few folder reads.
    listings: dict[str, set[str]] = {}
    absent = []
    for relative in paths:
        folder, _, name = relative.replace("\\", "/").rpartition("/")
        if folder not in listings:
            try:
                with os.scandir(image_root / folder) as entries:
                    listings[folder] = {entry.name for entry in entries if entry.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                listings[folder] = set()
        if name not in listings[folder]:
            absent.append(relative)
    return absent


def _quirk_findings(path: Path, dialogues: Sequence[Dialogue]) -> list[Finding]:
    checks = (
        ("empty-turn", "turns are empty", count_empty_turns),
        ("leaked-answer", 'rounds hold leaked "Answer:" text', count_leaked_answer_rounds),
        ("multi-question", "rounds hold more than one question", count_multi_question_rounds),
        ("repeated-question", "dialogues ask a question twice", count_repeated_question_dialogues),
    )
    return [
        _quirk_finding(path, code, what, quirk) for code, what, counter in checks if (quirk := counter(dialogues)).count
    ]


def _rotation_findings(
    path: Path, dialogues: Sequence[Dialogue], reference: Sequence[Dialogue], reference_file: Path
) -> list[Finding]:
    quirk = count_rotated_dialogues(dialogues, reference)
    if not quirk.count:
        return []
    what = f"dialogues ask the questions of {reference_file.name} rotated by one round"
    return [_quirk_finding(path, "rotated-questions", what, quirk)]


def _quirk_finding(path: Path, code: str, what: str, quirk: QuirkCount) -> Finding:
    return Finding(
        "warning", code, f"{quirk.count:,} {what} (kept as released)", str(path), quirk.count, quirk.examples
    )


def _quote(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(repr(item) for item in items[:EXAMPLES])
