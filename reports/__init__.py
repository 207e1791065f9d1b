"""Comparison reports with significance tests, and TREC export.

    harness report runs/chatir-visdial runs/dar-visdial --baseline chatir-visdial --out reports/visdial
    harness export trec runs/chatir-visdial --out trec/chatir-visdial

Layers, each importing only those above it: ``statistics`` (tests and intervals on numpy vectors), ``runs`` (load
and pair run directories), ``compare`` (tables' values and tests), ``tables``/``plots``/``render`` (files),
``trec`` (export), ``cli`` (the click commands ``harness.cli`` mounts lazily). Of the other folders it imports
``harness`` only.
"""
