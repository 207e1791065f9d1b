"""The BLIP and CLIP dual encoders: the encoder classes (``encoders``), image preprocessing (``preprocess``), model
sources (``sources``), loading (``loading``), original BLIP/LAVIS/ChatIR checkpoint conversion (``convert``), the
retriever with its presets zs, cocoft, cocoft-large, chatir and clip (``retriever``), the text side that training
updates (``text_side``), ``harness train chatir`` (``train_chatir``), ``harness convert`` (``cli``) and ``harness
bench encoder`` (``bench``).

Imports ``harness`` and the shared training loop ``retrievers.training``.
"""
