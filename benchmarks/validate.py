"""Check benchmark files before a run: schema, targets, images, duplicates, digests and the known quirks.

    >>> report = validate_benchmarks(["visdial-val"], data_dir=Path("data/chatir"), image_root=Path("~/coco"))  # doctest: +SKIP
    >>> report = validate_benchmarks(["my_dialogues.json"], search_space=Path("my_space.json"))  # doctest: +SKIP
    >>> report.ok, print(report.render())  # doctest: +SKIP

A benchmark is a published name (its file found under ``data_dir``, upstream layout) or any ChatIR-format file.
Validation collects every problem instead of stopping at the first, says what it checked and what it could not (no
search space: targets and images are not checked), and never changes a file: the quirks of the published files
(Human_BLIP2's rotated questions, FLAN's leaked "Answer:" text, ...) are reported as warnings with counts, because
results are only comparable with published ones when the files are used as released. A file is called "as
published" only when its sha256 is the published one.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chatir import duplicates, parse_search_path
from benchmarks.known import KNOWN_BENCHMARKS, KNOWN_FILES, SEARCH_SPACE, KnownFile
from harness.dialogue_files import CHATIR_TURNS, RecordError, parse_dialogue, read_json, require_list
from harness.dialogue_quality import (
    EXAMPLES,
    QuirkCount,
    count_empty_turns,
    count_leaked_answer_rounds,
    count_multi_question_rounds,
    count_question_free_rounds,
    count_repeated_question_dialogues,
    count_rotated_dialogues,
    looks_reformulated,
    question_free_share,
)
from harness.errors import DataError, HarnessError
from harness.hashing import sha256_file
from harness.images import LARGE_PIXELS, ImageCheck, check_image
from harness.progress import progress_bar
from harness.types import Dialogue

LEVELS = ("error", "warning", "info")
REFERENCE_BENCHMARK = "visdial-val"  # the human dialogues that the other files' questions are compared with
_DECODE_WORKERS = 8  # decoding releases the GIL


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
class DialogueFile:
    """A dialogue file to check: its path and, for a published name, the published file it should be."""

    path: Path
    expected: KnownFile | None = None
    name: str | None = None


def validate_benchmarks(
    benchmarks: Sequence[str] = (),
    *,
    data_dir: Path | None = None,
    search_space: Path | None = None,
    image_root: Path | None = None,
    decode: bool = True,
    live_answerer: bool = False,
    progress: bool = False,
) -> ValidationReport:
    """Check each benchmark (a published name under ``data_dir``, or a ChatIR-format file; none: every published
    one under ``data_dir``) against ``search_space`` (default: ``data_dir``'s published one; none at all: the checks
    that need one are skipped and said to be). With ``image_root`` every image must exist, stay inside it and, unless
    ``decode`` is off, decode. ``live_answerer``: the run re-asks the recorded questions, so a round without a "?"
    is an error (a warning otherwise)."""
    files = resolve_benchmarks(benchmarks, data_dir)
    findings: list[Finding] = []
    space_paths = None
    space_file, space_expected = _search_space_file(search_space, data_dir)
    if space_file is None:
        message = ("no search space given (--search-space FILE or --data-dir DIR): whether the targets are in it and "
                   "the images were not checked")
        findings.append(Finding("info", "search-space-not-checked", message, ", ".join(str(f.path) for f in files)))
    else:
        checked_space = _check_search_space(space_file, image_root, space_expected, decode, progress)
        findings.extend(checked_space.findings)
        space_paths = checked_space.items
    parsed: dict[Path, tuple[Dialogue, ...]] = {}
    reference: DialogueFile | None = None
    for file in files:
        checked = _check_dialogues(file, space_paths, live_answerer)
        findings.extend(checked.findings)
        if checked.items is not None:
            parsed[file.path] = checked.items
            if REFERENCE_BENCHMARK in (file.name, checked.published_name):
                reference = file
    if reference is not None and reference.path in parsed:
        for file in files:
            dialogues = parsed.get(file.path)
            if file is not reference and dialogues is not None and not looks_reformulated(dialogues):
                findings.extend(_rotation_findings(file.path, dialogues, parsed[reference.path], reference.path))
    else:
        message = f"question rotation not checked: validate {REFERENCE_BENCHMARK} in the same call to check it"
        findings.append(Finding("info", "rotation-not-checked", message, ", ".join(str(f.path) for f in files)))
    return ValidationReport(tuple(findings))


def resolve_benchmarks(benchmarks: Sequence[str], data_dir: Path | None) -> list[DialogueFile]:
    """Each benchmark as a file to check; published names need ``data_dir``, files do not."""
    if not benchmarks:
        if data_dir is None:
            raise HarnessError("give --benchmark NAME|FILE (repeatable), or --data-dir DIR to check every published "
                               "file in it")
        benchmarks = list(KNOWN_BENCHMARKS)
    files = []
    for benchmark in dict.fromkeys(benchmarks):
        if benchmark in KNOWN_BENCHMARKS:
            if data_dir is None:
                raise HarnessError(f"benchmark {benchmark!r} is a published name: give --data-dir DIR (the upstream "
                                   "layout) to find its file, or pass the file itself")
            known = KNOWN_BENCHMARKS[benchmark].dialogues
            files.append(DialogueFile(Path(data_dir) / known.relative_path, known, benchmark))
        elif Path(benchmark).expanduser().is_file():
            files.append(DialogueFile(Path(benchmark).expanduser()))
        else:
            raise HarnessError(f"benchmark {benchmark!r} is neither a published name ({', '.join(KNOWN_BENCHMARKS)}) "
                               "nor an existing file")
    return files


def _search_space_file(search_space: Path | None, data_dir: Path | None) -> tuple[Path | None, KnownFile | None]:
    if search_space is not None:
        return Path(search_space).expanduser(), None
    if data_dir is not None:
        return Path(data_dir) / SEARCH_SPACE.relative_path, SEARCH_SPACE
    return None, None


@dataclass(frozen=True)
class _Checked:
    """What checking one file produced: its findings, the records that parsed (None when the file did not) and the
    published file its sha256 equals (None when it equals none)."""

    findings: tuple[Finding, ...]
    items: tuple | None
    published_name: str | None = None


def _check_search_space(
    path: Path, image_root: Path | None, expected: KnownFile | None, decode: bool = False, progress: bool = False
) -> _Checked:
    entries, findings, published = _read_list(path, "image paths", expected)
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
    findings.extend(_count_findings(path, len(entries), "image paths", expected, published))
    if image_root is not None:
        findings.extend(_image_findings(path, paths, Path(image_root), decode, progress))
    return _Checked(tuple(findings), tuple(paths))


def _check_dialogues(file: DialogueFile, space_paths: tuple[str, ...] | None, live_answerer: bool) -> _Checked:
    path = file.path
    records, findings, published = _read_list(path, "dialogue records", file.expected)
    if records is None:
        return _Checked(tuple(findings), None)
    dialogues, problems = [], []
    for index, record in enumerate(records):
        try:
            dialogues.append(parse_dialogue(record, index, path, CHATIR_TURNS))
        except RecordError as error:
            problems.append(error)
    findings.extend(_problem_findings(path, problems))
    findings.extend(_count_findings(path, len(records), "dialogues", file.expected, published))
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
    findings.extend(_quirk_findings(path, dialogues, live_answerer, space_paths is not None))
    name = next((known.name for known in KNOWN_BENCHMARKS.values() if known.dialogues == published), None)
    return _Checked(tuple(findings), tuple(dialogues), name)


def _read_list(
    path: Path, what: str, expected: KnownFile | None
) -> tuple[list | None, list[Finding], KnownFile | None]:
    """The file's top-level list (None when unusable), the findings about the file as a whole, and the published
    file whose sha256 it has (None when none: for a published name, a changed file)."""
    if not path.is_file():
        hint = " (get the published files with `harness data fetch chatir --to DIR`)" if expected else ""
        return None, [Finding("error", "missing-file", f"the file does not exist{hint}", str(path))], None
    findings = []
    actual = sha256_file(path)
    published = next((known for known in KNOWN_FILES if known.sha256 == actual), None)
    if expected is not None and published != expected:
        message = f"sha256 {actual} differs from the published {expected.sha256}; it is used as it is"
        findings.append(Finding("warning", "sha256-mismatch", message, str(path)))
    elif expected is None and published is not None:
        message = f"identical to the published {published.relative_path} (sha256 {actual})"
        findings.append(Finding("info", "published-file", message, str(path)))
    try:
        return require_list(read_json(path), path, what), findings, published
    except DataError as error:
        return None, [*findings, Finding("error", getattr(error, "code", "unreadable"), str(error), str(path))], published


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


def _count_findings(
    path: Path, count: int, what: str, expected: KnownFile | None, published: KnownFile | None
) -> list[Finding]:
    if published is not None and (expected is None or published == expected):
        return [Finding("info", "records", f"{count:,} {what}, as published (sha256 matches)", str(path), count)]
    if expected is None:
        return [Finding("info", "records", f"{count:,} {what}", str(path), count)]
    if count == expected.records:
        message = f"{count:,} {what}, as many as the published file, whose content differs (see sha256-mismatch)"
        return [Finding("info", "records", message, str(path), count)]
    message = f"{count:,} {what}, the published file has {expected.records:,}"
    return [Finding("warning", "record-count", message, str(path), count)]


def _image_findings(
    path: Path, paths: Sequence[str], image_root: Path, decode: bool, progress: bool
) -> list[Finding]:
    if not image_root.is_dir():
        return [Finding("error", "image-root-missing", f"the image root {image_root} is not a folder", str(path))]
    findings = []
    escaping = _escaping_images(paths, image_root)
    if escaping:
        message = (f"{len(escaping):,} of {len(paths):,} images resolve outside the image root {image_root.resolve()} "
                   "(symbolic links or '..'); runs refuse to read them")
        findings.append(Finding("error", "image-outside-root", message, str(path), len(escaping), _quote(escaping)))
    absent = _missing_images(paths, image_root)
    if absent:
        message = f"{len(absent):,} of {len(paths):,} images are missing under {image_root}"
        findings.append(Finding("error", "missing-image", message, str(path), len(absent), _quote(absent)))
    else:
        findings.append(Finding("info", "images", f"all {len(paths):,} images exist under {image_root}", str(path)))
    if not decode:
        message = "images not decoded (--no-decode): a file that is no image shows only when a run reads it"
        return [*findings, Finding("info", "images-not-decoded", message, str(path))]
    unusable = set(absent) | set(escaping)
    return [*findings, *_decode_findings(path, [p for p in paths if p not in unusable], image_root, progress)]


def _decode_findings(path: Path, paths: Sequence[str], image_root: Path, progress: bool) -> list[Finding]:
    """Decode every image as a run would: files that are no image, truncated ones, ones too large to decode (errors),
    very large ones and one image under several paths (warnings)."""
    if not paths:
        return []
    checks: list[ImageCheck] = []
    workers = min(_DECODE_WORKERS, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool, progress_bar(len(paths), "decoding images", "img",
                                                                       progress) as bar:
        for check in pool.map(check_image, (image_root / relative for relative in paths)):
            checks.append(check)
            bar.update()
    findings = []
    broken = [f"{relative!r}: {check.problem}" for relative, check in zip(paths, checks) if check.problem]
    if broken:
        message = f"{len(broken):,} of {len(paths):,} images cannot be used by a run"
        findings.append(Finding("error", "undecodable-image", message, str(path), len(broken), tuple(broken[:EXAMPLES])))
    else:
        findings.append(Finding("info", "images-decoded", f"all {len(paths):,} images decode", str(path), len(paths)))
    large = [f"{relative!r}: {check.pixels:,} pixels" for relative, check in zip(paths, checks)
             if check.pixels > LARGE_PIXELS]
    if large:
        message = (f"{len(large):,} images have more than {LARGE_PIXELS:,} pixels: they decode slowly and take much "
                   "memory (PIL warns of a decompression bomb)")
        findings.append(Finding("warning", "large-image", message, str(path), len(large), tuple(large[:EXAMPLES])))
    by_content: dict[str, list[str]] = defaultdict(list)
    for relative, check in zip(paths, checks):
        if check.sha256:
            by_content[check.sha256].append(relative)
    copies = [group for group in by_content.values() if len(group) > 1]
    if copies:
        message = (f"{len(copies):,} images appear under more than one path ({sum(map(len, copies)):,} paths): only "
                   "the target's own path counts as a hit, so its copy can rank above it")
        examples = tuple(" = ".join(map(repr, group[:3])) for group in copies[:EXAMPLES])
        findings.append(Finding("warning", "duplicate-image-content", message, str(path), len(copies), examples))
    return findings


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


def _quirk_findings(
    path: Path, dialogues: Sequence[Dialogue], live_answerer: bool, with_search_space: bool
) -> list[Finding]:
    checks = [("empty-turn", "turns are empty", count_empty_turns),
              ("leaked-answer", 'rounds hold leaked "Answer:" text', count_leaked_answer_rounds)]
    checked = ["schema", "duplicate targets", *(["targets in the search space"] if with_search_space else []),
               "empty turns", 'leaked "Answer:" text']
    findings = []
    if looks_reformulated(dialogues):
        longest = max((len(", ".join(dialogue.turns)) for dialogue in dialogues), default=0)
        message = (f"{question_free_share(dialogues):.0%} of rounds hold no '?': a reformulated-caption file (each "
                   "entry a full caption); replay it with --query-mode entry, since the default join queries every "
                   f"caption so far glued together (up to {longest:,} characters at the last round); the question "
                   "checks were skipped")
        findings.append(Finding("warning", "reformulated-captions", message, str(path)))
    else:
        checks += [("multi-question", "rounds hold more than one question", count_multi_question_rounds),
                   ("repeated-question", "dialogues ask a question twice", count_repeated_question_dialogues)]
        checked += ["rounds without '?'", "several questions in a round", "repeated questions"]
        findings.extend(_question_free_findings(path, dialogues, live_answerer))
    findings.extend(_quirk_finding(path, code, what, quirk) for code, what, counter in checks
                    if (quirk := counter(dialogues)).count)
    findings.append(Finding("info", "checked", f"checked: {', '.join(checked)}", str(path)))
    return findings


def _question_free_findings(path: Path, dialogues: Sequence[Dialogue], live_answerer: bool) -> list[Finding]:
    """Rounds without a "?" hold no question to re-ask: a run with a live answerer over the recorded questions
    (``--questioner replay``) fails their dialogues."""
    quirk = count_question_free_rounds(dialogues)
    if not quirk.count:
        return []
    affected = sum(any("?" not in turn for turn in dialogue.turns[1:]) for dialogue in dialogues)
    consequence = ("this run re-asks the recorded questions (--live-answerer), so these dialogues would fail" if
                   live_answerer else "a run that re-asks the recorded questions (--questioner replay with a live "
                   "answerer) fails these dialogues; replaying the recorded rounds is unaffected")
    message = f"{quirk.count:,} rounds in {affected:,} dialogues hold no '?': {consequence}"
    level = "error" if live_answerer else "warning"
    return [Finding(level, "no-question", message, str(path), quirk.count, quirk.examples)]


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
