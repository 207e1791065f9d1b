"""Shared fixtures for the benchmark tests: the real ChatIR files, read from the shared folder beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

CHATIR_DIR = (Path(__file__).resolve().parents[2] / "../shared/data/chatir").resolve()


@pytest.fixture(scope="session")
def chatir_dir() -> Path:
    """The published ChatIR files (upstream layout); the test is skipped where the shared folder is absent."""
    if not (CHATIR_DIR / "dialogues").is_dir():
        pytest.skip(f"the ChatIR data folder {CHATIR_DIR} is absent (it is a sibling of the repository root)")
    return CHATIR_DIR
