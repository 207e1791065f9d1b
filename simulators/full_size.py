"""The published bot architectures at full size with random weights, for GPU benchmarks that download nothing.

    harness bench live --questioner-model random:flan-t5-xl --answerer-model random:blip2-flan-t5-xl \
                       --device cuda --dtype bf16 --work-dir /tmp/bench-live

``random:flan-t5-xl`` is ``google/flan-t5-xl``'s ``T5ForConditionalGeneration`` (2.85B parameters) and
``random:blip2-flan-t5-xl`` is ``Salesforce/blip2-flan-t5-xl``'s ``Blip2ForConditionalGeneration`` (ViT-g/14,
Q-Former, Flan-T5-XL; 3.94B), built from the configurations below with transformers' own random initialisation and
saved in bfloat16 with ``save_pretrained``, so the bench loads them through the same ``from_pretrained`` path as a
real checkpoint. The tokenizer is the tiny models' in-code vocabulary padded to the published tokenizer's 32,100
ids (the embedding keeps the published 32,128 rows). Random weights almost never pick the end-of-sequence token, so
every call generates its full ``max_new_tokens``: the rates are those of the longest questions and answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from simulators.tiny import blip2_processor, build_t5_tokenizer

RANDOM_FLAN_T5_XL = "random:flan-t5-xl"
RANDOM_BLIP2_FLAN_T5_XL = "random:blip2-flan-t5-xl"
TOKENIZER_SIZE = 32_100  # the published tokenizer: 32,000 SentencePiece pieces and 100 sentinels
BLIP2_IMAGE_SIZE = 224
BLIP2_QUERY_TOKENS = 32

# The published configurations (google/flan-t5-xl, Salesforce/blip2-flan-t5-xl), spelled out rather than taken
# from transformers' defaults, which may change between releases.
FLAN_T5_XL = {
    "vocab_size": 32_128, "d_model": 2048, "d_kv": 64, "d_ff": 5120, "num_layers": 24, "num_decoder_layers": 24,
    "num_heads": 32, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "layer_norm_epsilon": 1e-6,
    "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
}
BLIP2_VISION = {
    "hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39, "num_attention_heads": 16,
    "image_size": BLIP2_IMAGE_SIZE, "patch_size": 14, "layer_norm_eps": 1e-6, "qkv_bias": True, "hidden_act": "gelu",
}
BLIP2_QFORMER = {
    "vocab_size": 30_522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "cross_attention_frequency": 2,
    "encoder_hidden_size": 1408,
}
BLIP2_IMAGE_TOKEN = TOKENIZER_SIZE  # the processor's "<image>" is the first id after the published tokenizer's


def flan_t5_xl_config() -> Any:
    from transformers import T5Config

    return T5Config(**FLAN_T5_XL)


def blip2_flan_t5_xl_config() -> Any:
    from transformers import Blip2Config

    return Blip2Config(vision_config=BLIP2_VISION, qformer_config=BLIP2_QFORMER,
                       text_config=flan_t5_xl_config().to_dict(), num_query_tokens=BLIP2_QUERY_TOKENS,
                       image_token_index=BLIP2_IMAGE_TOKEN)


def write_random_model(name: str, directory: Path, device: str) -> Path:
    """Write ``random:flan-t5-xl`` or ``random:blip2-flan-t5-xl`` into ``directory`` (built on ``device`` when it
    is a GPU: initialising billions of weights is quick there); returns the directory."""
    from transformers import Blip2ForConditionalGeneration, T5ForConditionalGeneration

    tokenizer = build_t5_tokenizer(TOKENIZER_SIZE)
    if name == RANDOM_FLAN_T5_XL:
        preprocessor, model_class, config = tokenizer, T5ForConditionalGeneration, flan_t5_xl_config()
    elif name == RANDOM_BLIP2_FLAN_T5_XL:
        preprocessor = blip2_processor(tokenizer, BLIP2_IMAGE_SIZE, BLIP2_QUERY_TOKENS)  # adds <image>
        if tokenizer.convert_tokens_to_ids("<image>") != BLIP2_IMAGE_TOKEN:
            raise AssertionError("the padded tokenizer must put <image> where the published checkpoint has it")
        model_class, config = Blip2ForConditionalGeneration, blip2_flan_t5_xl_config()
    else:
        raise ValueError(f"unknown random model {name!r}; use {RANDOM_FLAN_T5_XL} or {RANDOM_BLIP2_FLAN_T5_XL}")
    with torch.device(device if device.startswith("cuda") else "cpu"):
        model = model_class(config)
    model.to(dtype=torch.bfloat16).save_pretrained(directory)
    preprocessor.save_pretrained(directory)
    return Path(directory)


def write_random_flan_t5_xl(directory: Path, device: str = "cpu") -> Path:
    """The ``random-flan-t5-xl`` fixture (``harness bench stages --random-full-size``)."""
    return write_random_model(RANDOM_FLAN_T5_XL, directory, device)


def write_random_blip2_flan_t5_xl(directory: Path, device: str = "cpu") -> Path:
    """The ``random-blip2-flan-t5-xl`` fixture (``harness bench stages --random-full-size``)."""
    return write_random_model(RANDOM_BLIP2_FLAN_T5_XL, directory, device)
