"""`harness view`: the dialogue explorer over real runs (replay, live, DAR from pre-generated images and from the
image cache) on a synthetic benchmark with tiny models, its selection of pages, its thumbnails, its guards, and the
pages in headless Chromium (Debian's ``chromium``; those tests skip where it is absent)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_diffusion import write_tiny_sd21
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.types import SearchSpace
from reports.explorer.thumbnails import GeneratedImages, Thumbnails

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package (/usr/bin/chromium)")
DIALOGUES = 8


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explorer")
    synthetic = write_synthetic_benchmark(root / "bench", dialogues=DIALOGUES, distractors=4, rounds=2)
    blip = write_tiny_blip(root / "blip")
    images = root / "generated"
    images.mkdir()
    for index in range(DIALOGUES):
        for round_ in range(3):
            Image.new("RGB", (32, 32), (index * 30, round_ * 90, 60)).save(images / f"{index}_{round_}.png")
    common = ["--benchmark", str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file),
              "--image-root", str(synthetic.image_root), "--rounds", "2", "--device", "cpu", "--quiet",
              "--cache-dir", str(root / "cache")]
    dar = ["--retriever", "dar", "--dar-base", "cocoft", "--dar-variant", "released", "--retriever-model", str(blip),
           "--retriever-arg", "llm=scripted"]
    out = {name: root / "runs" / name for name in ("blip", "dar", "dar-sd", "live")}
    invoke("run", "--retriever", "cocoft", "--retriever-model", str(blip), *common, "--out", str(out["blip"]))
    invoke("run", *dar, "--dar-images", str(images), *common, "--out", str(out["dar"]))
    sd21 = write_tiny_sd21(root / "sd21")
    invoke("run", *dar, "--retriever-arg", f"diffusion_model={sd21}", "--retriever-arg", "size=32",
           "--retriever-arg", "steps=2", *common, "--out", str(out["dar-sd"]))
    invoke("run", "--retriever", "random", "--questioner", "scripted", "--answerer", "scripted", *common,
           "--out", str(out["live"]))
    return {**out, "root": root, "image_root": synthetic.image_root}


class Links(HTMLParser):
    """The images and links of a page, and the text of its cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "a":
            self.links.append(attributes["href"])
        if tag == "tr" and ("data-id" in attributes or attributes.get("class", "").startswith("round")):
            self.rows += 1


def parsed(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def test_the_explorer_shows_every_dialogue_and_pages_for_the_selected_ones(runs, tmp_path):
    systems = [str(runs[name]) for name in ("blip", "dar", "dar-sd", "live")]
    output = invoke("view", *systems, "--out", str(tmp_path / "view"), "--sample", "3", "--seed", "1", "--quiet")
    assert "3 dialogue pages" in output
    index = parsed(tmp_path / "view" / "index.html")
    assert index.rows == DIALOGUES
    pages = sorted(path.name for path in (tmp_path / "view" / "dialogues").iterdir())
    assert len(pages) == 3 and sorted(link.split("/")[-1] for link in index.links) == pages
    invoke("view", *systems, "--out", str(tmp_path / "again"), "--sample", "3", "--seed", "1", "--quiet")
    assert sorted(path.name for path in (tmp_path / "again" / "dialogues").iterdir()) == pages  # seeded
    rewritten = invoke("view", *systems, "--out", str(tmp_path / "view"), "--sample", "3", "--seed", "1", "--quiet")
    assert "0 thumbnails made" in rewritten  # the folder's thumbnails are reused

    page = (tmp_path / "view" / "dialogues" / pages[0]).read_text(encoding="utf-8")
    dialogue_id = pages[0].removesuffix(".html")
    trace = {line["dialogue_id"]: line for line in map(json.loads, (runs["dar"] / "trace.jsonl").read_text().splitlines())}
    for entry in trace[dialogue_id]["rounds"]:
        assert entry["retriever"]["caption"] in page.replace("&#x27;", "'")  # S_t of every round
    live = {line["dialogue_id"]: line for line in map(json.loads, (runs["live"] / "ranks.jsonl").read_text().splitlines())}
    for turn in live[dialogue_id]["dialog"][1:]:
        assert turn.split("? ")[0] + "?" in page  # the live run's own questions
    links = parsed(tmp_path / "view" / "dialogues" / pages[0])
    assert links.rows == 4 * 3  # four systems, rounds 0..2
    thumbs = {source for source in links.images}
    assert all((tmp_path / "view" / source).is_file() for source in thumbs)
    # 10 best images per round for the three systems that score (not random), the target, generated images
    assert page.count('class="top"') == 12 and page.count("#9</figcaption>") == 9
    assert "no best images in the trace" in page  # the random retriever's rounds
    assert page.count('title="prompt: ') == 6  # one generated image per round, for both DAR runs
    assert "no image" not in page

    assert len(list((tmp_path / "view" / "thumbs").iterdir())) < 3 * (1 + 3 * 10 + 6) + 3  # the shown dialogues only


def test_limit_ids_and_conflicting_selections(runs, tmp_path):
    invoke("view", str(runs["blip"]), "--out", str(tmp_path / "first"), "--limit", "2", "--quiet")
    assert sorted(path.name for path in (tmp_path / "first" / "dialogues").iterdir()) == ["0.html", "1.html"]
    invoke("view", str(runs["blip"]), "--out", str(tmp_path / "ids"), "--dialogues", "5", "--dialogues", "7",
           "--quiet")
    assert sorted(path.name for path in (tmp_path / "ids" / "dialogues").iterdir()) == ["5.html", "7.html"]
    for wrong in (["--limit", "2", "--sample", "2"], ["--dialogues", "99"]):
        result = CliRunner().invoke(main, ["view", str(runs["blip"]), "--out", str(tmp_path / "x"), *wrong])
        assert result.exit_code != 0 and ("one of --limit" in result.output or "99" in result.output)


def test_runs_of_another_benchmark_are_refused(runs, tmp_path):
    other = write_synthetic_benchmark(tmp_path / "other", dialogues=3, distractors=2, rounds=1)
    invoke("run", "--retriever", "random", "--benchmark", str(other.dialogue_file), "--search-space",
           str(other.search_space_file), "--rounds", "1", "--quiet", "--out", str(tmp_path / "other-run"))
    result = CliRunner().invoke(main, ["view", str(runs["blip"]), str(tmp_path / "other-run"), "--out",
                                       str(tmp_path / "x")])
    assert result.exit_code != 0 and "different benchmark files" in result.output


def test_images_outside_the_root_are_never_read_and_secrets_never_written(runs, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    (root / "link.png").symlink_to(outside)
    Image.new("RGB", (8, 8)).save(root / "fine.png")
    thumbnails = Thumbnails(tmp_path / "site", SearchSpace(("link.png", "fine.png"), root),
                            {"dar": GeneratedImages(None, root)})
    assert thumbnails.search_image(0) is None and thumbnails.search_image(1) is not None
    assert thumbnails.generated_image("dar", "../secret.png") is None
    assert thumbnails.missing == {"outside the image root": 1, "generated image not located (its cache or folder)": 1}

    monkeypatch.setenv("EXPLORER_TEST_API_KEY", "background")  # a word every synthetic caption holds
    invoke("view", str(runs["live"]), "--out", str(tmp_path / "view"), "--limit", "1", "--quiet")
    for page in [tmp_path / "view" / "index.html", *(tmp_path / "view" / "dialogues").iterdir()]:
        text = page.read_text(encoding="utf-8")
        assert "background" not in text and "[redacted]" in text


def test_the_report_and_its_explorer_link_each_other(runs, tmp_path):
    invoke("report", str(runs["blip"]), str(runs["dar"]), "--out", str(tmp_path / "report"), "--view",
           str(tmp_path / "report" / "explorer"), "--permutations", "50", "--bootstrap", "20")
    report = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert 'href="explorer/index.html"' in report
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "explorer/index.html" in markdown and "## Costs" in markdown and "| 1 |" in markdown
    assert 'href="../report.html"' in (tmp_path / "report" / "explorer" / "index.html").read_text(encoding="utf-8")


def chromium(page: Path, tmp_path: Path, *options: str, fragment: str = "") -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *options,
               page.resolve().as_uri() + (f"#{fragment}" if fragment else "")]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "LANG": "C.UTF-8"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", completed.stderr), completed.stderr[-2000:]
    return completed


def assert_not_blank(screenshot: Path) -> None:
    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50
    white = max((count for count, colour in colours if colour == (255, 255, 255)), default=0)
    assert white < 0.97 * sum(count for count, _ in colours)


@needs_chromium
def test_the_pages_run_their_scripts_and_render_in_chromium(runs, tmp_path):
    invoke("view", *(str(runs[name]) for name in ("blip", "dar", "live")), "--out", str(tmp_path / "view"),
           "--limit", "2", "--quiet")
    index = tmp_path / "view" / "index.html"
    dom = chromium(index, tmp_path, "--dump-dom").stdout
    assert 'data-ready="1"' in dom and f"{DIALOGUES} of {DIALOGUES} dialogues shown" in dom
    final = {line["dialogue_id"]: line["ranks"] for line in
             map(json.loads, (runs["blip"] / "ranks.jsonl").read_text().splitlines())}
    for fragment, shown in (("system=0&max-rank=9", sum(ranks[-1] <= 9 for ranks in final.values())),
                            ("system=0&min-change=1", sum(ranks[0] - ranks[-1] >= 1 for ranks in final.values())),
                            ("with-page=1", 2), ("search=no+such+caption", 0)):
        dom = chromium(index, tmp_path, "--dump-dom", fragment=fragment).stdout
        assert f"{shown} of {DIALOGUES} dialogues shown" in dom, fragment
    chromium(index, tmp_path, f"--screenshot={tmp_path / 'index.png'}", "--window-size=1200,900")
    assert_not_blank(tmp_path / "index.png")

    page = tmp_path / "view" / "dialogues" / "1.html"
    dom = chromium(page, tmp_path, "--dump-dom").stdout
    assert 'data-ready="1"' in dom
    assert dom.count('<tr class="round') == 9 and dom.count('class="top" data-round') == 9
    assert len(re.findall(r'<img src="thumbs/[0-9a-f]{24}\.jpg"', dom)) >= 1 + 2 * 3 * 10 + 3
    chromium(page, tmp_path, f"--screenshot={tmp_path / 'page.png'}", "--window-size=1200,1600")
    assert_not_blank(tmp_path / "page.png")
