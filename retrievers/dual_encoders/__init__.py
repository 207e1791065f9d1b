"""The BLIP and CLIP dual encoders: the encoder classes (``encoders``), image preprocessing (``preprocess``), model
sources (``sources``), loading (``loading``), original BLIP/LAVIS/ChatIR checkpoint conversion (``convert``), the
retriever with its presets zs, cocoft, chatir and clip (``retriever``), ``harness convert`` (``cli``) and
``harness bench encoder`` (``bench``).

Imports ``harness`` only.
"""
