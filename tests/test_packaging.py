"""The wheel a user installs holds every package and every prompt template of the source tree (package discovery,
not a hand-kept list), and nothing of the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGES = ("harness", "simulators", "retrievers", "benchmarks", "reports")


def test_the_wheel_holds_every_package_and_prompt_template(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in (*PACKAGES, "pyproject.toml", "README.md"):
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())

    packages = {path.relative_to(REPO_ROOT).as_posix() for root in PACKAGES
                for path in (REPO_ROOT / root).rglob("__init__.py")}
    templates = {path.relative_to(REPO_ROOT).as_posix() for root in PACKAGES
                 for path in (REPO_ROOT / root).rglob("prompts/*.txt")}
    modules = {path.relative_to(REPO_ROOT).as_posix() for root in PACKAGES for path in (REPO_ROOT / root).rglob("*.py")}
    assert len(packages) >= 12 and len(templates) >= 5
    assert packages - inside == set()
    assert templates - inside == set()
    assert modules - inside == set()
    assert not [name for name in inside if name.startswith("tests/")]
