"""The plugir questioner step by step, with a rule-following fake LLM and a toy encoder behind the real view: the
filter's redraws, PlugIR's carried avoid list and its fallback, the KL selection, the candidates shown, the
reconstruction and its paraphrase, seeds independent of the batch, and the trace of every step."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.messages import as_text
from harness.protocols import Generated, RunContext, TurnFailure
from harness.retrieval_view import EncoderView
from harness.types import Benchmark, Dialogue, DialogueState, SearchSpace
from simulators.plugir.questioner import FALLBACK_QUESTION, PlugIRQuestioner, PlugIRSettings, build_plugir
from simulators.plugir.steps import LLMSteps, StepDecoding

SIZE = 40
DIMENSION = 16


class FakeLLM:
    """Follows the step its prompt is for: reconstructs by appending the last answer, answers the filter "yes" for the
    questions in ``answerable`` (else "Uncertain"), and asks ``referring[n]`` when the prompt lists n earlier
    questions of the round (else the last entry), ``plain`` for a candidate-free prompt."""

    def __init__(self, referring: dict[int, str], plain: str = "what is in the corner?",
                 answerable: frozenset[str] = frozenset(), reconstruct_same: bool = False) -> None:
        self.referring, self.plain, self.answerable = referring, plain, answerable
        self.reconstruct_same = reconstruct_same
        self.temperature = 0.0
        self.log: list[str] = []

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def identity(self):
        return {"backend": "fake", "temperature": self.temperature}

    def load(self, context):
        return None

    def with_decoding(self, temperature=None, max_new_tokens=None, top_p=None):
        copied = copy.copy(self)  # shares the log
        if temperature is not None:
            copied.temperature = temperature
        return copied

    def sampled(self, temperature):
        return self.with_decoding(temperature=temperature)

    def generate(self, prompts, seeds):
        outputs = []
        for prompt in prompts:
            text = as_text(prompt)
            last = prompt.messages[-1].content
            self.log.append(text)
            if "[New Caption]:" in text:
                caption, dialogue = last.split("[Caption]: ")[1].split(" [Dialogue]: ")
                answer = dialogue.split("  [New Caption]:")[0].split(", ")[-1]
                outputs.append(caption if self.reconstruct_same else f"{caption} with {answer}")
            elif "Paraphrased:" in text:
                outputs.append("in other words " + last.split("Text: ")[1].split("\n")[0])
            elif "[Context]" in text:
                question = last.split("[Question]\n")[1].split("\n[Answer]")[0]
                outputs.append("yes" if question in self.answerable else "Uncertain")
            elif "[Retrieval Candidates]" in text:
                earlier = sum(1 for line in last.splitlines() if line == "Answer:")
                outputs.append(self.referring.get(earlier, self.referring[max(self.referring)]))
            else:
                outputs.append(self.plain)
        return outputs


class ToyEncoder:
    """A text's embedding is a unit vector drawn from its own hash, unless ``table`` fixes it."""

    def __init__(self, table: dict[str, torch.Tensor] | None = None) -> None:
        self.table = table or {}

    def identity(self):
        return {"toy": sorted(self.table)}

    def encode_texts(self, texts):
        return torch.stack([self.table.get(text, _vector(text)) for text in texts])


def _vector(text: str) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    vector = torch.from_numpy(np.random.default_rng(seed).standard_normal(DIMENSION)).float()
    return torch.nn.functional.normalize(vector, dim=0)


@pytest.fixture
def space(tmp_path: Path) -> tuple[Benchmark, Path, torch.Tensor]:
    paths = tuple(f"img{index:02d}.png" for index in range(SIZE))
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({path: f"caption of image {index}" for index, path in enumerate(paths)}))
    index = torch.stack([_vector(f"image {number}") for number in range(SIZE)])
    dialogues = (Dialogue("0", paths[3], ("a dog on a couch",)), Dialogue("1", paths[7], ("a red bus",)))
    return Benchmark("toy", dialogues, SearchSpace(paths)), captions, index


def questioner(llm: FakeLLM, captions: Path, **settings) -> PlugIRQuestioner:
    steps = LLMSteps(llm, {"reconstruct": StepDecoding(0.0, 64), "paraphrase": StepDecoding(0.7, 64, 0.8),
                           "question": StepDecoding(0.5, 32), "plain_question": StepDecoding(0.5, 32),
                           "filter": StepDecoding(0.0, 10)}, "plugir questioner")
    built = build_plugir(llm="scripted", candidate_captions=str(captions))
    return PlugIRQuestioner(steps, built.templates, PlugIRSettings(**{"top": 20, "skip": 2, "clusters": 4,
                                                                      **settings}), captions)


def prepared(bot: PlugIRQuestioner, benchmark: Benchmark, index: torch.Tensor, cache: Path,
             encoder: ToyEncoder | None = None) -> PlugIRQuestioner:
    bot.prepare(benchmark, RunContext(device="cpu", cache_dir=cache, seed=0, progress=False))
    encoder = encoder or ToyEncoder()
    bot.bind_retrieval(EncoderView(encoder, index, lambda states: list(encoder.encode_texts(
        [state.query_text for state in states]))))
    return bot


def state(benchmark: Benchmark, item: int = 0) -> DialogueState:
    dialogue = benchmark.dialogues[item]
    return DialogueState(dialogue.dialogue_id, dialogue.target, 3 if item == 0 else 7, 0, dialogue.turns,
                         query_note="reconstruction")


def test_the_filter_redraws_answerable_questions_and_the_carried_avoid_list_brings_the_fallback(space, tmp_path):
    benchmark, captions, index = space
    # Candidate 0: a1 and a2 are answerable from the caption, u1 is not and is kept (2 on the avoid list). Candidate
    # 1: a3 is answerable (3 on the list), u2 is not, but the carried list holds exactly 3, so PlugIR's code replaces
    # the candidate by a plain question; answerable too, it becomes the fixed fallback question.
    llm = FakeLLM({0: "is it a1?", 1: "is it a2?", 2: "is it u1?", 3: "is it a3?", 4: "is it u2?"},
                  plain="is it p?", answerable=frozenset({"is it a1?", "is it a2?", "is it a3?", "is it p?"}))
    bot = prepared(questioner(llm, captions, questions=2, select=False), benchmark, index, tmp_path / "cache")
    [question] = bot.ask([state(benchmark)])
    assert isinstance(question, Generated) and question == "is it u1?"
    details = question.details
    assert details["questions"] == ["is it u1?", FALLBACK_QUESTION] and details["chosen"] == 0
    kinds = [(entry["candidate"], entry["kind"], entry.get("question", entry.get("text")), entry.get("answerable"))
             for entry in details["draws"]]
    assert kinds == [(0, "referring", "is it a1?", True), (0, "referring", "is it a2?", True),
                     (0, "referring", "is it u1?", False), (1, "referring", "is it a3?", True),
                     (1, "referring", "is it u2?", False), (1, "plain", "is it p?", True),
                     (1, "fallback", FALLBACK_QUESTION, None)]
    # The avoid list is in the prompts: the last referring draw listed u1 (chosen) and a1, a2, a3 (answerable).
    last_referring = [text for text in llm.log if "[Retrieval Candidates]" in text][-1]
    assert all(f"Question: is it {name}?\nAnswer:" in last_referring for name in ("u1", "a1", "a2", "a3"))


def test_an_unanswerable_plain_question_replaces_the_candidate_and_the_llm_calls_are_counted(space, tmp_path):
    benchmark, captions, index = space
    llm = FakeLLM({0: "is it a1?"}, plain="is it p?", answerable=frozenset({"is it a1?"}))
    bot = prepared(questioner(llm, captions, questions=1, select=False), benchmark, index, tmp_path / "cache")
    [question] = bot.ask([state(benchmark)])
    assert question == "is it p?" and question.details["questions"] == ["is it p?"]
    # 3 referring draws (each prompt lists one more question to avoid) + 3 filter answers, then 1 plain draw + 1
    # filter answer; the same question asked again gets its filter answer from the response cache.
    assert dict(bot.steps.calls) == {"question": 3, "filter": 2, "plain_question": 1}
    usage = bot.usage()
    assert usage["llm_calls_filter"] == 2 and usage["cache_hits"] == 2 and usage["cache_misses"] == 6


def test_selection_keeps_the_question_with_the_smallest_kl(space, tmp_path):
    benchmark, captions, index = space
    caption = "a dog on a couch"
    # "c, is it q2?" embeds exactly as c: its distribution over the candidates does not move (KL 0).
    encoder = ToyEncoder({f"{caption}, is it q2?": _vector(caption)})
    llm = FakeLLM({0: "is it q0?", 1: "is it q1?", 2: "is it q2?", 3: "is it q3?"})
    bot = prepared(questioner(llm, captions, questions=4, filtering=False), benchmark, index, tmp_path / "cache",
                   encoder)
    [question] = bot.ask([state(benchmark)])
    assert question == "is it q2?" and question.details["chosen"] == 2
    kl = question.details["kl"]
    assert kl[2] == pytest.approx(0.0, abs=1e-12) and min(kl) == kl[2] and len(kl) == 4


def test_the_candidates_shown_are_one_lowest_entropy_member_per_cluster(space, tmp_path):
    benchmark, captions, index = space
    bot = prepared(questioner(FakeLLM({0: "is it x?"}), captions, questions=1), benchmark, index, tmp_path / "c")
    [question] = bot.ask([state(benchmark)])
    details = question.details
    assert details["candidate_count"] == 20 and details["reconstruction"] == "a dog on a couch"
    shown = details["candidates"]
    assert len(shown) == 4 and len({entry["cluster"] for entry in shown}) == 4
    assert [entry["rank"] for entry in shown] == sorted(entry["rank"] for entry in shown)
    ranking = torch.argsort(_vector("a dog on a couch") @ index.T, descending=True, stable=True)[:20].tolist()
    assert [entry["position"] for entry in shown] == [ranking[entry["rank"]] for entry in shown]
    assert all(entry["caption"] == f"caption of image {entry['position']}" for entry in shown)
    prompt = next(text for text in bot.steps.generator.log if "[Retrieval Candidates]" in text)
    assert "\n".join(f"{number}. {entry['caption']}" for number, entry in enumerate(shown)) in prompt


def test_outputs_do_not_depend_on_the_batch(space, tmp_path):
    benchmark, captions, index = space
    script = {0: "is it a?", 1: "is it b?", 2: "is it c?"}
    together = prepared(questioner(FakeLLM(script), captions), benchmark, index, tmp_path / "one")
    apart = prepared(questioner(FakeLLM(script), captions), benchmark, index, tmp_path / "two")
    both = together.ask([state(benchmark, 0), state(benchmark, 1)])
    alone = apart.ask([state(benchmark, 1)]) + apart.ask([state(benchmark, 0)])[::-1]
    assert [(str(q), q.details) for q in both] == [(str(q), q.details) for q in (alone[1], alone[0])]


def test_reconstruction_notes_and_the_paraphrase_of_an_unchanged_caption(space, tmp_path):
    benchmark, captions, index = space
    bot = prepared(questioner(FakeLLM({0: "is it x?"}), captions), benchmark, index, tmp_path / "cache")
    after = DialogueState("0", "img03.png", 3, 1, ("a dog on a couch", "is it big? yes"), notes=({},))
    [notes] = bot.write_notes([after])
    assert notes["reconstruction"] == "a dog on a couch with is it big? yes"
    same = prepared(questioner(FakeLLM({0: "is it x?"}, reconstruct_same=True), captions), benchmark, index,
                    tmp_path / "cache2")
    [notes] = same.write_notes([after])
    assert notes["reconstruction"] == "in other words a dog on a couch"
    assert "paraphrased" in notes["reconstruction"].rules
    assert notes["reconstruction"].details["reconstructed"]["text"] == "a dog on a couch"
    plain = prepared(questioner(FakeLLM({0: "is it x?"}), captions, reconstruct=False), benchmark, index,
                     tmp_path / "cache3")
    assert plain.write_notes([after]) == [{"reconstruction": "a dog on a couch, is it big? yes"}]


def test_referring_needs_candidate_captions_and_settings_are_checked():
    with pytest.raises(ConfigError, match="--candidate-captions"):
        build_plugir(llm="scripted")
    assert build_plugir(llm="scripted", referring=False).candidate_captions is None
    for bad in ({"questions": 0}, {"skip": -1}, {"query": "both"}, {"candidates_from": "oracle"},
                {"fallback_question": "tell me more"}):
        with pytest.raises(ConfigError, match="plugir"):
            PlugIRSettings(**bad)


def test_a_candidate_invalid_after_its_redraws_is_left_out_and_the_others_stand(space, tmp_path):
    benchmark, captions, index = space
    # After "is it a?", every prompt lists one earlier question, and the fake answers it with a statement.
    llm = FakeLLM({0: "is it a?", 1: "tell me more"})
    bot = prepared(questioner(llm, captions, questions=3, filtering=False, select=False), benchmark, index,
                   tmp_path / "cache")
    [question] = bot.ask([state(benchmark)])
    assert question == "is it a?" and question.details["questions"] == ["is it a?"]
    left_out = [draw for draw in question.details["draws"] if "left_out" in draw]
    assert [draw["candidate"] for draw in left_out] == [1, 2]
    assert all(len(draw["rejected"]) == 3 for draw in left_out)  # the first draw and its 2 redraws
    every = prepared(questioner(FakeLLM({0: "tell me more"}), captions, questions=2, filtering=False), benchmark,
                     index, tmp_path / "cache2")
    [failure] = every.ask([state(benchmark)])
    assert isinstance(failure, TurnFailure) and "all 2 candidate questions stayed invalid" in failure.reason
    assert len(failure.trace["details"]["draws"]) == 2


def test_a_retriever_that_ranks_nothing_fails_the_dialogue_and_a_short_ranking_skips_selection(space, tmp_path):
    benchmark, captions, index = space
    flat = prepared(questioner(FakeLLM({0: "is it a?"}), captions), benchmark, torch.ones_like(index),
                    tmp_path / "cache", ToyEncoder())
    [failure] = flat.ask([state(benchmark)])
    assert isinstance(failure, TurnFailure) and "ranks nothing for c" in failure.reason
    late = prepared(questioner(FakeLLM({0: "is it a?"}), captions, top=20, skip=5, filtering=False), benchmark,
                    index, tmp_path / "cache2")
    round_eleven = DialogueState("0", "img03.png", 3, 10, ("a dog on a couch",) + ("is it x? no",) * 10,
                                 notes=({},) + ({"reconstruction": "a dog"},) * 10)
    [question] = late.ask([round_eleven])
    assert question.details["candidate_count"] == 1 and question.details["kl"] is None
    assert question.details["selection"].startswith("skipped: N = 1")


def test_a_pickled_questioner_leaves_its_view_behind(space, tmp_path):
    import pickle

    benchmark, captions, index = space
    bot = prepared(questioner(FakeLLM({0: "is it a?"}), captions), benchmark, index, tmp_path / "cache")
    copied = pickle.loads(pickle.dumps(bot))
    assert copied._view is None and bot._view is not None
    assert hash(DialogueState("0", "x", 0, 1, ("a", "b? c"), notes=({}, {"reconstruction": "a"})))
