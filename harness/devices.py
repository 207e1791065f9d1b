"""Device names as users write them (``cpu``, ``cuda``, ``cuda:1``, ``auto``), resolved once at the edge."""

from __future__ import annotations

from harness.errors import ConfigError


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but torch sees no CUDA device (torch {torch.__version__})")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")
    return name
