"""DAR's reformulations as a small instruct model (SmolLM2-135M-Instruct) wrote them, replayed by a scripted
generator: labels and copied dialogue lines are cleaned away, an S_t with nothing left is redrawn or fails its
dialogue, and the rules are part of DAR's identity."""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image

from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.protocols import RunContext
from harness.types import DialogueState
from retrievers.dar.cleaning import CLEANING_VERSION, clean_caption, clean_image_prompts
from retrievers.dar.retriever import build_dar

PREFIX = ("a red bus on a street", "is it sunny? yes", "what color is the bus? red")
COPIED_DIALOGUE = "Q: is it sunny? A: yes\nQ: what color is the bus? A: red"
LABELLED = "A: A red bus on a sunny street. Q: Is it moving? A: no"


def test_labels_copied_lines_and_leaked_dialogue_are_cleaned_in_order():
    assert clean_caption(LABELLED, PREFIX) == "A red bus on a sunny street."
    assert clean_caption(LABELLED, PREFIX).rules == ("caption-label", "leaked-dialogue")
    copied = clean_caption("Caption: a red bus\n" + COPIED_DIALOGUE + "\nyes\nwhat color is the bus?", PREFIX)
    assert copied == "a red bus" and copied.rules == ("caption-label", "copied-dialogue-line")
    assert clean_caption(COPIED_DIALOGUE, PREFIX) == ""
    assert clean_caption("a red bus on a street", PREFIX[:1]).rules == ()  # S_0 may repeat the caption


def test_image_prompts_lose_markers_labels_and_copied_lines_and_a_shortfall_is_named():
    prompts = clean_image_prompts("1. Prompt 1: a red bus, photo\n2. Q: is it sunny? A: yes\n- a bus at noon",
                                  3, "a red bus", PREFIX)
    assert prompts.text.split("\n") == ["a red bus, photo", "a bus at noon", "a red bus"]
    assert prompts.rules == ("caption-label", "copied-dialogue-line", "filled-with-caption")
    assert clean_image_prompts(COPIED_DIALOGUE, 3, "a red bus", PREFIX) == ""


class SmolLM:
    """Scripted R1/R2 answers: the first draw of a prompt copies the dialogue; redraws give ``redraw``."""

    sampling = False

    def __init__(self, first: str, redraw: str) -> None:
        self.first, self.redraw, self.temperature, self.prompts = first, redraw, 0.0, []

    def identity(self):
        return {"backend": "smollm-script", "temperature": self.temperature}

    def load(self, context):
        return None

    def sampled(self, temperature):
        resampler = copy.copy(self)
        resampler.temperature, resampler.sampling = temperature, True
        return resampler

    def generate(self, prompts, seeds):
        self.prompts.extend(prompts)
        return [self.redraw if self.sampling else self.first for _ in prompts]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("dar-cleaning")
    synthetic = write_synthetic_benchmark(root / "bench", dialogues=3, distractors=3, rounds=1)
    images = root / "images"
    images.mkdir()
    for index in range(3):
        for round_ in range(2):
            Image.new("RGB", (32, 32), (index * 70, round_ * 90, 9)).save(images / f"{index}_{round_}.png")
    return synthetic, write_tiny_blip(root / "blip"), images


def dar_over(setting, generator, tmp_path, **arguments):
    synthetic, blip, images = setting
    dar = build_dar(base="cocoft", model=str(blip), variant="released", llm="scripted", images=str(images),
                    **arguments)
    dar.reformulator.generator = generator
    dar.prepare(synthetic.load().search_space, RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False))
    benchmark = synthetic.load()
    positions = {path: index for index, path in enumerate(benchmark.search_space.paths)}
    states = [DialogueState.at_round(dialogue, 1, positions[dialogue.target]) for dialogue in benchmark.dialogues]
    return dar, states


def test_a_copied_dialogue_is_redrawn_and_the_trace_shows_both_draws(setting, tmp_path):
    generator = SmolLM(COPIED_DIALOGUE, LABELLED)
    dar, states = dar_over(setting, generator, tmp_path)
    batch = dar.rank(states)
    assert not batch.failures
    trace = batch.traces[0]
    assert trace["caption"] == "A red bus on a sunny street." == trace["image_prompts"][0]
    assert trace["reformulation"]["rejected"][0] == {"attempt": 0, "raw": COPIED_DIALOGUE, "text": "",
                                                     "reason": "empty"}
    identity = dar.identity()["reformulator"]
    assert identity["cleaning"] == CLEANING_VERSION
    assert identity["invalid"] == {"on_invalid": "resample", "max_resamples": 2, "temperature": None}


def test_an_s_t_empty_in_every_draw_fails_its_dialogue_and_the_others_are_ranked_as_alone(setting, tmp_path):
    dar, states = dar_over(setting, SmolLM(COPIED_DIALOGUE, COPIED_DIALOGUE), tmp_path, on_invalid="fail")
    batch = dar.rank(states)
    assert sorted(batch.failures) == [0, 1, 2]
    assert batch.failures[0].startswith("DAR caption: DAR reformulation (caption) output invalid in 1 draws (empty)")
    assert batch.traces[0]["reformulation"]["rejected"][0]["raw"] == COPIED_DIALOGUE
    kept, states = dar_over(setting, SmolLM(COPIED_DIALOGUE, LABELLED), tmp_path / "keep", on_invalid="keep")
    assert kept.rank(states).traces[0]["reformulation"]["rules"][-1] == "invalid:empty"


def test_only_the_invalid_dialogue_fails_and_the_others_keep_their_ranks(setting, tmp_path):
    class OneBad(SmolLM):
        def generate(self, prompts, seeds):
            return [COPIED_DIALOGUE if "yellow" in prompt or "purple" in prompt else "a shape on gray"
                    for prompt in prompts]

    dar, states = dar_over(setting, OneBad("", ""), tmp_path, on_invalid="fail")
    batch = dar.rank(states)
    bad = [row for row, state in enumerate(states) if any(word in " ".join(state.query_turns)
                                                          for word in ("yellow", "purple"))]
    good = [row for row in range(len(states)) if row not in bad]
    assert bad and good and sorted(batch.failures) == bad
    alone, _ = dar_over(setting, OneBad("", ""), tmp_path / "alone", on_invalid="fail")
    by_itself = alone.rank([states[row] for row in good])
    assert [batch.ranks[row] for row in good] == list(by_itself.ranks)
    assert [batch.top[row] for row in good] == list(by_itself.top)


def test_cleaning_switched_off_ranks_the_raw_output(setting, tmp_path):
    dar, states = dar_over(setting, SmolLM(LABELLED, LABELLED), tmp_path, clean_reformulations=False)
    batch = dar.rank(states)
    assert batch.traces[0]["caption"] == LABELLED and dar.identity()["reformulator"]["cleaning"] is None
    assert json.dumps(dar.identity())  # the identity stays JSON


def test_k_prompts_always_come_back_kept_invalid_or_uncleaned(tmp_path):
    from harness.prompts import PromptTemplate
    from harness.turn_validity import InvalidPolicy
    from retrievers.dar.reformulation import CAPTION_FIELDS, IMAGE_PROMPT_FIELDS, Reformulator

    templates = (PromptTemplate("c", "$caption $dialogue", CAPTION_FIELDS),
                 PromptTemplate("p", "$caption $count", IMAGE_PROMPT_FIELDS))
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    kept = Reformulator(SmolLM(COPIED_DIALOGUE, ""), *templates, policy=InvalidPolicy("keep"))
    kept.load(context)
    prompts = kept.image_prompts(["a red bus"], 3, [PREFIX])[0]
    assert prompts.text.split("\n") == ["a red bus"] * 3 and prompts.rules[-2:] == ("invalid:empty",
                                                                                     "filled-with-caption")
    raw = Reformulator(SmolLM("one line", ""), *templates, clean=False)
    raw.load(context)
    assert raw.image_prompts(["a red\nbus"], 2, [PREFIX])[0].text.split("\n") == ["one line", "a red bus"]
