"""Folders of pre-generated images, one per (dialogue, round), as the DAR authors release them and ADaFuSE training
reads them: ``round{r}/{index}.jpg`` sub-folders or flat ``{index}_{round}.jpg`` files (``.png``/``.jpeg`` too),
``index`` being the dialogue's position in its file.

    layout = detect_layout(Path("DAR_IMAGES"))                      # "round" or "flat"
    generated_image_path(Path("DAR_IMAGES"), layout, "17", 3)       # DAR_IMAGES/round3/17.jpg or DAR_IMAGES/17_3.jpg
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError, DataError

LAYOUTS = ("round", "flat")
SUFFIXES = (".jpg", ".png", ".jpeg")


def detect_layout(images_dir: Path) -> str:
    """``round`` when the folder holds ``round{r}/`` sub-folders, else ``flat`` (``{index}_{round}`` files)."""
    if not images_dir.is_dir():
        raise ConfigError(f"--train-images {images_dir} is not a folder")
    if any(path.is_dir() and path.name.startswith("round") and path.name[5:].isdigit() for path in images_dir.iterdir()):
        return "round"
    return "flat"


def generated_image_path(images_dir: Path, layout: str, index: str, round_: int) -> Path:
    """The generated image of dialogue ``index`` at ``round_``; DataError naming the expected files if missing."""
    stems = [images_dir / f"round{round_}" / index] if layout == "round" else [images_dir / f"{index}_{round_}"]
    for stem in stems:
        for suffix in SUFFIXES:
            path = stem.with_name(stem.name + suffix)
            if path.is_file():
                return path
    expected = " or ".join(str(stem.with_name(stem.name + suffix)) for stem in stems for suffix in SUFFIXES[:2])
    raise DataError(images_dir, f"no generated image for dialogue {index}, round {round_}: expected {expected} "
                    f"({layout} layout)")
