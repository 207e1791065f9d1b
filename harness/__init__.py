"""The ground floor: core loop, protocols, registry, configuration, run store, metrics, caches, executors and the
``harness`` CLI.

It imports no plug-in folder (``simulators``, ``retrievers``, ``benchmarks``, ``reports``): it reaches them through
lazy ``"module:attr"`` registrations (``harness.builtins``) and lazy subcommands, so the plug-ins may import it.
Two sub-packages stand apart: ``harness.bench`` (the ``harness bench`` layer, which imports no plug-in folder either)
and ``harness.fixtures`` (tiny and full-size random-weight models, scripted bots, a synthetic benchmark), which may
import anything and which only tests import directly.
"""
