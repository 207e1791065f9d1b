"""DiffusionGenerator over tiny pipelines of the real diffusers classes, saved and loaded through from_pretrained of a
local directory: sizes, per-image determinism, identities, seeds, and the image cache. Never image content."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.fixtures.tiny_diffusion import write_tiny_sd3, write_tiny_sd21, write_tiny_sdxl
from harness.image_cache import ImageCache
from retrievers.dar.diffusion import DiffusionGenerator, DiffusionSettings, pipeline_fingerprint

WRITERS: dict[str, Callable[..., Path]] = {"sd3": write_tiny_sd3, "sd21": write_tiny_sd21, "sdxl-turbo": write_tiny_sdxl}
PIPELINES = {"sd3": "StableDiffusion3Pipeline", "sd21": "StableDiffusionPipeline",
             "sdxl-turbo": "StableDiffusionXLPipeline"}
FAST = {"steps": 2, "height": 32, "width": 32, "batch_size": 3}


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {family: write(tmp_path_factory.mktemp(f"tiny-{family}")) for family, write in WRITERS.items()}


def _generator(directory: Path, **settings: object) -> DiffusionGenerator:
    return DiffusionGenerator(DiffusionSettings(model=str(directory), **{**FAST, **settings}), progress=False)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


@pytest.mark.parametrize("family", list(WRITERS))
def test_tiny_pipeline_loads_from_its_directory_and_draws_the_requested_size(
    tiny_pipelines: dict[str, Path], family: str
) -> None:
    directory = tiny_pipelines[family]
    assert json.loads((directory / "model_index.json").read_text())["_class_name"] == PIPELINES[family]
    generator = _generator(directory, height=32, width=64)
    assert generator.settings.family == family  # "auto" read model_index.json
    images = generator.generate(["a red dog on the grass", "two cats"], [1, 2])
    assert type(generator.pipeline).__name__ == PIPELINES[family]
    assert [image.size for image in images] == [(64, 32), (64, 32)]
    assert all(image.mode == "RGB" for image in images)
    assert generator.generated == 2


def test_tiny_sd3_includes_a_t5_encoder(tiny_pipelines: dict[str, Path]) -> None:
    pipeline = _generator(tiny_pipelines["sd3"]).load()
    assert type(pipeline.text_encoder_3).__name__ == "T5EncoderModel"
    assert pipeline.transformer.config.joint_attention_dim == pipeline.text_encoder_3.config.d_model
    assert pipeline.transformer.config.pooled_projection_dim == (
        pipeline.text_encoder.config.projection_dim + pipeline.text_encoder_2.config.projection_dim
    )
    assert pipeline.vae_scale_factor == 8


def test_sd3_without_t5_loads_and_draws(tmp_path: Path) -> None:
    directory = write_tiny_sd3(tmp_path / "no-t5", with_t5=False)
    generator = _generator(directory)
    assert generator.generate(["a dog"], [1])[0].size == (32, 32)
    assert generator.pipeline.text_encoder_3 is None


def test_same_seed_writes_the_same_pipeline(tmp_path: Path, tiny_pipelines: dict[str, Path]) -> None:
    again = write_tiny_sd3(tmp_path / "again", seed=0)
    other = write_tiny_sd3(tmp_path / "other", seed=1)
    assert pipeline_fingerprint(again) == pipeline_fingerprint(tiny_pipelines["sd3"])
    assert pipeline_fingerprint(other) != pipeline_fingerprint(again)


@pytest.mark.parametrize("family", ["sd3", "sd21"])
def test_an_image_does_not_depend_on_its_batch(tiny_pipelines: dict[str, Path], family: str) -> None:
    generator = _generator(tiny_pipelines[family])
    together = generator.generate(["a red dog", "two cats on a bed", "a blue car", "a tree"], [11, 22, 33, 44])
    alone = generator.generate(["two cats on a bed"], [22])
    reordered = generator.generate(["a tree", "a green bus", "two cats on a bed"], [44, 55, 22])
    # Neighbours change nothing but float rounding (multi-threaded CPU kernels): at most one 8-bit level on a
    # rare pixel, where different neighbours without padding would change the image throughout.
    for image, same in ((alone[0], together[1]), (reordered[2], together[1]), (reordered[0], together[3])):
        difference = np.abs(_pixels(image).astype(int) - _pixels(same).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert generator.generated == 8  # padding of the short batches is not counted


def test_identity_tracks_what_changes_images(tmp_path: Path, tiny_pipelines: dict[str, Path]) -> None:
    directory = tiny_pipelines["sd21"]
    base = _generator(directory).key_identity()
    changed = {
        "steps": _generator(directory, steps=3),
        "guidance": _generator(directory, guidance_scale=2.0),
        "size": _generator(directory, height=64),
        "dtype": _generator(directory, dtype="bfloat16"),
        "negative prompt": _generator(directory, negative_prompt="blurry"),
        "scheduler": _generator(directory, scheduler="EulerDiscreteScheduler"),
        "weights": _generator(write_tiny_sd21(tmp_path / "seed1", seed=1)),
    }
    for what, generator in changed.items():
        assert generator.key_identity() != base, what
    assert _generator(directory, batch_size=1).key_identity() == base  # batch size only changes speed

    moved = Path(shutil.copytree(directory, tmp_path / "moved"))
    assert _generator(moved).key_identity() == base  # same files elsewhere: same images
    assert _generator(moved).identity()["model"] == str(moved)  # but the manifest says where they came from


def test_identity_and_requests_need_no_loaded_pipeline(tiny_pipelines: dict[str, Path]) -> None:
    generator = _generator(tiny_pipelines["sd3"])
    identity = generator.identity()
    assert generator.pipeline is None
    assert identity["pipeline"] == "StableDiffusion3Pipeline"
    assert identity["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler"
    assert (identity["steps"], identity["height"], identity["width"], identity["dtype"]) == (2, 32, 32, "float32")


def test_seeds_derive_from_prompt_replicate_and_global_seed(tiny_pipelines: dict[str, Path]) -> None:
    generator = _generator(tiny_pipelines["sd3"])
    replicas = [generator.requests(["a dog"], replicate=k)[0] for k in range(3)]
    assert len({request.seed for request in replicas}) == 3
    assert len({request.key for request in replicas}) == 3
    assert generator.requests(["a dog"], replicate=1)[0] == replicas[1]
    assert generator.requests(["a dog"], replicate=1, global_seed=5)[0].seed != replicas[1].seed
    assert generator.requests(["a cat"], replicate=1)[0].seed != replicas[1].seed
    per_prompt = generator.requests(["a dog", "a dog", "a dog"], replicate=[0, 1, 2])
    assert per_prompt == replicas
    explicit = generator.requests(["a dog", "a cat"], seeds=[7, 7])
    assert [request.seed for request in explicit] == [7, 7] and explicit[0].key != explicit[1].key
    assert _generator(tiny_pipelines["sd3"], steps=3).requests(["a dog"])[0].seed != replicas[0].seed
    with pytest.raises(ValueError):
        generator.requests(["a", "b"], replicate=[0])


def test_cached_generate_draws_each_distinct_image_once(tmp_path: Path, tiny_pipelines: dict[str, Path]) -> None:
    cache = ImageCache(tmp_path / "cache")
    prompts = ["a dog", "a cat", "a dog", "a bus", "a cat"]
    first = _generator(tiny_pipelines["sdxl-turbo"])
    images = first.cached_generate(cache, prompts, chunk_size=2)
    assert first.generated == 3  # identical prompts drawn once, also across chunks
    assert [image.size for image in images] == [(32, 32)] * 5
    np.testing.assert_array_equal(_pixels(images[2]), _pixels(images[0]))
    alone = first.generate(["a bus"], [first.requests(["a bus"])[0].seed])
    np.testing.assert_array_equal(_pixels(alone[0]), _pixels(images[3]))  # the seed of an image derives from its key

    second = _generator(tiny_pipelines["sdxl-turbo"])  # another run, another retriever: same prompts
    hits_before = cache.hits
    again = second.cached_generate(cache, prompts)
    assert second.generated == 0 and second.pipeline is None  # never even loaded
    assert cache.hits - hits_before == 5
    for one, other in zip(images, again):
        np.testing.assert_array_equal(_pixels(one), _pixels(other))

    k_images = second.cached_generate(cache, ["a dog"] * 3, replicate=[0, 1, 2])
    assert second.generated == 2  # replicate 0 was cached; 1 and 2 have their own seeds
    assert not np.array_equal(_pixels(k_images[1]), _pixels(k_images[2]))


def test_scheduler_override(tiny_pipelines: dict[str, Path]) -> None:
    generator = _generator(tiny_pipelines["sd21"], scheduler="EulerDiscreteScheduler")
    assert type(generator.load().scheduler).__name__ == "EulerDiscreteScheduler"
    assert generator.identity()["scheduler"]["class"] == "EulerDiscreteScheduler"
    assert generator.generate(["a dog"], [1])[0].size == (32, 32)
    with pytest.raises(ConfigError, match="compatible"):
        _generator(tiny_pipelines["sd21"], scheduler="NoSuchScheduler").identity()


def test_family_defaults() -> None:
    sd3 = DiffusionSettings().resolved()  # the DAR paper's generator; resolving a hub default reads nothing
    assert (sd3.model, sd3.family, sd3.steps, sd3.guidance_scale, sd3.height, sd3.width) == (
        "stabilityai/stable-diffusion-3-medium-diffusers", "sd3", 28, 7.0, 1024, 1024)
    sd21 = DiffusionSettings(family="sd21").resolved()
    assert (sd21.model, sd21.steps, sd21.guidance_scale, sd21.height) == ("stabilityai/stable-diffusion-2-1", 25, 7.5, 768)
    turbo = DiffusionSettings(family="sdxl-turbo", steps=2).resolved()
    assert (turbo.model, turbo.steps, turbo.guidance_scale, turbo.height) == ("stabilityai/sdxl-turbo", 2, 0.0, 512)
    assert DiffusionSettings(dtype="auto").dtype == "auto"
    for bad in ({"family": "sd4"}, {"dtype": "int8"}, {"batch_size": 0}, {"steps": 0}):
        with pytest.raises(ConfigError):
            DiffusionSettings(**bad)  # type: ignore[arg-type]


def test_family_must_match_the_directory(tiny_pipelines: dict[str, Path]) -> None:
    generator = DiffusionGenerator(DiffusionSettings(model=str(tiny_pipelines["sd21"]), family="sd3", **FAST))
    with pytest.raises(ConfigError, match="StableDiffusionPipeline"):
        generator.load()


def test_unloadable_sources_give_actionable_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="model_index.json"):
        DiffusionGenerator(DiffusionSettings(model=str(tmp_path / "empty"), family="sd3")).identity()
    with pytest.raises(HarnessError, match="hf download"):
        DiffusionGenerator(DiffusionSettings(model="nobody/no-such-pipeline"))
    with pytest.raises(HarnessError, match="hf download"):
        DiffusionGenerator(DiffusionSettings(model="nobody/no-such-pipeline", family="sd3")).load()


def test_the_prompt_limit_is_the_long_prompt_encoder_where_the_pipeline_has_one(
    tmp_path: Path, tiny_pipelines: dict[str, Path]
) -> None:
    prompts = ["a red dog", "a red dog " * 40, "a red dog " * 120]  # 3, 120 and 360 words
    assert _generator(tiny_pipelines["sdxl-turbo"]).truncated(prompts) == [False, True, True]  # CLIP's 77
    assert _generator(tiny_pipelines["sd3"]).truncated(prompts) == [False, False, True]  # T5's 256
    assert _generator(write_tiny_sd3(tmp_path / "no-t5", with_t5=False)).truncated(prompts) == [False, True, True]
    other = tmp_path / "other"
    shutil.copytree(tiny_pipelines["sd21"], other)
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionImg2ImgPipeline"}))
    assert _generator(other).truncated(prompts) is None  # a family whose limit is not known: no count at all


def test_truncated_prompts_are_counted_against_that_limit(tiny_pipelines: dict[str, Path], caplog) -> None:
    prompts = ["a red dog", "a red dog " * 40, "a red dog " * 120]  # 3, 120 and 360 words
    sd21 = _generator(tiny_pipelines["sd21"])
    with caplog.at_level("DEBUG", logger="harness.dar"):
        assert sd21.truncated(prompts) == [False, True, True]
        sd21.truncated(prompts)
    assert len([record for record in caplog.records if "image prompts longer than 77" in record.message]) == 1
    assert _generator(tiny_pipelines["sd3"], max_sequence_length=512).truncated(prompts) == [False, False, False]
    assert sd21.pipeline is None  # tokenizer files only


def test_max_sequence_length_reaches_sd3_and_its_identity_only(tiny_pipelines: dict[str, Path]) -> None:
    default = _generator(tiny_pipelines["sd3"])
    longer = _generator(tiny_pipelines["sd3"], max_sequence_length=300)
    assert "max_sequence_length" not in default.identity()  # default SD3 images keep their keys
    assert "max_sequence_length" not in default.settings_record()  # and runs from before the setting resume
    assert longer.identity()["max_sequence_length"] == 300
    assert longer.requests(["a dog"])[0].key != default.requests(["a dog"])[0].key
    long_prompt = ["a red dog " * 100]  # 300 words: T5 reads more of it at 300 tokens than at 256
    assert not np.array_equal(_pixels(longer.generate(long_prompt, [1])[0]), _pixels(default.generate(long_prompt, [1])[0]))
    with pytest.raises(ConfigError, match="SD3 only"):
        _generator(tiny_pipelines["sd21"], max_sequence_length=300)
    with pytest.raises(ConfigError, match="1..512"):
        _generator(tiny_pipelines["sd3"], max_sequence_length=600)
