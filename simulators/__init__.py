"""Simulated users: questioner and answerer bots, one folder per back-end family: ``hf`` (transformers),
``openai_compatible`` (any OpenAI-compatible chat server), ``replay`` (a benchmark's recorded rounds), ``plugir``
(PlugIR's candidate-aware questioner over any back-end), with what the generating bots share in ``common`` (the
cached bot classes, the post-processor, prompt templates).

Imports ``harness``; a family imports ``common`` and nothing of another family (``plugir`` also reuses DAR's caption
post-processor, ``retrievers.dar.cleaning``).
"""
