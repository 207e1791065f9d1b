"""A tiny benchmark with real PNG images and plain-English dialogues, for ``harness demo`` and end-to-end tests.

    >>> synthetic = write_synthetic_benchmark(Path("/tmp/synthetic"), dialogues=4, distractors=4)  # doctest: +SKIP
    >>> synthetic.load().dialogues[0].turns[1]  # doctest: +SKIP
    'what color is the circle? red'

Each image is one shape (a colour, a shape, a size, a position) on a gray background; every image has a different
combination. The dialogues describe their target in a small lowercase vocabulary, so a text-image retriever has
something to match and later rounds narrow the candidates down. The same arguments always write the same bytes.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.chatir import load_chatir_benchmark
from harness.types import Benchmark

SIZE = 64
BACKGROUND = (128, 128, 128)
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 40),
    "purple": (140, 50, 170),
    "orange": (245, 140, 20),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 8, "large": 15}  # half-widths in pixels
POSITIONS = {"left": (16, 32), "right": (48, 32), "top": (32, 16), "bottom": (32, 48), "center": (32, 32)}
PLACES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
MAX_ROUNDS = 10  # the number of distinct questions _questions knows how to ask


@dataclass(frozen=True)
class Shape:
    """What one synthetic image shows."""

    colour: str
    shape: str
    size: str
    position: str


@dataclass(frozen=True)
class SyntheticBenchmark:
    """The files ``write_synthetic_benchmark`` wrote: a ChatIR-format dialogue file, a search-space list and the
    image root the list's paths resolve under."""

    dialogue_file: Path
    search_space_file: Path
    image_root: Path

    def load(self, name: str = "synthetic") -> Benchmark:
        """The benchmark as the runner sees it (any number of rounds is accepted)."""
        return load_chatir_benchmark(
            self.dialogue_file, self.search_space_file, self.image_root, name=name, expected_turns=None
        )


def write_synthetic_benchmark(
    directory: Path, dialogues: int = 12, distractors: int = 12, rounds: int = 10, seed: int = 0
) -> SyntheticBenchmark:
    """Write ``dialogues`` targets and ``distractors`` other images under ``directory`` with one dialogue of
    ``rounds`` rounds per target (registered as fixture ``synthetic-benchmark``)."""
    combinations = [Shape(*values) for values in itertools.product(COLOURS, SHAPES, SIZES, POSITIONS)]
    total = dialogues + distractors
    if dialogues < 1 or distractors < 0 or total > len(combinations):
        raise ValueError(f"need 1 or more dialogues and 0 or more distractors, at most {len(combinations)} in all")
    if not 0 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be between 0 and {MAX_ROUNDS}, got {rounds}")
    rng = random.Random(seed)
    shown = rng.sample(combinations, total)  # image i shows shown[i]; the first `dialogues` are the targets
    directory = Path(directory)
    names = [f"synthetic/{number:012d}.png" for number in range(1, total + 1)]
    order = rng.sample(range(total), total)  # which file number each image gets, so targets are spread out
    for shape, position in zip(shown, order, strict=True):
        target = directory / names[position]
        target.parent.mkdir(parents=True, exist_ok=True)
        _draw(shape).save(target, format="PNG")
    records = [
        {"img": names[order[index]], "dialog": [_caption(shape), *_questions(shape, rng)[:rounds]]}
        for index, shape in enumerate(shown[:dialogues])
    ]
    dialogue_file = directory / "dialogues.json"
    search_space_file = directory / "search_space.json"
    dialogue_file.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    search_space_file.write_text(json.dumps(sorted(names), indent=1) + "\n", encoding="utf-8")
    return SyntheticBenchmark(dialogue_file, search_space_file, directory)


def _draw(shape: Shape) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    (x, y), half, fill = POSITIONS[shape.position], SIZES[shape.size], COLOURS[shape.colour]
    box = (x - half, y - half, x + half, y + half)
    if shape.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape.shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x, y - half), (x - half, y + half), (x + half, y + half)], fill=fill)
    return image


def _caption(shape: Shape) -> str:
    # The caption names only the shape, so the rounds have colour, size and position left to tell.
    return f"a {shape.shape} on a gray background"


def _questions(shape: Shape, rng: random.Random) -> list[str]:
    """Ten "question? answer" rounds about ``shape`` in a shuffled order (the order is drawn from ``rng``)."""
    other_colour = rng.choice([colour for colour in COLOURS if colour != shape.colour])
    other_shape = rng.choice([name for name in SHAPES if name != shape.shape])
    other_position = rng.choice([position for position in POSITIONS if position != shape.position])
    rounds = [
        f"what color is the {shape.shape}? {shape.colour}",
        f"is it big? {'yes' if shape.size == 'large' else 'no'}",
        f"where is it? {PLACES[shape.position]}",
        f"is it {other_colour}? no",
        "is there more than one shape? no",
        "is the background gray? yes",
        f"is it {PLACES[other_position]}? no",
        f"is it a {other_shape}? no",
        f"what size is it? {shape.size}",
        f"is it a {shape.colour} {shape.shape}? yes",
    ]
    rng.shuffle(rounds)
    return rounds
