"""The ``harness bench`` layer: the command group (``cli``), the timing helpers every bench uses (``timing``), the
bench models written from fixtures (``models``), and the benches of the core: exact ranking (``ranking``), every
stage of a configured evaluation with its projection (``stages``) and the executors (``executors``).

Imports ``harness`` only, never a plug-in folder: each family's own bench (``retrievers.dar.bench``, ...) is reached
through the group's lazy subcommand table, and fixtures through the registry.
"""
