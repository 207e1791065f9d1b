"""Bots behind any OpenAI-compatible chat-completions server: the generators with bounded concurrency and retries
(``backend``) and the registered factories (``bots``).

Imports ``harness`` and ``simulators.common``.
"""
