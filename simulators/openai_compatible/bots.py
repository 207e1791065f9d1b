"""Factories of the bots behind an OpenAI-compatible endpoint (registered as ``openai`` questioner and answerer).

    export OPENAI_API_KEY=...
    harness run --questioner openai --answerer blip2 ...                       # gpt-4o-mini asks, BLIP-2 answers
    harness run --questioner openai --questioner-model gpt-3.5-turbo --questioner-arg temperature=0.5 ...
    harness run --answerer openai --base-url http://localhost:8000/v1 ...     # a local vLLM server, no key needed

The key is read from ``$api_key_env`` when the run starts and never recorded. ``concurrency``, ``max_retries`` and
``timeout`` only change how requests are sent, not what comes back, so they stay out of the response-cache key.
"""

from __future__ import annotations

from harness.turn_validity import InvalidPolicy
from simulators.common.bots import LLMQuestioner, VisionAnswerer
from simulators.common.captioner import VisionCaptioner
from simulators.common.prompts import answerer_template, load_template
from simulators.openai_compatible.backend import OpenAIChatGenerator, OpenAIVisionGenerator


def build_openai_questioner(
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    prompt: str = "questioner",
    temperature: float = 0.0,
    max_tokens: int = 32,
    concurrency: int = 8,
    max_retries: int = 6,
    timeout: float = 60.0,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    resample_temperature: float | None = None,
) -> LLMQuestioner:
    """A questioner asking through chat completions. PlugIR used gpt-3.5-turbo at temperature 0.5 with at most 32
    tokens; our default is greedy (temperature 0) so that a rerun asks the same questions; pass ``temperature=0.5``
    to follow PlugIR (each dialogue's seed then joins the request and the cache key). ``prompt``: a packaged
    template name or a text file."""
    generator = OpenAIChatGenerator(model, base_url=base_url, api_key_env=api_key_env, temperature=temperature,
                                    max_tokens=max_tokens, concurrency=concurrency, max_retries=max_retries,
                                    timeout=timeout)
    return LLMQuestioner(generator, load_template(prompt), clean=clean,
                        policy=InvalidPolicy(on_invalid, max_resamples, resample_temperature))


def build_openai_answerer(
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    prompt: str = "answerer_chat",
    temperature: float = 0.0,
    max_tokens: int = 16,
    concurrency: int = 8,
    max_retries: int = 6,
    timeout: float = 60.0,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
    resample_temperature: float | None = None,
    see_reconstruction: bool = False,
) -> VisionAnswerer:
    """An answerer looking at the target image through a vision chat model (the image goes as a JPEG data URL).
    Greedy by default, like PlugIR's BLIP-2 answerer; ``max_tokens`` 16 is room for a short answer.
    ``see_reconstruction``: the prompt also holds the questioner's reconstructed caption (PlugIR's answerer sees it).
    """
    generator = OpenAIVisionGenerator(model, base_url=base_url, api_key_env=api_key_env, temperature=temperature,
                                      max_tokens=max_tokens, concurrency=concurrency, max_retries=max_retries,
                                      timeout=timeout)
    template, reads_notes = answerer_template(prompt, "answerer_chat", see_reconstruction)
    return VisionAnswerer(generator, template, clean=clean,
                          policy=InvalidPolicy(on_invalid, max_resamples, resample_temperature), reads_notes=reads_notes)


def build_openai_captioner(
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    prompt: str = "captioner",
    max_tokens: int = 40,
    concurrency: int = 8,
    max_retries: int = 6,
    timeout: float = 60.0,
    on_invalid: str = "resample",
    max_resamples: int = 2,
) -> VisionCaptioner:
    """A captioner through a vision chat model (greedy); the image goes as a JPEG data URL."""
    generator = OpenAIVisionGenerator(model, base_url=base_url, api_key_env=api_key_env, temperature=0.0,
                                      max_tokens=max_tokens, concurrency=concurrency, max_retries=max_retries,
                                      timeout=timeout)
    return VisionCaptioner(generator, load_template(prompt), InvalidPolicy(on_invalid, max_resamples))
