"""Image preprocessing for dual encoders: PIL resize, then one batched normalisation into a (N, 3, H, W) tensor.

    images = load_rgb([Path("a.jpg"), Path("b.png")])
    pixels = BLIP_224(images)            # float32, shape (2, 3, 224, 224)
    BLIP_224.identity()                  # goes into embedding-cache keys

BLIP resizes the whole image to a square (no crop); CLIP resizes the shorter side and centre-crops. Both use PIL's
bicubic filter, which is what the original torchvision pipelines call on PIL images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

RESIZE_MODES = ("square", "shorter-side-center-crop")
INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

# Decoding JPEGs dominates indexing time and PIL releases the GIL while decoding, so threads pay off.


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an encoder wants its pixels; for encoder authors and for cache keys (``identity``)."""

    size: int
    resize: str = "square"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize!r}; use one of {', '.join(RESIZE_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {', '.join(INTERPOLATIONS)}")
        if self.size < 1:
            raise ValueError(f"image size must be positive, got {self.size}")

    def identity(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def with_size(self, size: int) -> ImagePreprocessing:
        return replace(self, size=size)

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize every image, then scale to [0, 1] and normalise the whole batch at once: (N, 3, size, size)."""
        if not images:
            return torch.zeros((0, 3, self.size, self.size), dtype=torch.float32)
        resized = np.stack([np.asarray(self._resize(image.convert("RGB")), dtype=np.uint8) for image in images])
        pixels = torch.from_numpy(resized).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return pixels.sub_(mean).div_(std).contiguous()

    def _resize(self, image: Image.Image) -> Image.Image:
        filter_ = INTERPOLATIONS[self.interpolation]
        if self.resize == "square":
            return image.resize((self.size, self.size), filter_)
        width, height = image.size
        # Shorter side to `size`, longer side scaled and truncated, then a centred crop with rounded offsets:
        # the arithmetic of torchvision's Resize(int) + CenterCrop that CLIP's released pipeline uses.
        if width <= height:
            new_width, new_height = self.size, int(self.size * height / width)
        else:
            new_width, new_height = int(self.size * width / height), self.size
        image = image.resize((new_width, new_height), filter_)
        left = round((new_width - self.size) / 2.0)
        top = round((new_height - self.size) / 2.0)
        return image.crop((left, top, left + self.size, top + self.size))


BLIP_224 = ImagePreprocessing(size=224, resize="square")
# Salesforce/blip-itm-large-coco's own processor (preprocessor_config.json): 384 x 384, bicubic, CLIP mean and std.
BLIP_384 = BLIP_224.with_size(384)
CLIP_224 = ImagePreprocessing(size=224, resize="shorter-side-center-crop")
