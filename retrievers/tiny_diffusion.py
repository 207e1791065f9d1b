"""Tiny seeded diffusion pipelines of the real diffusers classes, for tests, the demo and the generation bench.

    write_tiny_sd3(Path("runs/tiny-sd3"))     # loads like stabilityai/stable-diffusion-3-medium-diffusers
    write_tiny_sd21(Path("runs/tiny-sd21"))   # loads like stabilityai/stable-diffusion-2-1
    write_tiny_sdxl(Path("runs/tiny-sdxl"))   # loads like stabilityai/sdxl-turbo

Each directory is written by ``save_pretrained`` and loads through ``from_pretrained(directory)``, the same path a
downloaded pipeline takes. The architectures keep the real pipelines' wiring at toy widths: a four-block VAE (the
pipelines derive their 8x latent scale from the VAE's block count, so four blocks keep image size = 8 x latent
size as in the real models), SD3's two CLIP encoders with projection plus a T5 encoder whose width is the
transformer's ``joint_attention_dim`` (the two CLIP hidden states, concatenated, are zero-padded up to it, so it
must be at least their sum) and ``pooled_projection_dim`` = the two CLIP projection widths added; SDXL's UNet
cross-attends to the two CLIP hidden widths added and takes the second encoder's projection plus six time ids as
its added embedding. Weights are random and seeded (same seed, same files); tokenizers are built from in-code
vocabularies. Default image size is 64 px; about 1-3 MB per pipeline.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    EulerAncestralDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from retrievers.tiny import COMMON_WORDS, build_clip_tokenizer

TINY_IMAGE_SIZE = 64
TINY_LATENT_SIZE = TINY_IMAGE_SIZE // 8
TINY_CLIP_HIDDEN = 32
TINY_CLIP_PROJECTION = 16
TINY_T5_WIDTH = 2 * TINY_CLIP_HIDDEN  # SD3 pads the concatenated CLIP hidden states to the T5 width
CLIP_MAX_TOKENS = 77


def write_tiny_sd3(directory: Path, seed: int = 0, with_t5: bool = True) -> Path:
    """A seeded tiny ``StableDiffusion3Pipeline`` (SD3 transformer, two CLIP encoders with projection, T5).
    ``with_t5=False`` saves it without T5, as users drop it to save memory (the pipeline then feeds zeros)."""

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer()
    pipeline = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(
            sample_size=TINY_LATENT_SIZE,
            patch_size=2,
            in_channels=4,
            out_channels=4,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=TINY_T5_WIDTH,
            caption_projection_dim=32,  # = heads x head width, the joint attention's inner width
            pooled_projection_dim=2 * TINY_CLIP_PROJECTION,
            pos_embed_max_size=2 * TINY_LATENT_SIZE,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(shift_factor=0.0609, scaling_factor=1.5305, quant_convs=False),
        text_encoder=CLIPTextModelWithProjection(_clip_config(tokenizer, projection=True)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer_2, projection=True)),
        tokenizer_2=tokenizer_2,
        text_encoder_3=T5EncoderModel(_t5_config(_t5_tokenizer())) if with_t5 else None,
        tokenizer_3=_t5_tokenizer() if with_t5 else None,
    )
    return _save(pipeline, directory, seed)


def write_tiny_sd21(directory: Path, seed: int = 0) -> Path:
    """A seeded tiny ``StableDiffusionPipeline`` laid out like SD 2.1 (one CLIP encoder, v-prediction, DDIM)."""

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    pipeline = StableDiffusionPipeline(
        vae=_vae(scaling_factor=0.18215, quant_convs=True),
        text_encoder=CLIPTextModel(_clip_config(tokenizer, projection=False)),
        tokenizer=tokenizer,
        unet=_unet(cross_attention_dim=TINY_CLIP_HIDDEN),
        scheduler=DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
            set_alpha_to_one=False, prediction_type="v_prediction", steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipeline, directory, seed)


def write_tiny_sdxl(directory: Path, seed: int = 0) -> Path:
    """A seeded tiny ``StableDiffusionXLPipeline`` laid out like SDXL-Turbo (two CLIP encoders, Euler ancestral,
    trailing timesteps)."""

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer()
    time_embedding = 8
    pipeline = StableDiffusionXLPipeline(
        vae=_vae(scaling_factor=0.13025, quant_convs=True),
        text_encoder=CLIPTextModel(_clip_config(tokenizer, projection=False)),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer_2, projection=True)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=_unet(
            cross_attention_dim=2 * TINY_CLIP_HIDDEN,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_embedding,
            # six time ids (original size, crop corner, target size) plus the second encoder's projection
            projection_class_embeddings_input_dim=6 * time_embedding + TINY_CLIP_PROJECTION,
        ),
        scheduler=EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing",
        ),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    return _save(pipeline, directory, seed)


def clip_tokenizer() -> CLIPTokenizer:
    """The tiny CLIP tokenizer of retrievers.tiny with the 77-token window the pipelines pad prompts to."""
    return CLIPTokenizer(vocab=build_clip_tokenizer().get_vocab(), merges=[], model_max_length=CLIP_MAX_TOKENS)


def _t5_tokenizer() -> T5Tokenizer:
    # A unigram vocabulary: specials, the word boundary, single characters (so any text tokenises) and whole words.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(character, -5.0) for character in string.ascii_lowercase + string.digits + string.punctuation]
    pieces += [(f"\u2581{word}", -3.0) for word in COMMON_WORDS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def _clip_config(tokenizer: CLIPTokenizer, projection: bool) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_CLIP_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_TOKENS,
        projection_dim=TINY_CLIP_PROJECTION if projection else 512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )


def _t5_config(tokenizer: T5Tokenizer) -> T5Config:
    return T5Config(
        vocab_size=len(tokenizer),
        d_model=TINY_T5_WIDTH,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _vae(scaling_factor: float, quant_convs: bool, shift_factor: float | None = None) -> AutoencoderKL:

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=TINY_IMAGE_SIZE,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=quant_convs,
        use_post_quant_conv=quant_convs,
    )


def _unet(cross_attention_dim: int, **extra: object) -> UNet2DConditionModel:

    return UNet2DConditionModel(
        sample_size=TINY_LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=cross_attention_dim,
        **extra,
    )


def _save(pipeline: DiffusionPipeline, directory: Path, seed: int) -> Path:
    _randomise(pipeline, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(directory)
    return directory


@torch.no_grad()
def _randomise(pipeline: DiffusionPipeline, seed: int) -> None:
    # Library initialisation zeroes many output projections (the UNet's and transformer's last layers among them),
    # which would make every image the same flat colour; one seeded draw for every tensor gives varied images and
    # identical files for identical seeds, whatever the library's own init does.
    generator = torch.Generator().manual_seed(seed)
    for component_name, component in sorted(pipeline.components.items()):
        if not isinstance(component, torch.nn.Module):
            continue
        for name, parameter in sorted(component.named_parameters()):
            noise = torch.randn(parameter.shape, generator=generator) * 0.05
            is_norm_weight = "norm" in name.lower() and name.endswith("weight")
            parameter.copy_(noise + 1.0 if is_norm_weight else noise)
