"""Tiny seeded BLIP and CLIP checkpoints of the real transformers classes, for tests and offline smoke runs.

    write_tiny_blip(Path("runs/tiny-blip"), seed=0)   # a directory that loads like Salesforce/blip-itm-base-coco
    write_tiny_clip(Path("runs/tiny-clip"), seed=0)   # a directory that loads like openai/clip-vit-base-patch16

The weights are random (seeded, every tensor drawn so that no two layers are alike, which lets key-mapping tests
catch swapped layers); the tokenizers are built from an in-code vocabulary. Same seed, same weights, same files.
Sizes follow the converter's shape rules (attention heads = hidden // 64), so a tiny model survives a round trip
through the original-checkpoint format.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForImageTextRetrieval,
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
)

TINY_HIDDEN = 64
TINY_INTERMEDIATE = 128
TINY_LAYERS = 2
TINY_PROJECTION = 16
TINY_IMAGE_SIZE = 224
TINY_PATCH = 32
# Attention heads follow the converter's rule (hidden // 64, at least 1) so a tiny model survives a round trip.
TINY_TOWER = {
    "hidden_size": TINY_HIDDEN,
    "intermediate_size": TINY_INTERMEDIATE,
    "num_hidden_layers": TINY_LAYERS,
    "num_attention_heads": max(1, TINY_HIDDEN // 64),
}
TINY_VISION_TOWER = {**TINY_TOWER, "image_size": TINY_IMAGE_SIZE, "patch_size": TINY_PATCH}
TINY_TEXT_POSITIONS = 256  # room for the 200-token BLIP presets

_COMMON_TEXT = (
    "a an the of in on at to and or with without is are was were it its this that there these those what which "
    "who where when how why yes no not maybe some many few one two three four five six seven eight nine ten "
    "red orange yellow green blue purple pink brown black white gray grey colour color dark light bright "
    "round square circle triangle rectangle shape small large big tiny long short tall left right top bottom "
    "front back middle center near far above below behind next inside outside up down "
    "man woman person people child boy girl dog cat horse bird car bus train plane boat bike table chair bed "
    "room kitchen street tree grass sky water food pizza plate cup picture image photo can you see does do any "
    "wearing holding sitting standing looking"
)
COMMON_WORDS = tuple(_COMMON_TEXT.split())
BLIP_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]")


def bert_vocabulary() -> dict[str, int]:
    """BLIP-style word-piece vocabulary: specials, characters and their ``##`` forms, digits, punctuation, words."""
    tokens = list(BLIP_SPECIALS)
    tokens += list(string.ascii_lowercase) + [f"##{letter}" for letter in string.ascii_lowercase]
    tokens += list(string.digits) + [f"##{digit}" for digit in string.digits]
    tokens += list(string.punctuation)
    tokens += [word for word in COMMON_WORDS if word not in tokens]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


def build_bert_tokenizer() -> BertTokenizer:
    """The tiny BLIP tokenizer: lower-cased word pieces, [DEC] as BLIP's decoder start and [ENC] as in BLIP."""
    return BertTokenizer(
        vocab=bert_vocabulary(), do_lower_case=True, bos_token="[DEC]", additional_special_tokens=["[ENC]"]
    )


def build_clip_tokenizer() -> CLIPTokenizer:
    """The tiny CLIP tokenizer: byte-level BPE with no merges (every word is spelled out in characters)."""
    byte_symbols = list(_bytes_to_unicode().values())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + byte_symbols + [f"{symbol}</w>" for symbol in byte_symbols]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[])


def write_tiny_blip(directory: Path, seed: int = 0) -> Path:
    """Save a seeded tiny ``BlipForImageTextRetrieval`` and its tokenizer into ``directory``; returns it."""
    tokenizer = build_bert_tokenizer()
    config = BlipConfig(
        vision_config={**TINY_VISION_TOWER, "layer_norm_eps": 1e-6},
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": TINY_INTERMEDIATE,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": max(1, TINY_HIDDEN // 64),
            "max_position_embeddings": TINY_TEXT_POSITIONS,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        image_text_hidden_size=TINY_PROJECTION,
    )
    model = BlipForImageTextRetrieval(config)
    return _save(model, tokenizer, directory, seed)


def write_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """Save a seeded tiny ``CLIPModel`` and its tokenizer into ``directory``; returns it."""
    tokenizer = build_clip_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": TINY_INTERMEDIATE,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": max(1, TINY_HIDDEN // 64),
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=TINY_VISION_TOWER,
        projection_dim=TINY_PROJECTION,
    )
    model = CLIPModel(config)
    return _save(model, tokenizer, directory, seed)


def _save(model: torch.nn.Module, tokenizer: object, directory: Path, seed: int) -> Path:
    _randomise(model, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)  # type: ignore[attr-defined]
    return directory


@torch.no_grad()
def _randomise(model: torch.nn.Module, seed: int) -> None:
    # The classes' own initialisation sets every LayerNorm to (1, 0) and every bias to 0, so a converter that swapped
    # two norms would go unnoticed; drawing every tensor from one seeded generator makes each one distinct.
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in sorted(model.named_parameters()):
        is_norm_weight = "norm" in name.lower() and name.endswith("weight")
        noise = torch.randn(parameter.shape, generator=generator) * 0.05
        parameter.copy_(noise + 1.0 if is_norm_weight else noise)
    if hasattr(model, "logit_scale"):
        model.logit_scale.fill_(2.6592)


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level BPE maps every byte to a printable character; the vocabulary must be written in them.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in characters)))
