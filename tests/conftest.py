"""Shared test set-up: offline hub, markers turned into skips unless asked for, paths to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "chatir"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--rungpu", action="store_true", help="run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, option in (("slow", "--runslow"), ("gpu", "--rungpu")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"marked {marker}; run with {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the hub unreachable even if a test module imported huggingface_hub before this conftest ran."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("harness-cache")
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "dialogues").is_dir():
        pytest.skip(f"the shared ChatIR data is not at {SHARED_DATA}")
    return SHARED_DATA
