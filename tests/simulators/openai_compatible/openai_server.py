"""A real local HTTP server speaking enough of OpenAI's chat-completions protocol for the ``openai`` client, with
scripted replies, a record of every request and injectable faults. For the OpenAI backend's tests.

    with FakeOpenAIServer(latency=0.02, models={"test-model"}) as server:   # other model names get a 404
        server.inject("bad prompt", Fault(status=400, message="invalid prompt"))
        server.inject("", Fault(status=429, headers={"Retry-After": "3"}))   # the next request, whatever its prompt
        server.inject("", Fault(drop=True))                                  # the socket closes, no response
        generator = OpenAIChatGenerator("test-model", base_url=server.base_url)
        ...
        assert server.requests[0].headers["authorization"] == "Bearer ..."
        assert server.max_in_flight <= 4

The reply to a prompt is ``reply_for(prompt text)``, so tests know every expected output.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def reply_for(text: str) -> str:
    """The server's deterministic answer to a prompt: a question naming the prompt's hash."""
    return f"is it picture {hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}?"


@dataclass(frozen=True)
class Fault:
    """What to do instead of a normal reply: an HTTP error ``status`` (with ``headers``), a reply after ``delay``
    seconds (``status`` 200: a slow response), a 200 whose content is null (``empty``), closing the connection
    without any response (``drop``), a 200 whose body is ``raw`` bytes of ``content_type`` (a truncated body, a
    proxy's HTML page), or a 200 whose content is ``reply`` (say, text echoing the request's API key)."""

    status: int = 200
    message: str = "injected fault"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    empty: bool = False
    drop: bool = False
    raw: bytes | None = None
    content_type: str = "application/json"
    reply: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    number: int
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Mapping[str, Any]

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def text(self) -> str:
        """The text of the last user message (its text parts, for vision messages)."""
        content = self.messages[-1]["content"]
        if isinstance(content, str):
            return content
        return "".join(part["text"] for part in content if part.get("type") == "text")

    @property
    def image_urls(self) -> list[str]:
        content = self.messages[-1]["content"]
        if isinstance(content, str):
            return []
        return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


class FakeOpenAIServer:
    """``POST /v1/chat/completions`` on 127.0.0.1 (a free port), served from a background thread."""

    def __init__(self, latency: float = 0.0, models: Collection[str] | None = None) -> None:
        self.latency = latency  # every reply waits this long, so concurrent requests overlap
        self.models = None if models is None else frozenset(models)  # None: any model name is served
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: list[tuple[str, Fault]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a handler still sleeping on a timed-out request must not block stop()
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def inject(self, match: str, *faults: Fault) -> None:
        """The next ``len(faults)`` requests whose prompt contains ``match`` get ``faults``, in order ("" matches
        every prompt, so it scripts requests by arrival)."""
        with self._lock:
            self._faults.extend((match, fault) for fault in faults)

    def requests_for(self, match: str) -> list[RecordedRequest]:
        return [request for request in self.requests if match in request.text]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _admit(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[int, Fault | None]:
        """Record the request and take its fault, if one is queued for its prompt."""
        with self._lock:
            request = RecordedRequest(len(self.requests) + 1, path, headers, body)
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            for position, (match, fault) in enumerate(self._faults):
                if match in request.text:
                    del self._faults[position]
                    return request.number, fault
            return request.number, None

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            headers = {name.lower(): value for name, value in self.headers.items()}
            number, fault = server._admit(self.path, headers, body)
            try:
                time.sleep(server.latency + (fault.delay if fault else 0.0))
                model = body.get("model", "")
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                elif fault is not None and fault.drop:
                    self.close_connection = True  # and nothing written: the client sees the socket close
                elif server.models is not None and model not in server.models:
                    # What OpenAI and vLLM answer for an unknown model name.
                    self._send(404, {"error": {"message": f"The model `{model}` does not exist.",
                                               "type": "invalid_request_error", "code": "model_not_found"}})
                elif fault is not None and fault.raw is not None:
                    self._send_bytes(200, fault.raw, fault.content_type)
                elif fault is not None and fault.status != 200:
                    self._send(fault.status, {"error": {"message": fault.message, "type": "injected"}}, fault.headers)
                else:
                    text = RecordedRequest(number, self.path, headers, body).text
                    content = None if fault is not None and fault.empty else reply_for(text)
                    if fault is not None and fault.reply is not None:
                        content = fault.reply
                    self._send(200, _completion(number, model, content))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left; nothing to answer
            finally:
                server._leave()

        def _send(self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
            self._send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

        def _send_bytes(self, status: int, data: bytes, content_type: str,
                        headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; requests are in server.requests

    return Handler


def _completion(number: int, model: str, content: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
