"""Loading a transformers or diffusers model with ``from_pretrained``, failures turned into errors a user can act on.

    model = load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, "DIR or hub id", "--questioner-model", dtype=dtype)

A local folder that fails names the folder (and, for a damaged ``.safetensors`` file, the file); a hub id that fails
says how to get the model onto an offline machine and which option takes it. When ``HF_HUB_OFFLINE`` is set or the
hub cannot be reached (one connection attempt per process, ``HUB_PROBE_SECONDS``), a hub id is looked up in the
local hub cache only (``local_files_only``), so an offline machine fails at once instead of after the hub client's
retries.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from safetensors import SafetensorError, safe_open

from harness.errors import HarnessError

Loaded = TypeVar("Loaded")
HUB_PROBE_SECONDS = 3.0
_TRUE = ("1", "true", "yes", "on")
log = logging.getLogger("harness.pretrained")


def offline_options(source: str) -> dict[str, Any]:
    """``{"local_files_only": True}`` for a hub id while the hub cannot be asked, else nothing."""
    if Path(source).expanduser().exists() or hub_reachable():
        return {}
    return {"local_files_only": True}


@functools.cache
def hub_reachable() -> bool:
    """False when ``HF_HUB_OFFLINE`` is set or a connection to the hub endpoint fails (logged once)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        log.info("HF_HUB_OFFLINE is set: models load from local folders and the hub cache only")
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # only the proxy can tell; the hub client goes through it
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=HUB_PROBE_SECONDS).close()
    except OSError as error:
        # Host and port only: an endpoint URL may carry credentials.
        log.warning("the Hugging Face hub (%s:%d) cannot be reached (%s): models load from local folders and the hub "
                    "cache only", endpoint.hostname, port, error)
        return False
    return True


def load_pretrained(loader: Callable[..., Loaded], source: str, option: str, **kwargs: Any) -> Loaded:
    """``loader(source, **kwargs)`` (a ``from_pretrained``) with an actionable ``HarnessError`` when it fails."""
    name = getattr(loader, "__qualname__", str(loader)).replace(".from_pretrained", "")
    folder = Path(source).expanduser()
    try:
        return loader(source, **{**offline_options(source), **kwargs})
    except (OSError, ValueError) as error:
        if folder.is_dir():
            raise HarnessError(f"cannot load {name} from directory {source}: {_first_line(error)}") from None
        raise HarnessError(
            f"cannot load {source!r} from the Hugging Face hub ({_first_line(error)}). If the hub is unreachable, "
            f"download the model on a machine with network access (`hf download {source} --local-dir DIR`), copy "
            f"DIR here and pass it with {option} DIR"
        ) from None
    except SafetensorError as error:
        damaged = damaged_safetensors(folder) if folder.is_dir() else None
        where = str(damaged) if damaged is not None else f"a .safetensors file of {source}"
        raise HarnessError(f"{where} is damaged ({_first_line(error)}); a download or copy cut short? Write it "
                           f"again, or pass another model with {option}") from None


def damaged_safetensors(folder: Path) -> Path | None:
    """The first ``.safetensors`` file under ``folder`` whose header or data does not read back."""
    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as opened:
                for key in opened.keys():  # noqa: SIM118 - safe_open handles have keys(), not iteration
                    opened.get_slice(key)
        except Exception:  # noqa: BLE001 - any failure to read marks the file damaged
            return path
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
