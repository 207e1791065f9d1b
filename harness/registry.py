"""Names to factories, for every kind of plug-in.

Built-ins are registered as lazy ``"module:attr"`` strings, so listing them imports nothing heavy. Third-party
packages add entries through the entry-point groups ``harness.retrievers``, ``harness.questioners``, ...;
a single file is loaded with ``harness run --plugin my_retriever.py`` and registers itself:

    from harness.registry import register

    @register("retriever", "mine")
    def build_mine(scale: float = 1.0) -> MyRetriever: ...
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("retriever", "questioner", "answerer", "captioner", "generator", "benchmark", "fixture")
ENTRY_POINT_GROUPS = {kind: f"harness.{kind}s" for kind in KINDS}


class RegistryError(LookupError):
    pass


@dataclass(frozen=True)
class ComponentRecord:
    """How a component was built: enough to rebuild it by name, and what goes into a run manifest."""

    kind: str
    name: str
    target: str
    arguments: Mapping[str, Any]
    resolved_arguments: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "arguments": dict(self.arguments),
            "resolved_arguments": dict(self.resolved_arguments),
        }


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, str | Callable[..., Any]]] = {kind: {} for kind in KINDS}
        self._suites: dict[str, dict[str, str | Sequence[str]]] = {kind: {} for kind in KINDS}
        self._entry_points_loaded = False

    def add(self, kind: str, name: str, target: str | Callable[..., Any], *, replace: bool = False) -> None:
        entries = self._kind(kind)
        if name in entries and not replace and entries[name] is not target:
            raise RegistryError(f"{kind} {name!r} is already registered (to {self._describe(entries[name])})")
        entries[name] = target

    def names(self, kind: str) -> list[str]:
        self._load_entry_points()
        return sorted(self._kind(kind))

    def add_suite(self, kind: str, name: str, members: str | Sequence[str]) -> None:
        """A named group of registered entries (``--benchmark all``): a sequence of names, or a lazy
        ``"module:attr"`` naming one (a mapping's keys count as its names)."""
        self._kind(kind)
        self._suites[kind][name] = members

    def suite(self, kind: str, name: str) -> tuple[str, ...]:
        """The names in suite ``name``, in their registered order; every one must be a registered entry."""
        self._kind(kind)
        suites = self._suites[kind]
        if name not in suites:
            raise RegistryError(f"no {kind} suite named {name!r} (registered: {', '.join(sorted(suites)) or 'none'})")
        members = suites[name]
        if isinstance(members, str):
            module_name, _, attribute = members.partition(":")
            members = tuple(getattr(importlib.import_module(module_name), attribute))
            suites[name] = members
        for member in members:
            self._lookup(kind, member)
        return tuple(members)

    def describe(self, kind: str, name: str) -> str:
        return self._describe(self._lookup(kind, name))

    def resolve(self, kind: str, name: str) -> Callable[..., Any]:
        target = self._lookup(kind, name)
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module_name), attribute)
            self._kind(kind)[name] = target
        return target

    def build(self, kind: str, name: str, **arguments: Any) -> tuple[Any, ComponentRecord]:
        """Call the factory registered as ``name`` and record the arguments it was given and resolved to."""
        factory = self.resolve(kind, name)
        try:
            bound = inspect.signature(factory).bind(**arguments)
        except TypeError as error:
            parameters = ", ".join(inspect.signature(factory).parameters)
            raise RegistryError(f"bad arguments for {kind} {name!r}: {error} (it takes: {parameters})") from None
        _check_types(kind, name, factory, bound.arguments, arguments)
        bound.apply_defaults()
        component = factory(*bound.args, **bound.kwargs)
        record = ComponentRecord(
            kind=kind,
            name=name,
            target=self._describe(factory),
            arguments=_jsonable(arguments),
            resolved_arguments=_jsonable(dict(bound.arguments)),
        )
        return component, record

    def load_plugin(self, spec: str) -> None:
        """Import a plug-in given as a module name or a ``.py`` file path; its import registers its entries."""
        path = Path(spec)
        if path.suffix == ".py":
            if not path.is_file():
                raise RegistryError(f"plug-in file {path} does not exist")
            module_name = f"harness_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)

    def _kind(self, kind: str) -> dict[str, str | Callable[..., Any]]:
        if kind not in self._entries:
            raise RegistryError(f"unknown plug-in kind {kind!r}; kinds are {', '.join(KINDS)}")
        return self._entries[kind]

    def _lookup(self, kind: str, name: str) -> str | Callable[..., Any]:
        entries = self._kind(kind)
        if name not in entries:
            self._load_entry_points()
        if name not in entries:
            close = difflib.get_close_matches(name, entries, n=3)
            hint = f"; did you mean {' or '.join(repr(match) for match in close)}?" if close else ""
            known = ", ".join(sorted(entries)) or "none"
            raise RegistryError(f"no {kind} named {name!r}{hint} (registered: {known})")
        return entries[name]

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for kind, group in ENTRY_POINT_GROUPS.items():
            for entry_point in importlib.metadata.entry_points(group=group):
                self._entries[kind].setdefault(entry_point.name, entry_point.value)

    @staticmethod
    def _describe(target: str | Callable[..., Any]) -> str:
        if isinstance(target, str):
            return target
        return f"{target.__module__}:{target.__qualname__}"


_SCALARS: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def _check_types(kind: str, name: str, factory: Callable[..., Any], bound: Mapping[str, Any],
                 given: Mapping[str, Any]) -> None:
    """Refuse a given argument whose value cannot be what the factory's annotation says (``max_new_tokens=abc``),
    naming it, before the component is built; only plain scalars (and their optional forms) are checked."""
    try:
        hints = typing.get_type_hints(factory)
    except (NameError, TypeError):
        return  # annotations that do not resolve here (forward references of a plug-in) are not checked
    for parameter, value in bound.items():
        if parameter not in given or parameter not in hints:
            continue
        allowed = _scalar_types(hints[parameter])
        if allowed is None or (value is None and type(None) in allowed):
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, tuple(allowed)):
            wanted = " or ".join(sorted(option.__name__ for option in allowed if option is not type(None)))
            raise RegistryError(f"{kind} {name!r}: argument {parameter}={value!r} is not {wanted}")


def _scalar_types(hint: Any) -> set[type] | None:
    """The Python types a plain scalar annotation accepts (``int | None`` -> int, NoneType), else None."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    accepted: set[type] = set()
    for option in options:
        if option is type(None):
            accepted.add(type(None))
        elif option in _SCALARS:
            accepted.update(_SCALARS[option])
        else:
            return None
    return accepted


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return {str(key): convert(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return repr(value)

    return {key: convert(value) for key, value in values.items()}


REGISTRY = Registry()


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory under ``name`` (what a one-file plug-in uses)."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.add(kind, name, factory)
        return factory

    return decorate


def _register_builtins() -> None:
    from harness.builtins import BUILTIN_SUITES, BUILTINS

    for kind, entries in BUILTINS.items():
        for name, target in entries.items():
            REGISTRY.add(kind, name, target)
    for kind, suites in BUILTIN_SUITES.items():
        for name, members in suites.items():
            REGISTRY.add_suite(kind, name, members)


_register_builtins()
