"""The registered transformers bots end to end on tiny checkpoints: built by name, prepared on a benchmark, one
output per state, and a repeated call served entirely from the response cache (zero model calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.protocols import Answerer, Questioner, RunContext, TextGenerator, VisionGenerator
from harness.registry import REGISTRY
from harness.types import Benchmark, DialogueState
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.prompts import render_for_state
from simulators.hf.backends import Blip2Generator, CausalChatGenerator, Seq2SeqGenerator
from simulators.hf.bots import (
    DEFAULT_BLIP2_MODEL,
    DEFAULT_CHAT_MODEL,
    DEFAULT_FLAN_MODEL,
    build_blip2_answerer,
    build_flan_questioner,
    build_hf_chat_questioner,
)


def _states(benchmark: Benchmark) -> list[DialogueState]:
    """Every dialogue at its last recorded round (rounds 0 to 2), so prompts differ in length and content."""
    return [
        DialogueState.at_round(dialogue, len(dialogue.turns) - 1, benchmark.search_space.position(dialogue.target))
        for dialogue in benchmark.dialogues
    ]


def _count_calls(generator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the batch size of every ``generate`` call the bot makes."""
    calls: list[int] = []
    original = generator.generate

    def counting(prompts, *rest):
        calls.append(len(prompts))
        return original(prompts, *rest)

    monkeypatch.setattr(generator, "generate", counting)
    return calls


def test_factories_build_without_loading() -> None:
    # Construction is cheap and offline: nothing is read until prepare().
    flan = build_flan_questioner()
    chat = build_hf_chat_questioner()
    blip2 = build_blip2_answerer()
    assert isinstance(flan.generator, Seq2SeqGenerator) and flan.generator.model == DEFAULT_FLAN_MODEL
    assert isinstance(chat.generator, CausalChatGenerator) and chat.generator.model == DEFAULT_CHAT_MODEL
    assert isinstance(blip2.generator, Blip2Generator) and blip2.generator.model == DEFAULT_BLIP2_MODEL
    assert blip2.generator.max_new_tokens == 10 and flan.generator.max_new_tokens == 32
    assert not any(bot.generator.loaded for bot in (flan, chat, blip2))
    assert isinstance(flan, Questioner) and isinstance(blip2, Answerer)
    assert isinstance(flan.generator, TextGenerator) and isinstance(chat.generator, TextGenerator)
    assert isinstance(blip2.generator, VisionGenerator)


def test_registered_names_build_with_recorded_arguments(tiny_flan_t5: Path) -> None:
    questioner, record = REGISTRY.build("questioner", "flan", model=str(tiny_flan_t5), max_new_tokens=8)
    assert isinstance(questioner, LLMQuestioner) and questioner.generator.max_new_tokens == 8
    assert record.resolved_arguments["prompt"] == "questioner" and record.resolved_arguments["batch_size"] == 32
    for kind, name, cls in (("questioner", "hf-chat", LLMQuestioner), ("answerer", "blip2", VisionAnswerer)):
        component, _ = REGISTRY.build(kind, name, model="unused/model")
        assert isinstance(component, cls)


@pytest.mark.parametrize("builder", ["flan", "hf-chat"])
def test_questioner_end_to_end(builder: str, tiny_flan_t5: Path, tiny_causal_lm: Path, bot_benchmark: Benchmark,
                               bot_context: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_flan_t5 if builder == "flan" else tiny_causal_lm
    factory = build_flan_questioner if builder == "flan" else build_hf_chat_questioner
    questioner = factory(str(model), max_new_tokens=12, batch_size=2, on_invalid="keep")  # random weights
    questioner.prepare(bot_benchmark, bot_context)
    calls = _count_calls(questioner.generator, monkeypatch)
    states = _states(bot_benchmark)

    questions = questioner.ask(states)
    assert len(questions) == len(states) and all(isinstance(question, str) for question in questions)
    assert all(question.endswith("?") for question in questions)  # cleaned: one question each
    assert calls == [len(states)]  # one batched call for every dialogue (split into sub-batches inside)
    assert questioner.cache.misses == len(states)

    assert questioner.ask(states) == questions
    assert calls == [len(states)] and questioner.cache.misses == len(states)  # zero new model calls

    identity = questioner.identity()
    assert identity["generator"]["model"] == str(model) and len(identity["generator"]["fingerprint"]) == 64
    assert "$caption" in identity["template"]["text"]


def test_questioner_cache_survives_a_new_process(tiny_flan_t5: Path, bot_benchmark: Benchmark,
                                                 bot_context: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    states = _states(bot_benchmark)
    first = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=6, on_invalid="keep")
    first.prepare(bot_benchmark, bot_context)
    questions = first.ask(states)
    again = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=6, on_invalid="keep")  # a fresh bot over the same cache folder
    again.prepare(bot_benchmark, bot_context)
    calls = _count_calls(again.generator, monkeypatch)
    assert again.ask(states) == questions and calls == []
    changed = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=7, on_invalid="keep")  # other decoding: other cache keys
    changed.prepare(bot_benchmark, bot_context)
    calls = _count_calls(changed.generator, monkeypatch)
    changed.ask(states)
    assert calls == [len(states)]


def test_uncleaned_questioner_returns_the_generator_text(tiny_flan_t5: Path, bot_benchmark: Benchmark,
                                                        bot_context: RunContext) -> None:
    states = _states(bot_benchmark)
    raw = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=6, clean=False, on_invalid="keep")
    raw.prepare(bot_benchmark, bot_context)
    prompts = [render_for_state(raw.template, state) for state in states]
    assert raw.ask(states) == raw.generator.generate(prompts, [0] * len(prompts))


@pytest.mark.parametrize("language_model", ["t5", "opt"])
def test_blip2_answerer_end_to_end(language_model: str, tiny_blip2: Path, tiny_blip2_opt: Path,
                                   bot_benchmark: Benchmark, bot_context: RunContext,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_blip2 if language_model == "t5" else tiny_blip2_opt
    answerer = build_blip2_answerer(str(model), batch_size=2, on_invalid="keep")
    answerer.prepare(bot_benchmark, bot_context)
    calls = _count_calls(answerer.generator, monkeypatch)
    states = _states(bot_benchmark)
    questions = [f"what is in picture {index}?" for index in range(len(states))]

    answers = answerer.answer(states, questions)
    assert len(answers) == len(states) and all(isinstance(answer, str) for answer in answers)
    assert calls == [len(states)] and answerer.cache.misses == len(states)

    assert answerer.answer(states, questions) == answers
    assert calls == [len(states)] and answerer.cache.misses == len(states)  # zero new model calls
    assert answerer.identity()["generator"]["backend"] == "hf-blip2"


def test_blip2_answers_depend_on_the_image_not_the_batch(tiny_blip2: Path, bot_benchmark: Benchmark,
                                                         bot_context: RunContext) -> None:
    states = _states(bot_benchmark)
    questions = ["what is it?"] * len(states)
    batched = build_blip2_answerer(str(tiny_blip2), batch_size=32)
    batched.prepare(bot_benchmark, bot_context)
    single = build_blip2_answerer(str(tiny_blip2), batch_size=1)
    single.prepare(bot_benchmark, RunContext(device="cpu", cache_dir=bot_context.cache_dir / "other", seed=0))
    assert batched.answer(states, questions) == [single.answer([state], ["what is it?"])[0] for state in states]
