from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.errors import DataError
from harness.images import load_rgb
from retrievers.dual_encoders.preprocess import BLIP_224, CLIP_224, CLIP_MEAN, CLIP_STD, ImagePreprocessing


def expected_pixel(rgb: tuple[int, int, int]) -> torch.Tensor:
    value = torch.tensor(rgb, dtype=torch.float32) / 255.0
    return (value - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)


@pytest.mark.parametrize("preprocessing", [BLIP_224, CLIP_224])
def test_solid_colour_gives_exact_normalised_values(preprocessing: ImagePreprocessing) -> None:
    colour = (255, 0, 128)
    pixels = preprocessing([Image.new("RGB", (97, 41), colour)])
    assert pixels.shape == (1, 3, 224, 224) and pixels.dtype == torch.float32
    expected = expected_pixel(colour).view(1, 3, 1, 1).expand_as(pixels)
    assert torch.allclose(pixels, expected, atol=1e-6, rtol=0)


def test_batch_equals_one_by_one_and_mixed_sizes_stack() -> None:
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((30, 50), (64, 64), (90, 20))
    ]
    batch = BLIP_224(images)
    assert batch.shape == (3, 3, 224, 224)
    singles = torch.cat([BLIP_224([image]) for image in images])
    assert torch.equal(batch, singles)


def test_shorter_side_centre_crop_keeps_the_centre_and_square_keeps_everything() -> None:
    red, green = (255, 0, 0), (0, 255, 0)
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :] = red
    pixels[:, 50:150] = green  # the centred 100 x 100 square is green, the side strips red
    image = Image.fromarray(pixels)
    cropped = CLIP_224([image])[0]
    interior = cropped[:, 8:-8, 8:-8]
    assert torch.allclose(interior, expected_pixel(green).view(3, 1, 1).expand_as(interior), atol=1e-6)
    squashed = BLIP_224([image])[0]
    assert torch.allclose(squashed[:, 112, 0], expected_pixel(red), atol=1e-6)  # the red strip survives
    assert torch.allclose(squashed[:, 112, 112], expected_pixel(green), atol=1e-6)


def test_other_sizes_and_identity() -> None:
    preprocessing = BLIP_224.with_size(96)
    assert preprocessing([Image.new("RGB", (10, 10))]).shape == (1, 3, 96, 96)
    assert preprocessing([]).shape == (0, 3, 96, 96)
    assert BLIP_224.identity() != CLIP_224.identity()
    assert BLIP_224.identity()["mean"] == list(CLIP_MEAN)
    with pytest.raises(ValueError, match="resize mode"):
        ImagePreprocessing(size=224, resize="stretch")


def test_load_rgb_converts_modes_and_names_unreadable_files(tmp_path: Path) -> None:
    Image.new("L", (8, 6), 100).save(tmp_path / "grey.png")
    Image.new("RGBA", (5, 5), (1, 2, 3, 4)).save(tmp_path / "alpha.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    images = load_rgb([tmp_path / "grey.png", tmp_path / "alpha.png"])
    assert [image.mode for image in images] == ["RGB", "RGB"]
    assert images[0].size == (8, 6)
    with pytest.raises(DataError, match="broken.jpg"):
        load_rgb([tmp_path / "grey.png", tmp_path / "broken.jpg"])
    with pytest.raises(DataError, match="missing.png"):
        load_rgb([tmp_path / "missing.png"])
