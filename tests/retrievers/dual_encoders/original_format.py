"""Test helper: write a transformers BLIP retrieval model's weights under Salesforce BLIP's original key names.

Written in the opposite direction to ``retrievers.dual_encoders.convert`` (transformers -> original) and independently of it, so
a round trip checks the converter against a second reading of BLIP's ``vit.py`` / ``med.py`` / ``blip_retrieval.py``
names. Adds the keys an original checkpoint carries that a dual encoder never uses (momentum encoders, queues,
temperature, the caption decoder, BERT's position-id buffer).
"""

from __future__ import annotations

import torch

VIT_LAYER_PARTS = {
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "self_attn.qkv": "attn.qkv",
    "self_attn.projection": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def original_name(name: str) -> str:
    """The Salesforce BLIP name of one transformers ``BlipForImageTextRetrieval`` state-dict key."""
    if name.startswith(("text_encoder.", "vision_proj.", "text_proj.", "itm_head.")):
        return name
    embeddings = {
        "vision_model.embeddings.class_embedding": "visual_encoder.cls_token",
        "vision_model.embeddings.position_embedding": "visual_encoder.pos_embed",
        "vision_model.embeddings.patch_embedding.weight": "visual_encoder.patch_embed.proj.weight",
        "vision_model.embeddings.patch_embedding.bias": "visual_encoder.patch_embed.proj.bias",
        "vision_model.post_layernorm.weight": "visual_encoder.norm.weight",
        "vision_model.post_layernorm.bias": "visual_encoder.norm.bias",
    }
    if name in embeddings:
        return embeddings[name]
    head, _, rest = name.partition("vision_model.encoder.layers.")
    assert head == "" and rest, f"unexpected transformers key {name}"
    index, _, part = rest.partition(".")
    module, _, leaf = part.rpartition(".")
    return f"visual_encoder.blocks.{index}.{VIT_LAYER_PARTS[module]}.{leaf}"


def original_state_dict(model: torch.nn.Module, with_unused: bool = True) -> dict[str, torch.Tensor]:
    """``model``'s weights under original names, plus (``with_unused``) the keys a converter must drop."""
    state = {original_name(name): tensor.clone() for name, tensor in model.state_dict().items()}
    if not with_unused:
        return state
    extra: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        for module in ("visual_encoder", "text_encoder", "vision_proj", "text_proj"):
            if name.startswith(module + "."):
                extra[module + "_m" + name[len(module) :]] = tensor + 1.0
    width = state["vision_proj.weight"].shape[0]
    extra["image_queue"] = torch.randn(width, 8)
    extra["text_queue"] = torch.randn(width, 8)
    extra["idx_queue"] = torch.full((1, 8), -100)
    extra["ptr_queue"] = torch.zeros(1, dtype=torch.long)
    extra["temp"] = torch.tensor(0.07)
    extra["text_decoder.bert.embeddings.word_embeddings.weight"] = torch.randn(4, 2)
    extra["text_decoder.cls.predictions.bias"] = torch.randn(4)
    extra["text_encoder.embeddings.position_ids"] = torch.arange(8).unsqueeze(0)
    return {**state, **extra}
