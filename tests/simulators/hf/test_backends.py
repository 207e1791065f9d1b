"""The transformers generators on tiny checkpoints loaded through ``from_pretrained``: one output per prompt,
determinism, batch equals one-by-one, identity and fingerprint, device/dtype handling, and clear load errors.

Outputs of random-weight models are gibberish, so no test looks at what the text says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.protocols import RunContext
from simulators.hf.backends import (
    Blip2Generator,
    CausalChatGenerator,
    Seq2SeqGenerator,
    resolve_dtype,
)

# Different lengths on purpose: padding must not change any output.
PROMPTS = [
    "what color is the dog?",
    "a red bus on a street with many people and a tree on the left. Question:",
    "hi",
    "Description: two people sitting at a table.\nQ: is it indoors? A: yes\nQuestion:",
    "is there a cat?",
    "where is the big blue square in the picture?",
    "you cannot see the photo; ask one short question",
]
SEEDS = [101, 102, 103, 104, 105, 106, 107]


def _images(count: int) -> list[Image.Image]:
    colours = [(200, 20, 20), (20, 200, 20), (20, 20, 200), (250, 250, 250), (0, 0, 0), (120, 60, 30), (9, 99, 199)]
    return [Image.new("RGB", (20 + 7 * index, 60 - 5 * index), colours[index % 7]) for index in range(count)]


@pytest.fixture(params=["seq2seq", "causal", "blip2-t5", "blip2-opt"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def model_dir(kind: str, request: pytest.FixtureRequest) -> Path:
    name = {
        "seq2seq": "tiny_flan_t5", "causal": "tiny_causal_lm", "blip2-t5": "tiny_blip2", "blip2-opt": "tiny_blip2_opt"
    }
    return request.getfixturevalue(name[kind])


def _make(kind: str, directory: Path, **kwargs):
    cls = {"seq2seq": Seq2SeqGenerator, "causal": CausalChatGenerator}.get(kind, Blip2Generator)
    return cls(str(directory), **kwargs)


def _generate(generator, prompts, seeds):
    """Text generators get the prompts; BLIP-2 also gets each prompt's own image (the same one whatever the batch)."""
    if isinstance(generator, Blip2Generator):
        images = _images(len(PROMPTS))
        return generator.generate(prompts, [images[PROMPTS.index(prompt)] for prompt in prompts], seeds)
    return generator.generate(prompts, seeds)


def test_one_string_per_prompt_and_deterministic_across_loads(kind: str, model_dir: Path, bot_context) -> None:
    first = _make(kind, model_dir, max_new_tokens=6)
    second = _make(kind, model_dir, max_new_tokens=6)
    first.load(bot_context)
    second.load(bot_context)
    outputs = _generate(first, PROMPTS, SEEDS)
    assert len(outputs) == len(PROMPTS) and all(isinstance(text, str) for text in outputs)
    assert any(outputs), "a tiny model that only ever produces empty text tests nothing"
    assert _generate(second, PROMPTS, SEEDS) == outputs
    assert first.identity() == second.identity()


def test_batched_equals_one_by_one(kind: str, model_dir: Path, bot_context) -> None:
    # batch_size 3 also exercises the split into sub-batches (3 + 3 + 1) and the concatenation order.
    generator = _make(kind, model_dir, max_new_tokens=6, batch_size=3)
    generator.load(bot_context)
    batched = _generate(generator, PROMPTS, SEEDS)
    single = [_generate(generator, [prompt], [seed])[0] for prompt, seed in zip(PROMPTS, SEEDS)]
    assert batched == single


def test_empty_batch(kind: str, model_dir: Path, bot_context) -> None:
    generator = _make(kind, model_dir, max_new_tokens=2)
    generator.load(bot_context)
    empty = generator.generate([], [], []) if isinstance(generator, Blip2Generator) else generator.generate([], [])
    assert empty == []


def test_identity_needs_load_and_records_decoding(kind: str, model_dir: Path, bot_context) -> None:
    generator = _make(kind, model_dir, max_new_tokens=5, num_beams=2)
    with pytest.raises(RuntimeError, match="load"):
        generator.identity()
    with pytest.raises(RuntimeError, match="load"):
        _generate(generator, PROMPTS[:1], SEEDS[:1])
    generator.load(bot_context)
    identity = generator.identity()
    assert identity["model"] == str(model_dir)
    assert identity["dtype"] == "float32"  # "auto" on the CPU
    assert (identity["max_new_tokens"], identity["num_beams"], identity["do_sample"]) == (5, 2, False)
    assert len(identity["fingerprint"]) == 64
    assert identity["backend"].startswith("hf-")
    assert len(_generate(generator, PROMPTS[:2], SEEDS[:2])) == 2  # beam search batches too


def test_fingerprint_follows_content_not_location(tmp_path: Path, tiny_flan_t5: Path, tiny_flan_t5_other: Path,
                                                  bot_context) -> None:
    copy = Path(shutil.copytree(tiny_flan_t5, tmp_path / "copy"))
    prints = []
    for directory in (tiny_flan_t5, copy, tiny_flan_t5_other):
        generator = Seq2SeqGenerator(str(directory))
        generator.load(bot_context)
        prints.append(generator.identity()["fingerprint"])
    assert prints[0] == prints[1] != prints[2]


def test_chat_template_change_changes_fingerprint(tmp_path: Path, tiny_causal_lm: Path, bot_context) -> None:
    copy = Path(shutil.copytree(tiny_causal_lm, tmp_path / "copy"))
    (copy / "chat_template.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    prints = []
    for directory in (tiny_causal_lm, copy):
        generator = CausalChatGenerator(str(directory))
        generator.load(bot_context)
        prints.append(generator.identity()["fingerprint"])
    assert prints[0] != prints[1]


def test_causal_decodes_only_new_tokens(tiny_causal_lm: Path, bot_context) -> None:
    generator = CausalChatGenerator(str(tiny_causal_lm), max_new_tokens=4)
    generator.load(bot_context)
    rendered = generator.render("hello there")
    assert "hello there" in rendered
    output = generator.generate(["hello there"], [0])[0]
    assert len(generator._tokenizer(output, add_special_tokens=False).input_ids) <= 4 + 2  # 4 tokens, re-split


def test_a_local_model_counts_its_generations_and_the_tokenizers_tokens(tiny_flan_t5: Path, bot_context) -> None:
    generator = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=8, batch_size=1)
    generator.load(bot_context)
    outputs = generator.generate(PROMPTS, SEEDS)
    usage = generator.usage()
    tokenizer = generator._tokenizer
    assert usage["model_calls"] == len(PROMPTS)
    assert usage["prompt_tokens"] == sum(len(tokenizer(prompt)["input_ids"]) for prompt in PROMPTS)
    assert len(outputs) == len(PROMPTS) and 0 < usage["completion_tokens"] <= len(PROMPTS) * 8  # max_new_tokens
    generator.sampled(0.7).generate(PROMPTS[:1], SEEDS[:1])
    assert generator.usage()["model_calls"] == len(PROMPTS) + 1  # a redraw copy counts into the same counter


def test_a_redraw_copy_samples_from_the_weights_its_original_loads(tiny_flan_t5: Path, bot_context) -> None:
    greedy = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=8, num_beams=2)
    greedy.resolve(bot_context)  # as DAR's reformulator does: identity known, weights not loaded
    redraws = greedy.sampled(0.7)
    assert not greedy.loaded and redraws.sampling and redraws.identity()["num_beams"] == 1
    redraws.load(bot_context)
    assert greedy.loaded and redraws._model is greedy._model  # one copy of the weights
    sampled = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=8, temperature=0.7)
    sampled.load(bot_context)
    assert redraws.generate(PROMPTS, SEEDS) == sampled.generate(PROMPTS, SEEDS)
    assert not greedy.sampling and greedy.num_beams == 2  # the original is unchanged
    with pytest.raises(ConfigError):
        greedy.sampled(0.0)


def test_a_step_copy_made_before_loading_decodes_its_own_way_from_the_shared_weights(tiny_flan_t5: Path,
                                                                                     bot_context) -> None:
    base = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=8)
    step = base.with_decoding(temperature=0.7, max_new_tokens=4, top_p=0.8)  # made before anything resolves
    step.resolve(bot_context)
    identity = step.identity()
    assert (identity["temperature"], identity["max_new_tokens"], identity["top_p"], identity["num_beams"]) == (
        0.7, 4, 0.8, 1)
    assert "top_p" not in base.identity() and base.identity()["max_new_tokens"] == 8
    step.load(bot_context)
    assert base.loaded and step._model is base._model
    same = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=4, temperature=0.7, top_p=0.8)
    same.load(bot_context)
    assert step.generate(PROMPTS, SEEDS) == same.generate(PROMPTS, SEEDS)
    assert step.sampled(1.2).identity()["top_p"] == 0.8  # a redraw of a step keeps the step's settings
    for bad in ({"temperature": -1.0}, {"top_p": 1.5}, {"max_new_tokens": 0}):
        with pytest.raises(ConfigError):
            base.with_decoding(**bad)


def test_a_role_tagged_prompt_is_flattened_for_seq2seq_and_templated_for_chat(tiny_flan_t5: Path, tiny_causal_lm: Path,
                                                                              bot_context) -> None:
    from harness.messages import Conversation, Message

    conversation = Conversation((Message("system", "Be brief."), Message("user", "hello there")))
    seq2seq = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=4)
    seq2seq.load(bot_context)
    assert seq2seq.generate([conversation], [0]) == seq2seq.generate([conversation.flattened()], [0])
    chat = CausalChatGenerator(str(tiny_causal_lm), max_new_tokens=4)
    chat.load(bot_context)
    assert chat.render(conversation) == chat._tokenizer.apply_chat_template(
        conversation.as_dicts(), add_generation_prompt=True, tokenize=False)
    assert "Be brief." in chat.render(conversation) and chat.render("hello there") != chat.render(conversation)


def test_sampling_is_seeded(tiny_flan_t5: Path, bot_context) -> None:
    generator = Seq2SeqGenerator(str(tiny_flan_t5), temperature=1.5, max_new_tokens=8)
    greedy = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=8)
    assert generator.sampling and not greedy.sampling
    generator.load(bot_context)
    state = torch.random.get_rng_state()
    first = generator.generate(PROMPTS, SEEDS)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert generator.generate(PROMPTS, SEEDS) == first
    assert generator.identity()["do_sample"] is True and generator.identity()["temperature"] == 1.5
    other_seeds = [[seed + 1 for seed in SEEDS], [seed + 2 for seed in SEEDS]]
    assert any(generator.generate(PROMPTS, seeds) != first for seeds in other_seeds)


def test_a_sampled_output_does_not_depend_on_its_batch(kind: str, model_dir: Path, bot_context) -> None:
    # A resumed run, or another --batch-size, hands a prompt other neighbours: its sample must stay the same.
    sampled = _make(kind, model_dir, max_new_tokens=6, temperature=1.0, batch_size=3)
    sampled.load(bot_context)
    alone = [_generate(sampled, [prompt], [seed])[0] for prompt, seed in zip(PROMPTS, SEEDS)]
    assert _generate(sampled, PROMPTS, SEEDS) == alone
    reordered = list(range(len(PROMPTS)))[::-1]
    assert _generate(sampled, [PROMPTS[i] for i in reordered], [SEEDS[i] for i in reordered]) == alone[::-1]
    sampled.batch_size = len(PROMPTS)
    assert _generate(sampled, PROMPTS, SEEDS) == alone
    greedy = _make(kind, model_dir, max_new_tokens=6)
    greedy.load(bot_context)
    assert _generate(greedy, PROMPTS, SEEDS) != alone  # it did sample


def test_sampling_with_beams_is_refused() -> None:
    with pytest.raises(ConfigError, match="num_beams=1"):
        Seq2SeqGenerator("google/flan-t5-xl", temperature=0.5, num_beams=2)


def test_load_once_per_device(tiny_flan_t5: Path, bot_context, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = Seq2SeqGenerator(str(tiny_flan_t5))
    calls = []
    original = generator._load
    monkeypatch.setattr(generator, "_load", lambda dtype: calls.append(dtype) or original(dtype))
    generator.load(bot_context)
    generator.load(bot_context)
    assert calls == [torch.float32]
    assert not generator._model.training


def test_own_device_and_dtype_win_over_context(tiny_flan_t5: Path, tmp_path: Path) -> None:
    generator = Seq2SeqGenerator(str(tiny_flan_t5), dtype="bfloat16", device="cpu", max_new_tokens=3)
    generator.load(RunContext(device="cuda:7", cache_dir=tmp_path))  # the context's device is never touched
    assert generator._model.device.type == "cpu"
    assert next(generator._model.parameters()).dtype == torch.bfloat16
    assert generator.identity()["dtype"] == "bfloat16"
    assert len(generator.generate(PROMPTS[:2], SEEDS[:2])) == 2


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto", "cuda") is torch.bfloat16
    assert resolve_dtype("auto", "cuda:1") is torch.bfloat16
    assert resolve_dtype("float16", "cpu") is torch.float16


@pytest.mark.parametrize(
    "arguments",
    [{"dtype": "float64"}, {"max_new_tokens": 0}, {"num_beams": 0}, {"batch_size": 0}, {"temperature": -1.0},
     {"temperature": float("nan")}, {"batch_size": 2.5}],
)
def test_bad_arguments(arguments: dict) -> None:
    with pytest.raises(ConfigError):
        Seq2SeqGenerator("google/flan-t5-xl", **arguments)


def test_length_mismatches(tiny_blip2: Path, tiny_flan_t5: Path, bot_context) -> None:
    text = Seq2SeqGenerator(str(tiny_flan_t5))
    vision = Blip2Generator(str(tiny_blip2))
    text.load(bot_context)
    vision.load(bot_context)
    with pytest.raises(ValueError, match="seeds"):
        text.generate(PROMPTS[:2], SEEDS[:1])
    with pytest.raises(ValueError, match="images"):
        vision.generate(PROMPTS[:2], _images(1), SEEDS[:2])


@pytest.mark.parametrize(
    ("cls", "option"),
    [(Seq2SeqGenerator, "--questioner-model"), (CausalChatGenerator, "--questioner-model"),
     (Blip2Generator, "--answerer-model")],
)
def test_offline_hub_failure_says_what_to_do(cls, option: str, bot_context) -> None:
    generator = cls("nobody-here/no-such-model")
    with pytest.raises(HarnessError) as caught:
        generator.load(bot_context)
    message = str(caught.value)
    assert "nobody-here/no-such-model" in message and option in message and "--local-dir" in message
    assert not generator.loaded


def test_directory_without_config(tmp_path: Path, bot_context) -> None:
    with pytest.raises(HarnessError, match="config.json"):
        Seq2SeqGenerator(str(tmp_path)).load(bot_context)


def test_chat_model_needs_a_chat_template(tmp_path: Path, tiny_causal_lm: Path, bot_context) -> None:
    copy = Path(shutil.copytree(tiny_causal_lm, tmp_path / "plain"))
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(HarnessError, match="chat template"):
        CausalChatGenerator(str(copy)).load(bot_context)


def test_hub_id_loads_from_the_local_cache(tmp_path: Path, tiny_flan_t5: Path, bot_context,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id already in the Hugging Face cache loads offline, and is fingerprinted by its snapshot's files."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--flan-t5"
    shutil.copytree(tiny_flan_t5, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    from_hub = Seq2SeqGenerator("tiny-org/flan-t5", max_new_tokens=4)
    from_folder = Seq2SeqGenerator(str(tiny_flan_t5), max_new_tokens=4)
    from_hub.load(bot_context)
    from_folder.load(bot_context)
    assert from_hub.identity()["fingerprint"] == from_folder.identity()["fingerprint"]
    assert from_hub.generate(PROMPTS, SEEDS) == from_folder.generate(PROMPTS, SEEDS)
