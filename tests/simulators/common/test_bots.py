"""The generic bots over fake generators: caching, seeds, failures, cleaning, image identity."""

from pathlib import Path

import pytest
from PIL import Image

from harness.protocols import RunContext, TurnFailure
from harness.types import Benchmark, Dialogue, DialogueState, SearchSpace
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.prompts import FIELDS, PromptTemplate


class CountingText:
    def __init__(self, sampling: bool = False, fail_first: set[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.sampling = sampling
        self.fail_first = set(fail_first)

    def identity(self):
        return {"backend": "counting", "sampling": self.sampling}

    def sampled(self, temperature):
        return self

    def load(self, context):
        return None

    def generate(self, prompts, seeds):
        self.calls.append(list(prompts))
        outputs = []
        for prompt, seed in zip(prompts, seeds):
            if prompt in self.fail_first:
                self.fail_first.discard(prompt)
                outputs.append(TurnFailure("injected"))
            else:
                outputs.append(f"Question: what about item {prompt.split()[3]}{seed % 7 if self.sampling else ''}? Answer: x")
        return outputs


class CountingVision:
    sampling = False

    def __init__(self) -> None:
        self.images: list = []

    def identity(self):
        return {"backend": "counting-vision"}

    def sampled(self, temperature):
        return self

    def load(self, context):
        return None

    def generate(self, prompts, images, seeds):
        self.images.extend(images)
        return [f"Answer: {image.getpixel((0, 0))[0]}" for image in images]


def states(count: int, caption: str = "a photo") -> list[DialogueState]:
    return [DialogueState(str(i), f"{i}.png", i, 0, (f"{caption} {i}",)) for i in range(count)]


@pytest.fixture
def benchmark(tmp_path: Path) -> Benchmark:
    for index in range(3):
        Image.new("RGB", (8, 8), (index * 50, 0, 0)).save(tmp_path / f"{index}.png")
    space = SearchSpace(tuple(f"{i}.png" for i in range(3)), tmp_path)
    dialogues = tuple(Dialogue(str(i), f"{i}.png", (f"a photo {i}",)) for i in range(3))
    return Benchmark("tiny", dialogues, space)


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", cache_dir=tmp_path / "cache", seed=5, progress=False)


TEMPLATE = PromptTemplate("t", "Caption: $caption\n$dialogue\nQ:", FIELDS)


def test_second_ask_makes_no_model_call_and_duplicates_are_generated_once(benchmark, context):
    generator = CountingText()
    questioner = LLMQuestioner(generator, TEMPLATE)
    questioner.prepare(benchmark, context)
    batch = states(3) + [states(1)[0]]
    first = questioner.ask(batch)
    assert len(generator.calls) == 1 and len(generator.calls[0]) == 3
    assert questioner.ask(batch) == first and len(generator.calls) == 1
    assert first[0] == "what about item 0?"  # cleaned: label and leaked answer removed


def test_failures_are_not_cached_and_are_retried(benchmark, context):
    prompt = TEMPLATE.render(caption="a photo 1", dialogue="(no questions asked yet)")
    generator = CountingText(fail_first={prompt})
    questioner = LLMQuestioner(generator, TEMPLATE)
    questioner.prepare(benchmark, context)
    outputs = questioner.ask(states(3))
    assert isinstance(outputs[1], TurnFailure) and isinstance(outputs[0], str)
    again = questioner.ask(states(3))
    assert isinstance(again[1], str) and generator.calls[-1] == [prompt]


def test_sampled_outputs_are_cached_per_seed(benchmark, context):
    generator = CountingText(sampling=True)
    questioner = LLMQuestioner(generator, TEMPLATE, clean=False)
    questioner.prepare(benchmark, context)
    round_one = DialogueState("0", "0.png", 0, 0, ("a photo 0",))
    round_two = DialogueState("1", "0.png", 0, 0, ("a photo 0",))  # same prompt, other dialogue -> other seed
    questioner.ask([round_one, round_two])
    assert len(generator.calls[0]) == 2
    assert questioner.ask([round_two, round_one]) and len(generator.calls) == 1


def test_answerer_sees_the_target_image_and_keys_on_its_content(benchmark, context):
    generator = CountingVision()
    answerer = VisionAnswerer(generator, PromptTemplate("a", "$caption. Question: $question Answer:", FIELDS))
    answerer.prepare(benchmark, context)
    answers = answerer.answer(states(3), ["is it red?"] * 3)
    assert answers == ["0", "50", "100"]
    assert answerer.answer(states(3), ["is it red?"] * 3) == answers and len(generator.images) == 3
    Image.new("RGB", (8, 8), (200, 0, 0)).save(benchmark.search_space.image_root / "2.png")
    fresh = VisionAnswerer(generator, PromptTemplate("a", "$caption. Question: $question Answer:", FIELDS))
    fresh.prepare(benchmark, context)
    assert fresh.answer(states(3), ["is it red?"] * 3) == ["0", "50", "200"] and len(generator.images) == 4
