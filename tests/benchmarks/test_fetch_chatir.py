"""``fetch_chatir`` against a real local HTTP server serving small stand-in files, and with no server at all."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.fetch import fetch_chatir
from benchmarks.known import KNOWN_FILES, KnownFile
from harness.errors import HarnessError

CONTENTS = {"dialogues/one.json": b'[{"img": "a.jpg", "dialog": ["a cat"]}]\n', "space/list.json": b'["a.jpg"]\n'}
FILES = tuple(KnownFile(path, 1, hashlib.sha256(data).hexdigest()) for path, data in CONTENTS.items())


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local server for the upstream layout; yields its base URL and the list of requested paths."""
    root = tmp_path / "served"
    for relative, data in CONTENTS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    requested: list[str] = []

    class Recording(QuietHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Recording, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", requested
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would intercept requests meant for 127.0.0.1.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_downloads_into_layout_then_skips(server: tuple[str, list[str]], tmp_path: Path) -> None:
    base_url, requested = server
    paths = fetch_chatir(tmp_path / "data", base_url=base_url, files=FILES)
    assert paths == [tmp_path / "data/dialogues/one.json", tmp_path / "data/space/list.json"]
    assert [path.read_bytes() for path in paths] == list(CONTENTS.values())
    assert requested == ["/dialogues/one.json", "/space/list.json"]
    assert not list((tmp_path / "data").rglob("*.tmp"))
    fetch_chatir(tmp_path / "data", base_url=base_url, files=FILES)
    assert len(requested) == 2


def test_replaces_a_changed_local_file(server: tuple[str, list[str]], tmp_path: Path) -> None:
    base_url, _ = server
    (tmp_path / "dialogues").mkdir()
    (tmp_path / "dialogues/one.json").write_bytes(b"edited")
    fetch_chatir(tmp_path, base_url=base_url, files=FILES)
    assert (tmp_path / "dialogues/one.json").read_bytes() == CONTENTS["dialogues/one.json"]


def test_digest_mismatch_writes_nothing(server: tuple[str, list[str]], tmp_path: Path) -> None:
    base_url, _ = server
    wrong = (KnownFile("dialogues/one.json", 1, "0" * 64),)
    with pytest.raises(HarnessError) as caught:
        fetch_chatir(tmp_path, base_url=base_url, files=wrong)
    message = str(caught.value)
    assert "dialogues/one.json" in message and "0" * 64 in message and FILES[0].sha256 in message
    assert not (tmp_path / "dialogues/one.json").exists()


def test_missing_on_server_names_url(server: tuple[str, list[str]], tmp_path: Path) -> None:
    base_url, _ = server
    with pytest.raises(
        HarnessError, match=r"could not download http://127.0.0.1:\d+/absent.json \(HTTP 404 File not found\)"
    ):
        fetch_chatir(tmp_path, base_url=base_url, files=(KnownFile("absent.json", 1, "0" * 64),))


def test_offline_lists_urls_and_destinations(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    with pytest.raises(HarnessError) as caught:
        fetch_chatir(tmp_path, base_url=base_url, timeout=5)
    message = str(caught.value)
    assert "Download these files by hand" in message
    for known in KNOWN_FILES:
        assert f"{base_url}/{known.relative_path}\n    -> {tmp_path / known.relative_path}" in message
