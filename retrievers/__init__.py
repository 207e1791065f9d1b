"""Retrievers, one folder per method: ``dual_encoders`` (BLIP and CLIP, presets, preprocessing, loading, original
checkpoint conversion), ``dar`` (diffusion-augmented retrieval), ``adafuse`` (learned fusion over DAR's pipeline),
``reference`` (the oracle and random retrievers) and ``training`` (the training loop trainers share).

Imports ``harness`` and, between families, only downwards: ``adafuse`` may import ``dar`` and ``dual_encoders``,
``dar`` may import ``dual_encoders``, ``dual_encoders`` none of the others.
"""
