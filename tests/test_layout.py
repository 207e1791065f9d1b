"""The architecture, read from the source with ast: the one rule of dependencies, no import circle, fixtures reached
only through the registry, one bench layer, and a docstring on every package saying what it holds."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("harness", "simulators", "retrievers", "benchmarks", "reports")
PLUG_IN_FOLDERS = ("simulators", "retrievers", "benchmarks", "reports")
FIXTURES = "harness.fixtures"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(roots: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {_module_name(path): path for root in roots for path in sorted((REPO_ROOT / root).rglob("*.py"))}


MODULES = _sources()


def _imports(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every module of ours that ``module`` imports, at any depth of its code (function-level and TYPE_CHECKING
    imports included): ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {module: set(_imports(module, path, known)) for module, path in modules.items()}


GRAPH = _graph(MODULES)


def _is_fixture(module: str) -> bool:
    return module == FIXTURES or module.startswith(FIXTURES + ".")


def test_the_graph_sees_the_imports_it_must_see() -> None:
    # A parser that found nothing would pass every rule below.
    assert "harness.registry" in GRAPH["harness.cli"]
    assert "harness.fixtures.tiny_encoders" in GRAPH["harness.fixtures.tiny_diffusion"]
    assert "retrievers.dar.retriever" in GRAPH["retrievers.adafuse.retriever"]
    assert "retrievers.dual_encoders.bench" in GRAPH["retrievers.adafuse.bench"]  # a function-level import counts


def test_harness_imports_no_plug_in_folder_except_its_fixtures() -> None:
    offenders = {
        module: sorted(name for name in imported if name.split(".")[0] in PLUG_IN_FOLDERS)
        for module, imported in GRAPH.items()
        if module.split(".")[0] == "harness" and not _is_fixture(module)
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_there_is_no_import_circle() -> None:
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(GRAPH.get(module, ())):
            if state.get(imported) == 1:
                circles.append(path[path.index(imported):] + [imported])
            elif imported in GRAPH and imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert circles == []


def test_only_fixtures_import_fixture_modules() -> None:
    # The demo and the benches reach fixtures through the registry's `fixture` kind, never by import.
    offenders = {module: sorted(filter(_is_fixture, imported)) for module, imported in GRAPH.items()
                 if not _is_fixture(module)}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_the_tests_reach_fixtures_too() -> None:
    # The tests may import fixture modules directly (they test them); the rule above is about the product.
    tests = _graph({**MODULES, **_sources(("tests",))})
    assert any(_is_fixture(name) for module, imported in tests.items() if module.startswith("tests.")
               for name in imported)


def test_timing_lives_in_the_bench_layer_or_a_family_bench_module() -> None:
    def bench_named(module: str) -> bool:
        name = module.split(".")[-1]
        return name == "bench" or name.endswith("_bench") or name.startswith("bench_")

    outside = [module for module in MODULES if bench_named(module) and not module.startswith("harness.bench")
               and not module.endswith(".bench")]
    assert outside == []
    assert not [module for module in MODULES if module.split(".")[-1].endswith("_bench")]
    # Wall-clock timing of work on a device goes through harness.bench.timing (one synchronising timer).
    synchronising = [module for module, path in MODULES.items()
                     if "cuda.synchronize" in path.read_text(encoding="utf-8")]
    assert synchronising == ["harness.bench.timing"]


def test_the_bench_layer_imports_no_plug_in_folder() -> None:
    bench_layer = {module: imported for module, imported in GRAPH.items() if module.startswith("harness.bench")}
    assert len(bench_layer) >= 5
    assert all(name.split(".")[0] == "harness" for imported in bench_layer.values() for name in imported)


@pytest.mark.parametrize("package", sorted(module for module, path in MODULES.items() if path.name == "__init__.py"))
def test_every_package_says_what_it_holds_and_may_import(package: str) -> None:
    docstring = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert docstring, f"{package} has no docstring"
    assert "import" in docstring.lower(), f"{package}'s docstring does not say what it may import"
