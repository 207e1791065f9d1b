"""Write the dialogue explorer into a folder: ``index.html``, ``dialogues/{id}.html`` for the selected dialogues,
``thumbs/`` (their images, small JPEGs) and ``assets/`` (CSS and JavaScript).

    site = write_explorer(load_explorer_data(runs, Selection(sample=100, seed=0)), Path("explorer"))
    site.index                        # open it from disk: no server, no network

Rewriting into the same folder replaces the pages and reuses thumbnails already there.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path

from harness.atomic import atomic_write_text
from harness.progress import progress_bar
from harness.secrets import environment_secrets, scrub_secrets
from reports.explorer.data import ExplorerData
from reports.explorer.pages import PAGES, dialogue_page, index_page, page_name
from reports.explorer.thumbnails import GeneratedImages, Thumbnails
from reports.runs import LoadedRun

log = logging.getLogger(__name__)
ASSETS = ("explorer.css", "explorer.js")
HTML_REDACTED = "[redacted]"  # what stands for a secret in a page (``<redacted>`` would read as a tag)


@dataclass(frozen=True)
class ExplorerSite:
    directory: Path
    index: Path
    pages: int
    thumbnails: int  # written now (thumbnails already in the folder are reused)
    missing_images: Mapping[str, int]  # images that could not be shown, by reason


def write_explorer(data: ExplorerData, out: Path, report_link: str | None = None, cache_dir: Path | None = None,
                   progress: bool = True) -> ExplorerSite:
    out = Path(out)
    (out / PAGES).mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    for name in ASSETS:
        with resources.as_file(resources.files("reports.explorer") / "assets" / name) as source:
            shutil.copyfile(source, assets / name)
    thumbnails = Thumbnails(out, data.benchmark.search_space,
                            {name: _generated_images(run, cache_dir) for name, run in data.runs.items()})
    secrets = environment_secrets()
    secrets += [escape(secret) for secret in secrets if escape(secret) != secret]  # as the pages hold them
    keep_top = {name: int(run.manifest.get("identity", {}).get("keep_top", 0) or 0) for name, run in data.runs.items()}
    by_id = {view.dialogue_id: view for view in data.dialogues}
    pages = list(data.pages)
    with progress_bar(len(pages), desc="explorer pages", unit="page", enabled=progress) as bar:
        for number, dialogue_id in enumerate(pages):
            neighbours = (pages[number - 1] if number else None, pages[number + 1] if number + 1 < len(pages) else None)
            page = dialogue_page(by_id[dialogue_id], data, thumbnails, neighbours, keep_top)
            atomic_write_text(out / PAGES / page_name(dialogue_id), scrub_secrets(page, secrets, HTML_REDACTED))
            bar.update(1)
    index = out / "index.html"
    atomic_write_text(index, scrub_secrets(index_page(data, thumbnails, report_link), secrets, HTML_REDACTED))
    if thumbnails.missing:
        log.warning("%d images could not be shown (%s)", sum(thumbnails.missing.values()),
                    ", ".join(f"{count} {reason}" for reason, count in thumbnails.missing.most_common()))
    return ExplorerSite(out, index, len(pages), thumbnails.written, dict(thumbnails.missing))


def _generated_images(run: LoadedRun, cache_dir: Path | None) -> GeneratedImages:
    """Where ``run``'s generated images are: the folder of its ``--dar-images``, else the image cache it used (the
    run's --cache-dir unless ``cache_dir`` says otherwise)."""
    images = run.manifest.get("components", {}).get("identities", {}).get("retriever", {}).get("images", {})
    folder = images.get("pregenerated") if isinstance(images, Mapping) else None
    cache = cache_dir or run.manifest.get("spec", {}).get("cache_dir")
    return GeneratedImages(Path(cache) if cache and not folder else None, Path(folder) if folder else None)
