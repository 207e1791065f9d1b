"""Factories of the transformers-based bots (registered as questioners ``flan`` and ``hf-chat``, answerer ``blip2``).

    harness run --questioner flan --answerer blip2 --benchmark visdial-val ...          # FLAN_BLIP2's pairing
    harness run --questioner flan --questioner-model DIR --answerer-model DIR2 ...      # local folders, offline
    harness run --questioner hf-chat --questioner-arg model=Qwen/Qwen2.5-1.5B-Instruct ...

    questioner = build_flan_questioner("google/flan-t5-xl", dtype="bfloat16")
    questioner.prepare(benchmark, context)
    questioner.ask(states)

Each factory pairs a backend of ``simulators.hf.backends`` with a prompt template (a packaged name or a user's
``.txt`` file) in the bots of ``simulators.common.bots``, which render prompts, cache every response and clean outputs.
"""

from __future__ import annotations

from harness.turn_validity import InvalidPolicy
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.captioner import VisionCaptioner
from simulators.common.prompts import answerer_template, load_template
from simulators.hf.backends import Blip2Generator, CausalChatGenerator, Seq2SeqGenerator

DEFAULT_FLAN_MODEL = "declare-lab/flan-alpaca-xxl"
DEFAULT_CHAT_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
DEFAULT_BLIP2_MODEL = "Salesforce/blip2-flan-t5-xl"


def build_flan_questioner(
    model: str = DEFAULT_FLAN_MODEL,
    prompt: str = "questioner",
    dtype: str = "auto",
    max_new_tokens: int = 32,
    num_beams: int = 1,
    temperature: float = 0.0,
    batch_size: int = 32,
    device: str | None = None,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    resample_temperature: float | None = None,
) -> LLMQuestioner:
    """A questioner on a text-to-text (seq2seq) model. ChatIR's FLAN_BLIP2 dialogues were made with Flan-Alpaca-XXL
    (``declare-lab/flan-alpaca-xxl``, 11B, the default); ``google/flan-t5-xl`` (3B) works too, as does any
    ``AutoModelForSeq2SeqLM`` checkpoint or local folder. Greedy unless ``temperature > 0``."""
    generator = Seq2SeqGenerator(model, dtype, max_new_tokens, num_beams, temperature, batch_size, device)
    return LLMQuestioner(generator, load_template(prompt), clean=clean,
                        policy=InvalidPolicy(on_invalid, max_resamples, resample_temperature))


def build_hf_chat_questioner(
    model: str = DEFAULT_CHAT_MODEL,
    prompt: str = "questioner",
    dtype: str = "auto",
    max_new_tokens: int = 32,
    num_beams: int = 1,
    temperature: float = 0.0,
    batch_size: int = 32,
    device: str | None = None,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    resample_temperature: float | None = None,
) -> LLMQuestioner:
    """A questioner on a decoder-only chat model: the rendered prompt is sent as the user message through the
    checkpoint's chat template. Any ``AutoModelForCausalLM`` checkpoint with a chat template works; the default is
    a small instruct model that fits a laptop GPU. Greedy unless ``temperature > 0``."""
    generator = CausalChatGenerator(model, dtype, max_new_tokens, num_beams, temperature, batch_size, device)
    return LLMQuestioner(generator, load_template(prompt), clean=clean,
                        policy=InvalidPolicy(on_invalid, max_resamples, resample_temperature))


def build_blip2_answerer(
    model: str = DEFAULT_BLIP2_MODEL,
    prompt: str = "answerer",
    dtype: str = "auto",
    max_new_tokens: int = 10,
    batch_size: int = 32,
    device: str | None = None,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    resample_temperature: float | None = None,
    see_reconstruction: bool = False,
) -> VisionAnswerer:
    """An answerer on BLIP-2 looking at the target image, greedy with short answers, as in ChatIR and PlugIR
    (``Salesforce/blip2-flan-t5-xl``; the OPT variants such as ``Salesforce/blip2-opt-2.7b`` work too).
    ``see_reconstruction``: prompt with the questioner's reconstructed caption as PlugIR does ("Question: {c}.
    {question} Answer:"; needs a questioner that writes one, such as ``plugir``)."""
    generator = Blip2Generator(model, dtype, max_new_tokens, batch_size=batch_size, device=device)
    template, reads_notes = answerer_template(prompt, "answerer", see_reconstruction)
    return VisionAnswerer(generator, template, clean=clean,
                          policy=InvalidPolicy(on_invalid, max_resamples, resample_temperature), reads_notes=reads_notes)


def build_blip2_captioner(
    model: str = DEFAULT_BLIP2_MODEL,
    prompt: str = "captioner",
    dtype: str = "auto",
    max_new_tokens: int = 30,
    batch_size: int = 32,
    device: str | None = None,
    on_invalid: str = "resample",
    max_resamples: int = 2,
) -> VisionCaptioner:
    """A captioner on BLIP-2 (greedy, at most ``max_new_tokens``), prompted with a packaged captioning prompt or a
    user's text file: what ``harness data caption`` writes PlugIR's candidate captions with."""
    generator = Blip2Generator(model, dtype, max_new_tokens, batch_size=batch_size, device=device)
    return VisionCaptioner(generator, load_template(prompt), InvalidPolicy(on_invalid, max_resamples))
