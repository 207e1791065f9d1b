"""What the model libraries may print: their log messages go through our logging (format, level, ``-v``), their
progress bars go when the user asks for quiet.

    route_library_logs(verbose=False)   # transformers, diffusers, huggingface_hub: errors only; -v: their warnings too
    silence_library_progress()          # --quiet: no "Loading weights" / "Loading pipeline components" bars

By default only their errors show: their warnings on this stack ("pip install accelerate", the torchvision fallback
of the image processors, "Token indices sequence length is longer than ...") either ask for nothing a user must do
or are counted by the harness itself (truncated queries and prompts go to the manifest's diagnostics). Python
warnings issued by those libraries are dropped likewise unless ``verbose``; the harness's own warnings (a published
file whose sha256 differs, ...) always show.
"""

from __future__ import annotations

import importlib
import logging
import warnings

LIBRARIES = ("transformers", "diffusers", "huggingface_hub", "accelerate", "torch")
# Libraries whose own logging module installs a handler of its own (and stops propagation) when first used.
_OWN_HANDLERS = ("transformers.utils.logging", "diffusers.utils.logging")


def route_library_logs(verbose: bool) -> None:
    """Send the libraries' log records to the root logger (our handler and format) at ERROR, or WARNING with ``verbose``."""
    level = logging.WARNING if verbose else logging.ERROR
    for module_name in _OWN_HANDLERS:
        library_logging = importlib.import_module(module_name)
        library_logging.set_verbosity(level)
        library_logging.disable_default_handler()
        library_logging.enable_propagation()
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(level)
    if not verbose:
        warnings.filterwarnings("ignore", module=rf"({'|'.join(LIBRARIES)})(\.|$)")


def silence_library_progress() -> None:
    """No progress bars from the libraries (loading weights, pipeline components, downloads, writing shards)."""
    for module_name in _OWN_HANDLERS:
        importlib.import_module(module_name).disable_progress_bar()
    importlib.import_module("huggingface_hub.utils").disable_progress_bars()
