"""On a CUDA device (``--rungpu``): the same tiny BLIP in half precision embeds like float32 on the CPU."""

from dataclasses import replace

import pytest
import torch

from retrievers.dual_encoders.retriever import cocoft
from tests.retrievers.dual_encoders.test_dual_encoder import states_for

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cuda_matches_float32_on_cpu(tiny_blip, search_space, context, dtype):
    cpu = cocoft(model=str(tiny_blip))
    cpu.prepare(search_space, context)
    gpu = cocoft(model=str(tiny_blip), dtype=dtype)
    gpu.prepare(search_space, replace(context, device="cuda"))
    states = states_for(search_space)
    texts = [state.query_text for state in states]
    cosine = (cpu.encoder.encode_texts(texts) * gpu.encoder.encode_texts(texts).cpu()).sum(dim=1)
    assert torch.all(cosine > 0.99)
    assert cpu.identity()["encoder"]["weights"] == gpu.identity()["encoder"]["weights"]
