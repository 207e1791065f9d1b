"""Benchmarks: ChatIR-format loaders (``chatir``), the published benchmarks as data (``known``), fetching
(``fetch``), validation and its quirk counters (``validate``, ``quirks``), dialogue export (``export``), VisDial
conversion (``visdial``), search-space captions (``captions``) and the ``harness data`` / ``harness dialogues``
commands (``cli``).

Imports ``harness`` only.
"""
