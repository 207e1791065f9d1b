"""The HTML report in headless Chromium (Debian's ``chromium`` package): it renders, and the screenshot is not blank.
Skipped where /usr/bin/chromium is absent."""

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from reports.compare import ReportSettings, compare_runs
from reports.render import write_report
from reports.runs import load_runs
from tests.reports.conftest import ranks_from

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package (/usr/bin/chromium)")


def test_report_renders_with_its_plots(run_factory, tmp_path):
    runs = [run_factory.make("strong", ranks_from(seed=1, good=0.9)), run_factory.make("weak", ranks_from(seed=2))]
    files = write_report(compare_runs(load_runs(runs), ReportSettings(permutations=500, bootstrap=200)),
                         tmp_path / "report")
    screenshot = tmp_path / "screenshot.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1200,6000",
        files.html.resolve().as_uri(),
    ]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert screenshot.is_file()
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1200, 6000)
        colours = rgb.getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # text, table shading and anti-aliased plot lines
        white = max(count for count, colour in colours if colour == (255, 255, 255))
        assert white < 0.97 * rgb.size[0] * rgb.size[1]
        # The plots are drawn: matplotlib's default blue and orange lines appear in the page.
        assert any(colour == (31, 119, 180) for _, colour in colours)
        assert any(colour == (255, 127, 14) for _, colour in colours)
