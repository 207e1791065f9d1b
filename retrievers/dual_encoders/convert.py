"""Convert original Salesforce BLIP / LAVIS / ChatIR checkpoints into transformers' ``BlipForImageTextRetrieval``.

    convert_checkpoint(Path("model_base.pth"), Path("runs/blip-zs"))        # writes a loadable directory
    converted = convert_blip(Path("chatir_weights.ckpt"), tokenizer="Salesforce/blip-itm-base-coco")
    converted.model, converted.tokenizer, converted.report.dropped

For users holding an original-format checkpoint (``model_base.pth``, ``model_base_retrieval_coco.pth``,
``chatir_weights.ckpt``). The configuration is read off the tensor shapes; the vision position grid is resized
bicubically to the requested image size at conversion time, as BLIP's own loader does for its 384-px models. Keys
the dual encoder never uses (momentum copies, queues, temperature, the caption decoder) are dropped by name and
counted; any other key that does not map, and any model weight left unset, is an error listing the names, so a
checkpoint is never half loaded. Only the image-text-matching head and cross-attention (unused by the contrastive
path) may be absent, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoTokenizer, BlipConfig, BlipForImageTextRetrieval, PreTrainedTokenizerBase

from harness.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.hashing import sha256_file
from retrievers.dual_encoders.sources import from_pretrained

logger = logging.getLogger(__name__)

DEFAULT_TOKENIZER = "Salesforce/blip-itm-base-coco"
WRAPPER_KEYS = ("model", "state_dict", "module")
WRAPPER_PREFIXES = ("module.", "model.")

# Original keys the dual encoder has no use for, by group (the group names are what conversion.json counts).
DROP_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("momentum", re.compile(r"^(visual_encoder_m|text_encoder_m|vision_proj_m|text_proj_m)\.")),
    ("queue", re.compile(r"^(image_queue|text_queue|idx_queue|ptr_queue|queue_ptr)$")),
    ("temperature", re.compile(r"^temp$")),
    ("text_decoder", re.compile(r"^text_decoder\.")),
    ("buffer", re.compile(r"^text_encoder\.embeddings\.position_ids$")),
)

# Original name -> transformers name. The BERT text encoder and the heads keep their names; the ViT is renamed.
_BLOCK = r"^visual_encoder\.blocks\.(\d+)\."
_HF_LAYER = r"vision_model.encoder.layers.\1."
RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^visual_encoder\.cls_token$", "vision_model.embeddings.class_embedding"),
        (r"^visual_encoder\.pos_embed$", "vision_model.embeddings.position_embedding"),
        (r"^visual_encoder\.patch_embed\.proj\.(weight|bias)$", r"vision_model.embeddings.patch_embedding.\1"),
        (_BLOCK + r"norm([12])\.(weight|bias)$", _HF_LAYER + r"layer_norm\2.\3"),
        (_BLOCK + r"attn\.qkv\.(weight|bias)$", _HF_LAYER + r"self_attn.qkv.\2"),
        (_BLOCK + r"attn\.proj\.(weight|bias)$", _HF_LAYER + r"self_attn.projection.\2"),
        (_BLOCK + r"mlp\.(fc[12])\.(weight|bias)$", _HF_LAYER + r"mlp.\2.\3"),
        (r"^visual_encoder\.norm\.(weight|bias)$", r"vision_model.post_layernorm.\1"),
        (r"^(text_encoder\..+)$", r"\1"),
        (r"^((?:vision_proj|text_proj|itm_head)\.(?:weight|bias))$", r"\1"),
    )
)
TOLERATED_MISSING = re.compile(r"^itm_head\.|\.crossattention\.")

VISION_LAYER_NORM_EPS = 1e-6  # the original ViT's LayerNorm
TEXT_LAYER_NORM_EPS = 1e-12  # BERT's
HEAD_WIDTH = 64


@dataclass(frozen=True)
class MappedState:
    """An original state dict split into transformers-named tensors, dropped-key counts and unmappable names."""

    tensors: dict[str, torch.Tensor]
    dropped: dict[str, int]
    unknown: tuple[str, ...]


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion did; written to ``conversion.json`` next to the converted model."""

    image_size: int
    source_image_size: int
    dropped: Mapping[str, int]
    tolerated_missing: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ConvertedBlip:
    model: BlipForImageTextRetrieval
    tokenizer: PreTrainedTokenizerBase
    report: ConversionReport


def load_original_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The tensors of an original checkpoint, unwrapped from ``model``/``state_dict``/``module`` (or the one key of a
    dict that holds a state dict) and prefixes."""
    try:
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            # Not a refused Python object but bytes no checkpoint holds (torch wraps both in "Weights only load
            # failed"): never advise loading such a file unsafely.
            reason = next((line.strip() for line in str(error).splitlines() if line.startswith("Unsupported")),
                          str(error).strip().splitlines()[0])
            raise HarnessError(f"{checkpoint} is not a readable torch checkpoint (damaged, cut short, or another kind "
                               f"of file: {reason}); download or copy it again") from None
        detail = next((line.strip() for line in str(error).splitlines() if "Unsupported global" in line), "")
        raise HarnessError(
            f"{checkpoint} holds Python objects besides tensors, which are not unpickled (that could run code; "
            f"{detail or 'see torch.load weights_only'}). If you trust the file, re-save only its weights: "
            f'python -c "import torch; '
            f"c = torch.load('{checkpoint}', weights_only=False); torch.save({{'model': c['model']}}, 'weights.pth')\""
        ) from None
    except (OSError, RuntimeError) as error:
        raise HarnessError(f"cannot read checkpoint {checkpoint}: {error}") from None
    while isinstance(payload, Mapping) and not _is_state_dict(payload):
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(payload.get(key), Mapping)), None)
        if wrapper is None:  # a dict holding exactly one state dict, under any key
            holders = [key for key, value in payload.items() if isinstance(value, Mapping) and _is_state_dict(value)]
            wrapper = holders[0] if len(holders) == 1 else None
        if wrapper is None:
            raise HarnessError(
                f"{checkpoint} is not a state dict and has none of the keys {', '.join(WRAPPER_KEYS)} "
                f"(top-level keys: {', '.join(map(str, list(payload)[:20]))})"
            )
        payload = payload[wrapper]
    if not isinstance(payload, Mapping):
        raise HarnessError(f"{checkpoint} holds a {type(payload).__name__}, not a state dict")
    state = dict(payload)
    for prefix in WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def map_state_dict(state: Mapping[str, object]) -> MappedState:
    """Rename original keys to transformers names; count the dropped ones; collect the ones that fit no rule."""
    tensors: dict[str, torch.Tensor] = {}
    dropped: Counter[str] = Counter()
    unknown: list[str] = []
    for key, value in state.items():
        group = next((name for name, rule in DROP_RULES if rule.search(key)), None)
        if group is not None:
            dropped[group] += 1
            continue
        target = _rename(key)
        if target is None or not isinstance(value, torch.Tensor):
            unknown.append(key)
        else:
            tensors[target] = value
    return MappedState(tensors, dict(sorted(dropped.items())), tuple(sorted(unknown)))


def infer_config(
    tensors: Mapping[str, torch.Tensor], image_size: int, tokenizer: PreTrainedTokenizerBase
) -> BlipConfig:
    """A BlipConfig matching transformers-named tensors, for images of ``image_size`` pixels."""
    class_embedding = _tensor(tensors, "vision_model.embeddings.class_embedding")
    vision_hidden = class_embedding.shape[-1]
    patch_size = _tensor(tensors, "vision_model.embeddings.patch_embedding.weight").shape[-1]
    word_embeddings = _tensor(tensors, "text_encoder.embeddings.word_embeddings.weight")
    vocab_size, text_hidden = word_embeddings.shape
    if len(tokenizer) > vocab_size:
        raise HarnessError(
            f"the tokenizer has {len(tokenizer)} tokens but the checkpoint's text encoder only {vocab_size}; "
            "pass the tokenizer the checkpoint was trained with"
        )
    return BlipConfig(
        vision_config={
            "hidden_size": vision_hidden,
            "intermediate_size": _tensor(tensors, "vision_model.encoder.layers.0.mlp.fc1.weight").shape[0],
            "num_hidden_layers": _count_layers(tensors, r"^vision_model\.encoder\.layers\.(\d+)\."),
            "num_attention_heads": max(1, vision_hidden // HEAD_WIDTH),
            "image_size": image_size,
            "patch_size": patch_size,
            "layer_norm_eps": VISION_LAYER_NORM_EPS,
        },
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": text_hidden,
            "intermediate_size": _tensor(tensors, "text_encoder.encoder.layer.0.intermediate.dense.weight").shape[0],
            "num_hidden_layers": _count_layers(tensors, r"^text_encoder\.encoder\.layer\.(\d+)\."),
            "num_attention_heads": max(1, text_hidden // HEAD_WIDTH),
            "max_position_embeddings": _tensor(tensors, "text_encoder.embeddings.position_embeddings.weight").shape[0],
            "layer_norm_eps": TEXT_LAYER_NORM_EPS,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        },
        image_text_hidden_size=_tensor(tensors, "vision_proj.weight").shape[0],
    )


def resize_position_grid(position_embedding: torch.Tensor, patch_size: int, image_size: int) -> torch.Tensor:
    """(1, 1 + g*g, D) positions resized bicubically to the grid of ``image_size``; the class position is kept."""
    if image_size % patch_size:
        raise HarnessError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    source_grid = _grid_side(position_embedding.shape[1] - 1)
    target_grid = image_size // patch_size
    if source_grid == target_grid:
        return position_embedding
    class_position, patches = position_embedding[:, :1], position_embedding[:, 1:]
    dim = patches.shape[-1]
    grid = patches.reshape(1, source_grid, source_grid, dim).permute(0, 3, 1, 2).to(torch.float32)
    resized = F.interpolate(grid, size=(target_grid, target_grid), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(1, target_grid * target_grid, dim).to(position_embedding.dtype)
    return torch.cat([class_position, resized], dim=1)


def convert_blip(checkpoint: Path, tokenizer: str = DEFAULT_TOKENIZER, image_size: int = 224) -> ConvertedBlip:
    """Load an original checkpoint into a float32 ``BlipForImageTextRetrieval`` running at ``image_size``."""
    mapped = map_state_dict(load_original_state_dict(checkpoint))
    if mapped.unknown:
        raise HarnessError(
            f"{checkpoint}: {len(mapped.unknown)} keys match no BLIP weight and no drop rule: "
            f"{', '.join(mapped.unknown)}"
        )
    tokenizer_ = from_pretrained(AutoTokenizer, tokenizer)
    tensors = dict(mapped.tensors)
    positions_key = "vision_model.embeddings.position_embedding"
    source_positions = _tensor(tensors, positions_key)
    patch_size = _tensor(tensors, "vision_model.embeddings.patch_embedding.weight").shape[-1]
    tensors[positions_key] = resize_position_grid(source_positions, patch_size, image_size)
    model = BlipForImageTextRetrieval(infer_config(tensors, image_size, tokenizer_))
    tolerated = _load_checked(model, tensors, checkpoint)
    report = ConversionReport(
        image_size=image_size,
        source_image_size=_grid_side(source_positions.shape[1] - 1) * patch_size,
        dropped=mapped.dropped,
        tolerated_missing=tolerated,
    )
    logger.info("converted %s: dropped %s", checkpoint, ", ".join(f"{n} {g}" for g, n in report.dropped.items()))
    return ConvertedBlip(model.eval(), tokenizer_, report)


def convert_checkpoint(
    checkpoint: Path, out_dir: Path, tokenizer: str = DEFAULT_TOKENIZER, image_size: int = 224
) -> Path:
    """Write a transformers directory (safetensors model, tokenizer, ``conversion.json``) for ``checkpoint``."""
    converted = convert_blip(Path(checkpoint), tokenizer, image_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted.model.save_pretrained(out_dir)
    converted.tokenizer.save_pretrained(out_dir)
    record = {
        "source": str(checkpoint),
        "source_sha256": sha256_file(Path(checkpoint)),
        "tokenizer": tokenizer,
        "image_size": converted.report.image_size,
        "source_image_size": converted.report.source_image_size,
        "dropped": dict(converted.report.dropped),
        "tolerated_missing": list(converted.report.tolerated_missing),
        "transformers": transformers.__version__,
    }
    atomic_write_text(out_dir / "conversion.json", json.dumps(record, indent=2) + "\n")
    return out_dir


def _load_checked(
    model: BlipForImageTextRetrieval, tensors: dict[str, torch.Tensor], checkpoint: Path
) -> tuple[str, ...]:
    expected = model.state_dict()
    unexpected = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    fatal_missing = [name for name in missing if not TOLERATED_MISSING.search(name)]
    mismatched = [
        f"{name} {tuple(tensors[name].shape)} vs {tuple(expected[name].shape)}"
        for name in sorted(set(tensors) & set(expected))
        if tensors[name].shape != expected[name].shape
    ]
    problems = []
    if unexpected:
        problems.append(f"unknown keys: {', '.join(unexpected)}")
    if fatal_missing:
        problems.append(f"missing keys: {', '.join(fatal_missing)}")
    if mismatched:
        problems.append(f"shape mismatches (checkpoint vs inferred model): {', '.join(mismatched)}")
    if problems:
        raise HarnessError(f"{checkpoint} does not fit BlipForImageTextRetrieval; " + "; ".join(problems))
    tolerated = tuple(missing)
    if tolerated:
        logger.warning(
            "%s has no weights for %d tensors the contrastive path does not use (left at random init): %s",
            checkpoint,
            len(tolerated),
            ", ".join(tolerated),
        )
    model.load_state_dict({name: tensor.to(torch.float32) for name, tensor in tensors.items()}, strict=False)
    return tolerated


def _rename(key: str) -> str | None:
    for pattern, replacement in RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def _tensor(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in tensors:
        raise HarnessError(f"the checkpoint has no tensor for {name}; is it a BLIP checkpoint?")
    return tensors[name]


def _count_layers(tensors: Mapping[str, torch.Tensor], pattern: str) -> int:
    indexes = {int(match.group(1)) for name in tensors if (match := re.match(pattern, name))}
    return max(indexes) + 1 if indexes else 0


def _grid_side(patch_count: int) -> int:
    side = math.isqrt(patch_count)
    if side * side != patch_count:
        raise HarnessError(f"the position embedding holds {patch_count} patch positions, not a square grid")
    return side


def _is_state_dict(payload: Mapping[object, object]) -> bool:
    return bool(payload) and all(isinstance(value, torch.Tensor) for value in payload.values())
