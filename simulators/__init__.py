"""Simulated users: questioner and answerer bots, one folder per back-end family: ``hf`` (transformers),
``openai_compatible`` (any OpenAI-compatible chat server), ``replay`` (a benchmark's recorded rounds), with what the
generating bots share in ``common`` (the cached bot classes, the post-processor, prompt templates).

Imports ``harness`` only; a family imports ``common`` and nothing of another family.
"""
