"""ADaFuSE, learned fusion: the module and its checkpoints (``model``), training data (``data``), its trainer on
the shared loop of ``retrievers.training`` (``train``), ``harness train adafuse`` (``cli``), the retriever over DAR's
pipeline (``retriever``) and ``harness bench adafuse`` (``bench``).

Imports ``harness``, ``retrievers.training``, ``retrievers.dar`` and ``retrievers.dual_encoders``.
"""
