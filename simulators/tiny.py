"""Tiny seeded checkpoints of the bots' real transformers classes, for tests, benches and offline smoke runs.

    write_tiny_flan_t5(Path("runs/tiny-flan-t5"))        # loads like google/flan-t5-xl (T5ForConditionalGeneration)
    write_tiny_causal_lm(Path("runs/tiny-causal-lm"))    # loads like a Qwen2 instruct model, chat template included
    write_tiny_blip2(Path("runs/tiny-blip2"))            # loads like Salesforce/blip2-flan-t5-xl (processor included)
    write_tiny_blip2(Path("runs/tiny-blip2-opt"), language_model="opt")   # like Salesforce/blip2-opt-2.7b

    harness run --questioner flan --questioner-arg model=runs/tiny-flan-t5 ...

Every directory is written with ``save_pretrained`` and read back by the very ``from_pretrained`` calls a real
checkpoint goes through (``AutoModelForSeq2SeqLM``, ``AutoModelForCausalLM``, ``Blip2ForConditionalGeneration``,
``AutoTokenizer``, ``AutoProcessor``). Weights are random, drawn from one seeded generator (same seed, same files);
tokenizers are built from an in-code vocabulary (letters, digits, punctuation and a few hundred common words), so
nothing is downloaded. The generated text is gibberish: these models exist to exercise shapes, batching, caching and
loading, never to say anything sensible. Each directory is well under 2 MB and generates in milliseconds on a CPU.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch

TINY_WIDTH = 32
TINY_FFN = 64
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_IMAGE_SIZE = 32  # pixels; BLIP-2's own processor resizes every image to this square
TINY_PATCH = 8
TINY_QUERY_TOKENS = 4  # BLIP-2 uses 32; the processor writes this many image placeholders before every prompt
TINY_POSITIONS = 1024  # room for the packaged prompt templates after a few rounds (causal models)
WEIGHT_SCALE = 0.2  # large enough that greedy decoding rarely meets near-ties between the top two logits

_WORDS = (
    "a an the of in on at to and or with is are was it its this that there what which who where when how why "
    "yes no not some many one two three four five red orange yellow green blue purple pink brown black white gray "
    "color colour shape circle square triangle small large big left right top bottom center middle background "
    "man woman person people dog cat car bus tree sky water food table room street picture image photo "
    "can you see does do any wearing holding sitting standing looking question answer short description "
    "ask photo collection find one specific large narrow down already said asked repeat best would which "
    "helping someone cannot they look about few words without"
)
COMMON_WORDS = tuple(dict.fromkeys(_WORDS.split()))

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the normalisation BLIP-2's image processor ships with
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_t5_tokenizer(size: int | None = None) -> Any:
    """A T5 (Unigram, "▁" word marker) tokenizer over letters, digits, punctuation and common words, with T5's ids
    for ``<pad>`` (0), ``</s>`` (1) and ``<unk>`` (2).

    Whole words score best, single characters worst, so known words stay one token and anything else is spelled.
    ``size`` pads the vocabulary with filler words (``tok123``) to that many ids, so that every id of a full-size
    model's embedding decodes to a word (``random:`` bench models).
    """
    from transformers import T5Tokenizer

    marker = "\u2581"
    characters = string.ascii_letters + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), (marker, -2.0)]
    pieces += [(character, -5.0) for character in characters]
    pieces += [(marker + character, -4.0) for character in characters]
    pieces += [(marker + word, -1.0) for word in COMMON_WORDS if len(word) > 1]
    if size is not None:
        pieces += [(f"{marker}tok{index}", -8.0) for index in range(size - len(pieces))]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def build_byte_level_tokenizer(kind: str) -> Any:
    """A byte-level BPE tokenizer (every byte is a symbol, common words merge into one token).

    ``kind="qwen2"`` gives a ``Qwen2Tokenizer`` with ChatML specials and a chat template; ``kind="opt"`` gives the
    ``GPT2Tokenizer`` OPT uses, with OPT's ``<pad>``/``</s>``/``<unk>`` specials.
    """
    from transformers import GPT2Tokenizer, Qwen2Tokenizer

    if kind == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    elif kind == "opt":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
    else:
        raise ValueError(f"unknown byte-level tokenizer kind {kind!r}; use 'qwen2' or 'opt'")
    vocab, merges = _byte_level_vocabulary(specials)
    if kind == "qwen2":
        tokenizer = Qwen2Tokenizer(
            vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tokenizer.chat_template = CHAT_TEMPLATE
        return tokenizer
    return GPT2Tokenizer(
        vocab=vocab, merges=merges, unk_token="<unk>", bos_token="</s>", eos_token="</s>", pad_token="<pad>"
    )


def write_tiny_flan_t5(directory: Path, seed: int = 0) -> Path:
    """Save a seeded tiny ``T5ForConditionalGeneration`` (Flan-T5's gated-GELU layout) and its tokenizer into
    ``directory`` (registered as fixture ``tiny-flan-t5``); returns the directory."""
    from transformers import T5ForConditionalGeneration

    tokenizer = build_t5_tokenizer()
    model = T5ForConditionalGeneration(_t5_config(tokenizer))
    return _save(model, directory, seed, tokenizer)


def write_tiny_causal_lm(directory: Path, seed: int = 0) -> Path:
    """Save a seeded tiny ``Qwen2ForCausalLM`` and a tokenizer with a ChatML chat template into ``directory``
    (registered as fixture ``tiny-causal-lm``); returns the directory."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_byte_level_tokenizer("qwen2")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=TINY_WIDTH,
        intermediate_size=TINY_FFN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        num_key_value_heads=TINY_HEADS // 2,
        max_position_embeddings=TINY_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    return _save(model, directory, seed, tokenizer)


def write_tiny_blip2(directory: Path, seed: int = 0, language_model: str = "t5") -> Path:
    """Save a seeded tiny ``Blip2ForConditionalGeneration`` and its ``Blip2Processor`` into ``directory``
    (registered as fixture ``tiny-blip2``); returns the directory.

    ``language_model="t5"`` builds BLIP-2 over a tiny Flan-T5 (like ``Salesforce/blip2-flan-t5-xl``), ``"opt"`` over
    a tiny OPT (like ``Salesforce/blip2-opt-2.7b``). As in transformers 5's own checkpoints, the processor writes
    ``num_query_tokens`` ``<image>`` placeholders before each prompt and the model's ``image_token_index`` points at
    that token, which is why the processor is built first and the configuration after it.
    """
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        OPTConfig,
    )

    if language_model == "t5":
        tokenizer = build_t5_tokenizer()
    elif language_model == "opt":
        tokenizer = build_byte_level_tokenizer("opt")
    else:
        raise ValueError(f"unknown BLIP-2 language model {language_model!r}; use 't5' or 'opt'")
    processor = blip2_processor(tokenizer, TINY_IMAGE_SIZE, TINY_QUERY_TOKENS)
    image_token_index = tokenizer.convert_tokens_to_ids("<image>")
    if language_model == "t5":
        text_config = _t5_config(tokenizer)
    else:
        text_config = OPTConfig(
            vocab_size=len(tokenizer),
            hidden_size=TINY_WIDTH,
            ffn_dim=TINY_FFN,
            num_hidden_layers=TINY_LAYERS,
            num_attention_heads=TINY_HEADS,
            word_embed_proj_dim=TINY_WIDTH,
            max_position_embeddings=TINY_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    config = Blip2Config(
        vision_config=Blip2VisionConfig(
            hidden_size=TINY_WIDTH,
            intermediate_size=TINY_FFN,
            num_hidden_layers=TINY_LAYERS,
            num_attention_heads=TINY_HEADS,
            image_size=TINY_IMAGE_SIZE,
            patch_size=TINY_PATCH,
        ).to_dict(),
        qformer_config=Blip2QFormerConfig(
            vocab_size=64,  # the Q-Former's word embeddings are unused when captioning; keep them small
            hidden_size=TINY_WIDTH,
            num_hidden_layers=TINY_LAYERS,
            num_attention_heads=TINY_HEADS,
            intermediate_size=TINY_FFN,
            max_position_embeddings=64,
            encoder_hidden_size=TINY_WIDTH,
        ).to_dict(),
        text_config=text_config.to_dict(),
        num_query_tokens=TINY_QUERY_TOKENS,
        image_token_index=image_token_index,
    )
    model = Blip2ForConditionalGeneration(config)
    return _save(model, directory, seed, processor)


def blip2_processor(tokenizer: Any, image_size: int, query_tokens: int) -> Any:
    """BLIP-2's processor as transformers 5 checkpoints ship it: CLIP-normalised square images of ``image_size``
    pixels, and ``query_tokens`` ``<image>`` placeholders (a token it adds to ``tokenizer``) before every prompt."""
    from transformers import Blip2Processor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    image_processor = BlipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )
    return Blip2Processor(image_processor, tokenizer, num_query_tokens=query_tokens)


def _t5_config(tokenizer: Any) -> Any:
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tokenizer),
        d_model=TINY_WIDTH,
        d_kv=TINY_WIDTH // TINY_HEADS,
        d_ff=TINY_FFN,
        num_layers=TINY_LAYERS,
        num_decoder_layers=TINY_LAYERS,
        num_heads=TINY_HEADS,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def _save(model: torch.nn.Module, directory: Path, seed: int, preprocessor: Any) -> Path:
    _randomise(model, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)  # type: ignore[attr-defined]
    preprocessor.save_pretrained(directory)
    return directory


@torch.no_grad()
def _randomise(model: torch.nn.Module, seed: int) -> None:
    # Every tensor comes from one seeded generator in a fixed (sorted) order, so the files depend on the seed alone,
    # not on the classes' own initialisation (which leaves norms at 1 and biases at 0 and may change between
    # transformers releases).
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in sorted(model.named_parameters()):
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32) * WEIGHT_SCALE
        is_norm_weight = "norm" in name.lower() and name.endswith("weight")
        parameter.copy_(noise * 0.25 + 1.0 if is_norm_weight else noise)


def _byte_level_vocabulary(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Specials, the 256 byte symbols, then every common word (with and without its leading space) built by
    left-to-right merges, so each merge extends a prefix and the merge order can never conflict."""
    symbols = _byte_symbols()
    space = symbols[ord(" ")]
    tokens = list(specials) + [symbols[byte] for byte in range(256)]
    merges: list[tuple[str, str]] = []
    for word in COMMON_WORDS:
        for spelled in (space + word, word):
            prefix = spelled[0]
            for character in spelled[1:]:
                merges.append((prefix, character))
                prefix += character
                tokens.append(prefix)
    tokens = list(dict.fromkeys(tokens))
    return {token: index for index, token in enumerate(tokens)}, list(dict.fromkeys(merges))


def _byte_symbols() -> dict[int, str]:
    # Byte-level BPE writes each byte as a printable character: printable Latin-1 bytes stand for themselves, the
    # others (control characters, space, ...) are shifted past 255 in byte order.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    symbols = {byte: chr(byte) for byte in keep}
    shifted = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + shifted)
            shifted += 1
    return symbols
