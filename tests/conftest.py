"""Shared test set-up: offline hub, markers turned into skips unless asked for, paths to the shared data, and tiny
seeded checkpoints of the bots' real transformers classes (written once per session with ``save_pretrained``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
def chatir_dir() -> Path:
    """The published ChatIR files (upstream layout); the test is skipped where the shared folder is absent."""
    if not (SHARED_DATA / "dialogues").is_dir():
        pytest.skip(f"the ChatIR data folder {SHARED_DATA} is absent (it is a sibling of the repository root)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def one_torch_thread() -> Iterator[None]:
    """One torch CPU thread while tiny models run (restored at the end of the session). Their products are too
    small for intra-op threads to help, and on a machine other jobs share, waiting threads slow them several-fold."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_flan_t5(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    from harness.fixtures.tiny_bot_models import write_tiny_flan_t5

    return write_tiny_flan_t5(tmp_path_factory.mktemp("tiny-flan-t5"), seed=0)


@pytest.fixture(scope="session")
def tiny_flan_t5_other(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """The same tiny Flan-T5 with seed 1 (other weights, same files and sizes)."""
    from harness.fixtures.tiny_bot_models import write_tiny_flan_t5

    return write_tiny_flan_t5(tmp_path_factory.mktemp("tiny-flan-t5-seed1"), seed=1)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    from harness.fixtures.tiny_bot_models import write_tiny_causal_lm

    return write_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"), seed=0)


@pytest.fixture(scope="session")
def tiny_blip2(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """Tiny BLIP-2 over a tiny Flan-T5 language model."""
    from harness.fixtures.tiny_bot_models import write_tiny_blip2

    return write_tiny_blip2(tmp_path_factory.mktemp("tiny-blip2"), seed=0, language_model="t5")


@pytest.fixture(scope="session")
def tiny_blip2_opt(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """Tiny BLIP-2 over a tiny OPT language model."""
    from harness.fixtures.tiny_bot_models import write_tiny_blip2

    return write_tiny_blip2(tmp_path_factory.mktemp("tiny-blip2-opt"), seed=0, language_model="opt")
