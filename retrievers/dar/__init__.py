"""DAR, diffusion-augmented retrieval: LLM reformulation and image prompts (``reformulation``, templates in
``prompts/``), diffusion back-ends (``diffusion``), static fusion (``fusion``), folders of pre-generated images
(``image_layout``), the retriever (``retriever``), ``harness dar generate`` (``generate``), ``harness data
reformulate`` (``reformulate_file``) and ``harness bench dar`` (``bench``).

Imports ``harness`` and ``retrievers.dual_encoders``; nothing of ADaFuSE.
"""
