"""The run specification: one dataclass that the CLI, config files and the Python API all fill in.

    spec = RunSpec(retriever="chatir", benchmark="visdial-val", data_dir=Path("DATA"), image_root=Path("COCO"),
                   out=Path("runs/chatir-visdial"), retriever_args={"model": "chatir_weights.ckpt"})
    result = run_evaluation(spec)

Precedence: defaults < config file (``--config run.toml`` or ``.json``) < command-line flags. Unknown keys are
errors. ``identity()`` holds only what changes results, so batch size, device, executor and cache location can
change between a run and its resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.executors import EXECUTORS
from harness.usage import Budget

# How a target tied with other images is ranked (harness.ranking applies it); runs ranked by another rule do not
# resume into each other.
TIE_RULE = "stable-descending"

QUERY_MODES = ("join", "entry")
DEVICES_HELP = "cpu, cuda, cuda:N or auto"


def default_cache_dir() -> Path:
    """Shared across runs: ``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/itir-harness``, else ``~/.cache/itir-harness``."""
    if "HARNESS_CACHE" in os.environ:
        return Path(os.environ["HARNESS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "itir-harness"


@dataclass(frozen=True)
class RunSpec:
    retriever: str
    benchmark: str
    out: Path
    data_dir: Path | None = None
    search_space: Path | None = None
    image_root: Path | None = None
    retriever_args: Mapping[str, Any] = field(default_factory=dict)
    questioner: str | None = None
    questioner_args: Mapping[str, Any] = field(default_factory=dict)
    answerer: str | None = None
    answerer_args: Mapping[str, Any] = field(default_factory=dict)
    rounds: int = 10
    query_mode: str = "join"
    seed: int = 0
    keep_top: int = 10  # best images per round kept in trace.jsonl (0: none)
    limit: int | None = None
    device: str = "auto"
    batch_size: int = 64
    cache_dir: Path = field(default_factory=default_cache_dir)
    plugins: tuple[str, ...] = ()
    progress: bool = True
    # Where chunks run: not part of the identity, so a run started in-process can resume on Ray and back.
    executor: str = "in-process"
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    # What this invocation may spend (counted by the driver; not part of the identity: a stopped run resumes).
    max_api_calls: int | None = None
    max_total_tokens: int | None = None

    def __post_init__(self) -> None:
        Budget(self.max_api_calls, self.max_total_tokens)  # checks the limits
        if self.rounds < 0:
            raise ConfigError(f"rounds must be 0 or more, got {self.rounds}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.query_mode not in QUERY_MODES:
            raise ConfigError(f"query_mode must be one of {', '.join(QUERY_MODES)}, got {self.query_mode!r}")
        if self.keep_top < 0:
            raise ConfigError(f"keep_top must be 0 or more, got {self.keep_top}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"gpus_per_worker must be 0 or more, got {self.gpus_per_worker}")
        if self.executor != "ray" and (self.ray_address is not None or self.workers is not None or self.gpus_per_worker):
            raise ConfigError("ray_address, workers and gpus_per_worker apply to the ray executor (--executor ray)")
        if (self.questioner is None) != (self.answerer is None):
            raise ConfigError(
                "a live run needs both --questioner and --answerer (use `replay` for the recorded side, e.g. "
                "--questioner replay --answerer blip2 re-answers the benchmark's questions)"
            )

    @property
    def live(self) -> bool:
        return self.questioner is not None

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the stored one (the benchmark files' sha256 are added by
        the runner once they are loaded)."""
        return {
            "retriever": self.retriever,
            "retriever_args": dict(self.retriever_args),
            "benchmark": self.benchmark,
            "questioner": self.questioner,
            "questioner_args": dict(self.questioner_args),
            "answerer": self.answerer,
            "answerer_args": dict(self.answerer_args),
            "rounds": self.rounds,
            "query_mode": self.query_mode,
            "seed": self.seed,
            "tie_rule": TIE_RULE,
            "keep_top": self.keep_top,
        }

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def read_config_file(path: Path) -> dict[str, Any]:
    """Keys of a TOML or JSON config file; unknown keys are an error naming them and the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file holds a table of settings")
    known = {spec_field.name for spec_field in fields(RunSpec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values


def build_spec(file_values: Mapping[str, Any], flag_values: Mapping[str, Any]) -> tuple[RunSpec, list[str]]:
    """Merge config-file values and the flags the user actually gave; returns the spec and the names of the file
    settings that flags overrode (for the log)."""
    merged: dict[str, Any] = dict(file_values)
    overridden = sorted(key for key in flag_values if key in file_values and file_values[key] != flag_values[key])
    merged.update(flag_values)
    for required in ("retriever", "benchmark", "out"):
        if merged.get(required) in (None, ""):
            raise ConfigError(f"missing setting {required!r} (give --{required.replace('_', '-')} or put it in --config)")
    for path_key in ("out", "data_dir", "search_space", "image_root", "cache_dir"):
        if merged.get(path_key) is not None:
            merged[path_key] = Path(merged[path_key]).expanduser()
    if "plugins" in merged:
        merged["plugins"] = tuple(merged["plugins"])
    return RunSpec(**merged), overridden
