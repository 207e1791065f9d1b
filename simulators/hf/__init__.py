"""Bots on transformers: seq2seq, chat and BLIP-2 generators (``backends``), per-row seeded sampling
(``row_sampling``), the registered factories flan, hf-chat and blip2 (``bots``) and ``harness bench live``
(``bench``).

Imports ``harness`` and ``simulators.common``.
"""
