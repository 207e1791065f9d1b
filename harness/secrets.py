"""Keep API keys out of what the harness writes: every value of an environment variable named like a secret
(``*KEY``: ``OPENAI_API_KEY``, ``GROQ_KEY`` ...; ``*TOKEN``, ``*SECRET``, ``*PASSWORD``) is replaced by ``<redacted>`` in text bound for a run's
trace or the dialogue explorer (a server that echoes the key into a completion must not leak it into a page).

    scrub_secrets("the key is sk-...")    # -> "the key is <redacted>"
"""

from __future__ import annotations

import os
import re

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary words


def environment_secrets() -> list[str]:
    """The secret values now in the environment, longest first (so a key containing another is redacted whole)."""
    values = {value for name, value in os.environ.items()
              if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub_secrets(text: str, secrets: list[str] | None = None, replacement: str = REDACTED) -> str:
    """``text`` with every secret replaced (``replacement``: one that needs no escaping where the text goes)."""
    for secret in environment_secrets() if secrets is None else secrets:
        text = text.replace(secret, replacement)
    return text
