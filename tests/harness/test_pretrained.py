"""Loading through from_pretrained on an offline machine: a hub id is looked up in the local hub cache only, so the
error comes at once instead of after the hub client's retries."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import pretrained
from harness.errors import HarnessError
from harness.pretrained import hub_reachable, load_pretrained

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_probe():
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_hf_hub_offline_a_hub_id_is_looked_up_locally_only(tmp_path: Path, fresh_probe, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls: list[tuple[str, dict]] = []

    def loader(source: str, **kwargs):
        calls.append((source, kwargs))
        raise OSError("not in the local cache")

    with pytest.raises(HarnessError, match="hf download someone/model --local-dir DIR"):
        load_pretrained(loader, "someone/model", "--retriever-model")
    with pytest.raises(HarnessError, match="from directory"):
        load_pretrained(loader, str(tmp_path), "--retriever-model")
    assert calls == [("someone/model", {"local_files_only": True}), (str(tmp_path), {})]


def test_the_hub_probe_tells_a_closed_endpoint_from_a_listening_one(monkeypatch, fresh_probe, caplog) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level(logging.WARNING, logger="harness.pretrained"):
        assert not hub_reachable() and not hub_reachable()
    assert len([record for record in caplog.records if "cannot be reached" in record.message]) == 1
    hub_reachable.cache_clear()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_reachable()
        assert pretrained.offline_options("someone/model") == {}


def test_an_unreachable_hub_fails_at_once_in_a_fresh_process(tmp_path: Path) -> None:
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")}
    environment.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
                       HF_HOME=str(tmp_path / "hf"))
    program = ("from transformers import AutoConfig\nfrom harness.pretrained import load_pretrained\n"
               "load_pretrained(AutoConfig.from_pretrained, 'someone/absent-model', '--retriever-model')\n")
    # Without the probe the hub client retries for about 40 s first; the timeout makes that a failure.
    result = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr
    assert "harness.errors.HarnessError: cannot load 'someone/absent-model' from the Hugging Face hub" in result.stderr
