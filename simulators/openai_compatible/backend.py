"""Generators behind an OpenAI-compatible chat-completions endpoint (OpenAI itself, vLLM, llama.cpp, Ollama ...).

    export OPENAI_API_KEY=...                                  # read at load(), never stored in identities or logs
    questions = OpenAIChatGenerator("gpt-4o-mini", temperature=0.0, max_tokens=32)
    questions.load(context)
    questions.generate(["prompt one", "prompt two"], seeds=[11, 12])   # -> ["...", TurnFailure("HTTP 503: ...")]
    answers = OpenAIVisionGenerator("gpt-4o-mini", base_url="http://localhost:8000/v1")  # a local server, no key
    answers.generate(prompts, images, seeds)                   # each image goes as a JPEG data URL

A batch runs as one request per prompt on at most ``concurrency`` threads; outputs come back in prompt order.
Failures are sorted by what a retry can change:
  * timeouts, connection errors, HTTP 408, 409, 429 and 5xx are retried ``max_retries`` times with full-jitter
    exponential backoff (0.5 s doubling, capped at 30 s), or after the server's ``Retry-After`` (capped too);
  * HTTP 401 and 403 stop the whole batch (and the run) with a ``HarnessError``: the key is wrong for every later
    call as well;
  * HTTP 400, 404 and 422 stop it too, with the server's message and what to check (the model name, the base URL,
    the request parameters): a wrong model name or an option the server rejects fails every request the same way,
    so recording each dialogue as failed would only hide the reason;
  * any other error (413, ...), an empty response and exhausted retries become a ``TurnFailure`` for that prompt
    only, so the runner records the dialogue as failed and retries it on resume.
"""

from __future__ import annotations

import base64
import copy
import io
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Self

import openai
from PIL import Image

from harness.errors import ConfigError, HarnessError
from harness.images import require_one_image_per_prompt
from harness.messages import Prompt, as_messages
from harness.protocols import RunContext, TurnFailure
from harness.usage import UsageCounter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY_PLACEHOLDER = "unused"  # local servers without auth still need a non-empty key for the client
JPEG_QUALITY = 90
AUTH_STATUSES = frozenset({401, 403})
REJECTED_STATUSES = frozenset({400, 404, 422})  # a malformed request: every other request of the run is alike
RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
STOPPED = TurnFailure("not sent: the batch stopped")  # never returned to a caller: the batch raises instead
MESSAGE_CHARS = 200  # enough of a server's error message to act on, short enough for a run record

Message = dict[str, Any]


@dataclass(frozen=True)
class Backoff:
    """When to retry: full jitter over ``base * 2**attempt`` (AWS's "exponential backoff and jitter"), or the
    server's ``Retry-After``; both capped at ``cap`` seconds so one header cannot stall a run."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return random.uniform(0.0, min(self.cap, self.base * 2**attempt))


@dataclass(frozen=True)
class _Retryable:
    """A failed request that a retry may fix, with the wait the server asked for (if it did)."""

    problem: str
    retry_after: float | None = None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI's), ``Retry-After`` in seconds or as an HTTP date."""
    if (milliseconds := headers.get("retry-after-ms")) is not None:
        try:
            return float(milliseconds) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


class _OpenAIGenerator:
    """What both generators share: options, the client, the retry loop and the bounded-concurrency batch."""

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 32,
        concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 60.0,
        system_prompt: str | None = None,
        top_p: float | None = None,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value, least in (("max_tokens", max_tokens, 1), ("concurrency", concurrency, 1),
                                   ("max_retries", max_retries, 0)):
            if value < least:
                raise ConfigError(f"{self.backend}: {name} must be at least {least}, not {value}")
        if timeout <= 0 or temperature < 0:
            raise ConfigError(f"{self.backend}: timeout must be > 0 and temperature >= 0")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"{self.backend}: top_p must lie in (0, 1], got {top_p!r}")
        self.model = model
        # The URL is passed to the client explicitly (OPENAI_BASE_URL is not consulted) so that the identity always
        # names the server that produced the cached responses.
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._local_server = base_url is not None
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.system_prompt = system_prompt
        self.top_p = top_p  # None: the server's default (not sent)
        self.backoff = backoff
        self._sleep = sleep
        self._client: openai.OpenAI | None = None
        self.usage_counter = UsageCounter()  # every request sent, and the server's token counts
        self._secret = ""  # only to scrub it from server messages; never logged or returned

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def usage(self) -> dict[str, int]:
        """Requests sent (``api_calls``, retries included) and the tokens the server's replies report."""
        return self.usage_counter.snapshot()

    def sampled(self, temperature: float) -> Self:
        """This generator sampling at ``temperature``: what an invalid output is redrawn with."""
        if not temperature > 0:
            raise ConfigError(f"{self.backend}: a sampling temperature must be positive, got {temperature!r}")
        return self.with_decoding(temperature=temperature)

    def with_decoding(self, temperature: float | None = None, max_new_tokens: int | None = None,
                      top_p: float | None = None) -> Self:
        """This generator with other decoding settings, counting into its usage: what a multi-step bot uses for each
        step (``max_new_tokens`` is the request's ``max_tokens``). A copy made before ``load`` opens its own client
        when loaded; one made after shares the original's."""
        if temperature is not None and temperature < 0:
            raise ConfigError(f"{self.backend}: temperature must be >= 0, got {temperature!r}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"{self.backend}: top_p must lie in (0, 1], got {top_p!r}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError(f"{self.backend}: max_tokens must be at least 1, got {max_new_tokens!r}")
        copy_ = copy.copy(self)
        if temperature is not None:
            copy_.temperature = float(temperature)
        if max_new_tokens is not None:
            copy_.max_tokens = int(max_new_tokens)
        if top_p is not None:
            copy_.top_p = float(top_p)
        return copy_

    def identity(self) -> Mapping[str, Any]:
        """What changes the outputs; transport options (concurrency, timeout, retries) and the key stay out."""
        return {
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "system_prompt": self.system_prompt,
            **({"top_p": self.top_p} if self.top_p is not None else {}),
        }

    def load(self, context: RunContext) -> None:
        """Open the client (once); the key comes from ``$api_key_env``."""
        if self._client is not None:
            return
        key = os.environ.get(self.api_key_env, "")
        if not key and not self._local_server:
            raise HarnessError(f"no API key for {self.base_url}: set ${self.api_key_env} "
                               f"(or pass base_url for a server that needs none)")
        self._secret = key
        # max_retries=0: our own loop retries, so that 401 stops the batch and Retry-After is capped.
        self._client = openai.OpenAI(api_key=key or NO_KEY_PLACEHOLDER, base_url=self.base_url, timeout=self.timeout,
                                     max_retries=0)

    def _run_batch(self, count: int, messages_for: Callable[[int], list[Message]],
                   seeds: Sequence[int]) -> list[str | TurnFailure]:
        """One request per item on at most ``concurrency`` threads, outputs in item order. ``messages_for(i)`` runs
        in the worker so images are encoded in parallel and only ``concurrency`` of them are held at once."""
        if self._client is None:
            raise RuntimeError(f"{self!r} was used before load()")
        if len(seeds) != count:
            raise ValueError(f"{count} prompts but {len(seeds)} seeds")
        if count == 0:
            return []
        log.debug("%s: %d requests to %s, %d at a time", self.backend, count, self.base_url, self.concurrency)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, count), thread_name_prefix="openai")
        try:
            stop = threading.Event()  # set on a failure that stops the batch: the other requests would fail alike
            futures = [pool.submit(self._complete, index, messages_for, seeds[index], stop) for index in range(count)]
            wait(futures, return_when=FIRST_EXCEPTION)
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _complete(self, index: int, messages_for: Callable[[int], list[Message]], seed: int,
                  stop: threading.Event) -> str | TurnFailure:
        """One prompt with its retries; gives up early once another request of the batch stopped it."""
        if stop.is_set():
            return STOPPED
        messages = messages_for(index)
        if self.system_prompt is not None:
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        attempt = 0
        try:
            while isinstance(outcome := self._attempt(messages, seed), _Retryable) and attempt < self.max_retries:
                delay = self.backoff.delay(attempt, outcome.retry_after)
                attempt += 1
                log.info("%s: request %d: %s; retry %d of %d in %.2f s", self.backend, index, outcome.problem,
                         attempt, self.max_retries, delay)
                self._sleep(delay)
                if stop.is_set():
                    return STOPPED
        except HarnessError:
            stop.set()
            raise
        if isinstance(outcome, _Retryable):
            return TurnFailure(f"{outcome.problem} (gave up after {attempt + 1} attempts)")
        return outcome

    def _attempt(self, messages: list[Message], seed: int) -> str | TurnFailure | _Retryable:
        """One request: its text, a permanent failure, or a failure worth retrying."""
        assert self._client is not None
        self.usage_counter.add(api_calls=1)
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                **({"top_p": self.top_p} if self.top_p is not None else {}),
                seed=seed,  # honoured by OpenAI (best effort) and vLLM; the bots key sampled outputs on it
            )
        except openai.APIStatusError as error:
            status = error.status_code
            if status in AUTH_STATUSES:
                raise HarnessError(f"authentication failed for {self.base_url} (HTTP {status}): "
                                   f"check the key in ${self.api_key_env}") from None
            problem = f"HTTP {status}: {self._server_message(error)}"
            if status in REJECTED_STATUSES:
                raise HarnessError(
                    f"{self.base_url} rejected a request for model {self.model!r} ({problem}); check the model name, "
                    f"the base URL and the request parameters (temperature {self.temperature:g}, max_tokens "
                    f"{self.max_tokens}, seed)"
                ) from None
            if status in RETRY_STATUSES or status >= 500:
                return _Retryable(problem, parse_retry_after(error.response.headers))
            return TurnFailure(problem)
        except openai.APITimeoutError:
            return _Retryable(f"timed out after {self.timeout:g} s")
        except openai.APIConnectionError:
            return _Retryable(f"cannot connect to {self.base_url}")
        except (ValueError, openai.APIResponseValidationError) as error:  # a 200 with a truncated or non-JSON body
            return _Retryable(f"the reply is not a valid chat completion ({self._scrub(str(error))[:MESSAGE_CHARS]})")
        if not hasattr(response, "choices"):  # a 200 that is no completion at all: a proxy's HTML page, say
            return _Retryable(f"the reply is not a chat completion: {self._scrub(' '.join(str(response).split()))[:80]}")
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.usage_counter.add(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                                   completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
        content = response.choices[0].message.content if response.choices else None
        # A server may echo the request, key included; nothing it sends back is kept with the key in it.
        return self._scrub(content) if content and content.strip() else TurnFailure("empty response")

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "<redacted>") if self._secret else text

    def _server_message(self, error: openai.APIStatusError) -> str:
        """The server's own error message, short, with the key scrubbed in case the server echoes it."""
        body = error.body
        if isinstance(body, Mapping):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, Mapping) else inner
        else:
            message = body
        return self._scrub(" ".join(str(message or error.message).split())[:MESSAGE_CHARS])


class OpenAIChatGenerator(_OpenAIGenerator):
    """A ``TextGenerator`` for questioners (and reformulators): a string prompt is the user message, a role-tagged
    one (``harness.messages``) is sent as its messages."""

    backend = "openai-chat"

    def generate(self, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[str | TurnFailure]:
        return self._run_batch(len(prompts), lambda i: as_messages(prompts[i]), seeds)


class OpenAIVisionGenerator(_OpenAIGenerator):
    """A ``VisionGenerator`` for answerers: the user message holds the image (a JPEG data URL) and the prompt."""

    backend = "openai-vision"

    def identity(self) -> Mapping[str, Any]:
        # The encoding changes what the model sees, so it belongs to the identity.
        return {**super().identity(), "image_encoding": f"jpeg-q{JPEG_QUALITY}"}

    def generate(
        self, prompts: Sequence[str], images: Sequence[Image.Image], seeds: Sequence[int]
    ) -> list[str | TurnFailure]:
        require_one_image_per_prompt(prompts, images)

        def messages_for(i: int) -> list[Message]:
            return [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": jpeg_data_url(images[i])}},
                {"type": "text", "text": prompts[i]},
            ]}]

        return self._run_batch(len(prompts), messages_for, seeds)


def jpeg_data_url(image: Image.Image) -> str:
    """``data:image/jpeg;base64,...`` of ``image`` (JPEG: photos shrink ~5x against PNG, and upload time counts)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
