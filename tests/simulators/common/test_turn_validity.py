"""Invalid turns, as a small instruct model (SmolLM2-135M-Instruct as ``hf-chat``) wrote them: each string below is
what that model returned, replayed by a scripted generator; the bots redraw, fail or keep them as their policy says."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from PIL import Image

from harness.errors import ConfigError
from harness.hashing import derive_seed
from harness.protocols import Generated, RunContext, TracedTurn, TurnFailure
from harness.sources import LiveSource
from harness.turn_validity import InvalidPolicy
from harness.types import Benchmark, Dialogue, DialogueState, SearchSpace
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.prompts import FIELDS, PromptTemplate

LEAKED_ANSWER = "A: no"  # the model continued the prompt's "Q: ... A: ..." pattern
REFUSAL = "I'm sorry for any confusion, but as a chatbot, I don't have the ability to see images."
STATEMENT = "The camera is on a tripod."
TEMPLATE = PromptTemplate("t", "Caption: $caption\n$dialogue\nQ:", FIELDS)
RUN_SEED = 5


class Scripted:
    """Replays fixed strings: ``first`` for the first (greedy) draw of dialogue d (by its caption "caption d"),
    ``redraw(seed)`` for sampled draws; every request is logged with its temperature and seed."""

    def __init__(self, first: dict[str, str], redraw=lambda seed: "is it red?", temperature: float = 0.0) -> None:
        self.first, self.redraw, self.temperature = first, redraw, temperature
        self.requests: list[tuple[str, float, int]] = []

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def identity(self):
        return {"backend": "scripted-smollm", "temperature": self.temperature}

    def load(self, context):
        return None

    def sampled(self, temperature):
        resampler = copy.copy(self)
        resampler.temperature = temperature
        return resampler

    def generate(self, prompts, seeds, images=None):
        outputs = []
        for prompt, seed in zip(prompts, seeds):
            dialogue = prompt.split("caption ")[1].split()[0]
            self.requests.append((dialogue, self.temperature, seed))
            outputs.append(self.redraw(seed) if self.sampling else self.first.get(dialogue, "is it big?"))
        return outputs


class ScriptedVision(Scripted):
    def generate(self, prompts, images, seeds):
        return super().generate(prompts, seeds)


def states(ids=(0, 1, 2)) -> list[DialogueState]:
    return [DialogueState(str(i), f"{i}.png", i, 0, (f"caption {i} of a photo",)) for i in ids]


@pytest.fixture
def benchmark(tmp_path: Path) -> Benchmark:
    for index in range(3):
        Image.new("RGB", (8, 8), (index * 50, 0, 0)).save(tmp_path / f"{index}.png")
    space = SearchSpace(tuple(f"{i}.png" for i in range(3)), tmp_path)
    return Benchmark("tiny", tuple(Dialogue(str(i), f"{i}.png", (f"caption {i} of a photo",)) for i in range(3)),
                     space)


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", cache_dir=tmp_path / "cache", seed=RUN_SEED, progress=False)


def questioner(generator, benchmark, context, **policy) -> LLMQuestioner:
    bot = LLMQuestioner(generator, TEMPLATE, policy=InvalidPolicy(**policy))
    bot.prepare(benchmark, context)
    return bot


def redraw_seed(dialogue: str, attempt: int, role: str = "questioner") -> int:
    return derive_seed(RUN_SEED, role, dialogue, 1, "redraw", attempt) % 2**31


def test_an_empty_question_left_by_a_leaked_answer_is_redrawn_with_a_seeded_sample(benchmark, context):
    generator = Scripted({"1": LEAKED_ANSWER}, redraw=lambda seed: "Q: is the bus red? A: yes")
    asked = questioner(generator, benchmark, context).ask(states())
    assert [str(question) for question in asked] == ["is it big?", "is the bus red?", "is it big?"]
    assert asked[1].rules == ("question-label", "leaked-answer")
    assert asked[1].rejected == ({"attempt": 0, "raw": LEAKED_ANSWER, "text": "", "reason": "empty"},)
    assert generator.requests[3:] == [("1", 0.7, redraw_seed("1", 1))]  # only the invalid one, at 0.7


def test_a_refusal_at_every_draw_fails_the_dialogue_with_the_reason_and_every_draw(benchmark, context):
    generator = Scripted({"0": REFUSAL}, redraw=lambda seed: REFUSAL)
    failure = questioner(generator, benchmark, context).ask(states([0]))[0]
    assert isinstance(failure, TurnFailure)
    assert failure.reason.startswith("questioner output invalid in 3 draws (no question mark); last raw output "
                                     "\"I'm sorry for any confusion")
    assert [entry["attempt"] for entry in failure.trace["rejected"]] == [0, 1, 2]
    assert failure.trace["rejected"][0]["text"] == REFUSAL.rstrip(".") + "?"  # what cleaning alone would have sent
    assert [request[2] for request in generator.requests[1:]] == [redraw_seed("0", 1), redraw_seed("0", 2)]


def test_a_kept_statement_reads_as_a_question_without_its_full_stop_and_is_flagged(benchmark, context):
    generator = Scripted({"0": STATEMENT})
    kept = questioner(generator, benchmark, context, on_invalid="keep").ask(states([0]))[0]
    assert kept == "The camera is on a tripod?"
    assert kept.rules == ("added-question-mark", "invalid:no question mark") and len(generator.requests) == 1


def test_fail_stops_at_the_first_invalid_draw(benchmark, context):
    generator = Scripted({"2": "A: yes"})
    asked = questioner(generator, benchmark, context, on_invalid="fail").ask(states())
    assert isinstance(asked[2], TurnFailure) and "invalid in 1 draws (empty)" in asked[2].reason
    assert len(generator.requests) == 3


def test_redraws_are_cached_and_do_not_depend_on_the_batch_or_the_run_so_far(benchmark, context, tmp_path):
    def script():
        return Scripted({"0": LEAKED_ANSWER, "2": STATEMENT}, redraw=lambda seed: "A: no" if seed % 3 else f"is {seed}?")

    generator = script()
    bot = questioner(generator, benchmark, context, max_resamples=6)
    together = bot.ask(states())
    requests = len(generator.requests)
    assert bot.ask(states()) == together and len(generator.requests) == requests  # every draw came from the cache
    alone = questioner(script(), benchmark, RunContext(device="cpu", cache_dir=tmp_path / "other", seed=RUN_SEED,
                                                       progress=False), max_resamples=6).ask(states([2]))
    assert alone[0] == together[2] and alone[0].rejected == together[2].rejected
    assert together[0] != together[2]  # each dialogue redraws with its own seeds


def test_redraws_sample_at_the_policys_or_the_bots_temperature_and_the_policy_enters_the_identity(benchmark, context):
    bot = questioner(Scripted({"0": LEAKED_ANSWER}, redraw=lambda seed: "is it red?"), benchmark, context,
                     temperature=0.5)
    assert bot.ask(states([0]))[0] == "is it red?"
    assert bot.generator.requests[-1][1] == 0.5
    assert bot.identity()["invalid"] == {"on_invalid": "resample", "max_resamples": 2, "temperature": 0.5}
    sampling = questioner(Scripted({}, temperature=0.9), benchmark, context)
    assert InvalidPolicy().redraw_temperature(sampling.generator) == 0.9
    assert questioner(Scripted({}), benchmark, context, on_invalid="keep").identity()["invalid"] == {
        "on_invalid": "keep"}


def test_an_empty_answer_is_redrawn_and_a_failed_turn_keeps_its_draws_in_the_trace(benchmark, context):
    answerer = VisionAnswerer(ScriptedVision({"0": "Answer:", "1": "Answer:"},
                                             redraw=lambda seed: "red" if seed == redraw_seed("0", 1, "answerer")
                                             else "A:"), TEMPLATE)
    source = LiveSource(questioner(Scripted({}), benchmark, context), answerer)
    source.prepare(benchmark, context)
    turns = source.next_turns(states([0, 1]))
    assert isinstance(turns[0], TracedTurn) and turns[0].text == "is it big? red"
    assert turns[0].trace["answer"]["rejected"] == [{"attempt": 0, "raw": "Answer:", "text": "", "reason": "empty"}]
    assert isinstance(turns[1], TurnFailure) and turns[1].reason.startswith("answerer: answerer output invalid")
    assert turns[1].trace["question"]["text"] == "is it big?"
    assert len(turns[1].trace["answer"]["rejected"]) == 3


def test_a_generator_that_cannot_sample_is_refused_before_it_loads_unless_redraws_are_off():
    class Greedy:
        sampling = False

    with pytest.raises(ConfigError, match="on_invalid=fail or on_invalid=keep"):
        LLMQuestioner(Greedy(), TEMPLATE)
    LLMQuestioner(Greedy(), TEMPLATE, policy=InvalidPolicy("fail"))
    LLMQuestioner(Greedy(), TEMPLATE, policy=InvalidPolicy(max_resamples=0))
    for bad in ({"on_invalid": "retry"}, {"max_resamples": -1}, {"temperature": 0.0}):
        with pytest.raises(ConfigError):
            InvalidPolicy(**bad)


def test_generated_text_pickles_with_its_draws():
    import pickle

    generated = Generated("is it red?", "A: no", ("leaked-answer",), ({"attempt": 0, "raw": "A: no"},))
    again = pickle.loads(pickle.dumps(generated))
    assert (again, again.raw, again.rules, again.rejected) == (generated, "A: no", ("leaked-answer",),
                                                              generated.rejected)
