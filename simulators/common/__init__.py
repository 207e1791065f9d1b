"""What every generating bot shares: the cached questioner and answerer classes (``bots``), the post-processor of
generated turns (``cleaning``) and the prompt templates (``prompts``, files in ``prompts/``).

Imports ``harness`` only.
"""
