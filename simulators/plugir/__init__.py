"""PlugIR's candidate-aware questioner (Lee et al., ACL 2024) as a plug-in for any retriever that scores texts.

``questioner`` holds the bot (registered as questioner ``plugir``), ``candidates`` the retrieval-candidate step
(the N schedule, caption entropies, representatives, the KL selection), ``kmeans`` our seeded spherical k-means,
``captions`` the candidate-caption file and ``steps`` the cached, seeded LLM calls of every step.

Imports ``harness``, ``simulators.common`` (question cleaning) and, since its reconstruction is DAR's R1 step, DAR's
caption post-processor ``retrievers.dar.cleaning``; nothing of another bot family.
"""
