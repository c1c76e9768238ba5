"""A fault-injecting, OpenAI-compatible Chat Completions server for tests.

```python
with FakeOpenAI(offline_bridge(seed=7), faults=Faults(rate=0.3, seed=1)) as srv:
    cfg = {..., "provider": "openai", "base_url": srv.base_url}
    ...
    srv.requests        # every request: path, headers (lower-cased names), body, fault
```

* ``POST /v1/chat/completions`` answers with ``responder(body, headers) -> str`` (header
  names lower-cased), or ``-> dict`` ``{"content": str | None, "tool_calls": [{"name",
  "arguments"}]}`` for an answer with native tool calls (``message.tool_calls``, arguments as
  a JSON string, ``finish_reason: tool_calls``); ``GET /v1/models`` lists one model.
* :func:`tool_responder` answers requests with ``tools`` like a model: natively, or like a
  server without a tool parser (the call as JSON in the content, as llama.cpp does, or in
  Hermes/Qwen ``<tool_call>`` tags).
* Faults, drawn with a seeded RNG per chat request with probability ``rate``, of kinds:
  ``429`` (with ``Retry-After``), ``500``, ``slow`` (answers after ``slow_s``, beyond a short
  client timeout), ``truncate`` (half the answer, ``finish_reason: length`` and, like a real
  server that stopped at the budget, ``completion_tokens`` = ``max_tokens``), ``malformed``
  (half the answer, ``finish_reason: stop``: broken JSON), ``schema`` (valid JSON that breaks
  the schema: a key dropped, one added).
* ``reject_json_schema=True`` emulates llama.cpp: HTTP 500 mentioning json_schema/grammar
  for any request with ``response_format.type == "json_schema"``; ``reject_json_object=True``
  answers HTTP 400 to ``json_object`` (forcing plain text).
* ``enforce_max_tokens=True`` cuts answers longer than ``max_tokens`` (4 chars/token)
  and reports ``finish_reason: length`` like a real server.
* ``outage_s`` > 0: every chat request in the first ``outage_s`` seconds after the first one
  fails (``outage_kind``: ``503``, or ``drop``: the connection is closed without an answer).
  The ``drop`` kind can also be drawn as a fault (not in ``ALL_FAULTS``).
* ``reject_params={"temperature": message}``: HTTP 400 naming the parameter (OpenAI's
  wording and ``param`` field) for any request that sends it, as reasoning models do.
* ``context_window=N``: prompt (4 chars/token) + ``max_tokens`` must fit N tokens, or the
  server answers the way ``context_style`` says: ``vllm`` / ``openai`` / ``llamacpp`` (their
  HTTP 400 wordings and fields), or ``fill`` (no error: the answer stops where the context is
  full, ``finish_reason: length``, like llama.cpp with an unbounded budget).
* ``reasoning``: ``think`` (``<think>...</think>`` before the answer), ``close_only`` (only
  the closing tag, as DeepSeek-R1 / QwQ emit), ``field`` (``reasoning_content``). The
  reasoning holds ``reasoning_text``, a decoy JSON draft that must never be parsed.
* :func:`offline_bridge` answers like the offline provider: task from the
  ``X-AgentSkiller-Task`` header, context from the prompt's input-data block, feedback and
  round from the repair messages. Steps run with ``provider: openai`` against it produce the
  same answers as with ``provider: offline``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    # http.server listens with a backlog of 5: a burst of connections beyond it (16 jobs'
    # requests at once) lost SYNs and retried a second later, as no real server makes a client do
    request_queue_size = 1024


Responder = Callable[[dict, dict], "str | dict"]

ALL_FAULTS = ("429", "500", "slow", "truncate", "malformed", "schema")
TRANSPORT_FAULTS = ("429", "500", "slow")
EXTRA_FAULTS = ("drop",)
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Faults:
    rate: float = 0.0
    kinds: tuple[str, ...] = ALL_FAULTS
    seed: int = 0
    retry_after_s: float = 0.0
    slow_s: float = 1.5
    reject_json_schema: bool = False
    reject_json_object: bool = False
    enforce_max_tokens: bool = True
    outage_s: float = 0.0
    outage_kind: str = "503"
    reject_params: dict[str, str] = field(default_factory=dict)
    context_window: int | None = None
    context_style: str = "vllm"
    reasoning: str | None = None
    reasoning_text: str = 'Let me draft it first: {"decoy": true, "name": "DECOY"}. Hmm, better:'

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_FAULTS) - set(EXTRA_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")


@dataclass
class Recorded:
    path: str
    method: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    fault: str | None = None
    status: int = 200
    t: float = field(default_factory=time.monotonic)


def offline_bridge(seed: int) -> Responder:
    """Answer every request with the offline provider's handler for its task."""
    from agentskiller.llm.base import parse_feedback
    from agentskiller.llm.offline.provider import run_handler
    from agentskiller.prompts import extract_context

    def respond(body: dict, headers: dict) -> str:
        task = headers.get("x-agentskiller-task")
        if not task:
            raise ValueError("request without X-AgentSkiller-Task header")
        messages = body.get("messages") or []
        feedback: list[str] = []
        rnd = 0
        for m in messages:
            fb = parse_feedback(m.get("content")) if m.get("role") == "user" else None
            if fb is not None:
                rnd += 1
                feedback = fb
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        if last_user is None or parse_feedback(last_user.get("content")) is None:
            feedback = []
        return run_handler(seed, task, messages, extract_context(messages), feedback, rnd)

    return respond


TOOL_STYLES = ("native", "json", "tags")


def tool_responder(
    style: str = "native",
    calls: list[dict] | Callable[[dict], list[dict]] | None = None,
    preface: str = "Let me look that up.",
) -> Responder:
    """A model with tools. A request that offers ``tools`` and whose last message is not a
    tool result is answered with ``calls`` (``[{"name", "arguments"}]``, or a function of the
    request body; default: the first offered tool with no arguments), as ``style`` says:

    * ``native``: ``message.tool_calls`` (a server with a tool parser);
    * ``json``: the content is the JSON of the call (a list for several), the way llama.cpp
      without a tool-call template answers ``tool_choice: auto``;
    * ``tags``: ``preface`` and then one ``<tool_call>{...}</tool_call>`` per call (Hermes, Qwen).

    Otherwise the answer is text: ``Done: <the last tool result>`` (or ``Hello.``).
    """
    if style not in TOOL_STYLES:
        raise ValueError(f"unknown tool style {style!r}")

    def respond(body: dict, headers: dict) -> str | dict:
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        last = messages[-1] if messages else {}
        if not tools or last.get("role") == "tool" or body.get("tool_choice") == "none":
            results = [m for m in messages if m.get("role") == "tool"]
            return f"Done: {results[-1]['content']}" if results else "Hello."
        todo = calls(body) if callable(calls) else calls
        if todo is None:
            todo = [{"name": tools[0]["function"]["name"], "arguments": {}}]
        if style == "native":
            return {"content": None, "tool_calls": todo}
        if style == "json":
            return json.dumps(todo[0] if len(todo) == 1 else todo)
        tags = "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in todo)
        return f"{preface}\n{tags}"

    return respond


def _break_schema(text: str) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj:
        obj.pop(next(iter(obj)))
        obj["__injected_fault__"] = True
        return json.dumps(obj)
    return "[]"


class FakeOpenAI:
    def __init__(
        self, responder: Responder | None = None, faults: Faults | None = None, model: str = "fake-model"
    ) -> None:
        self.responder = responder or (lambda body, headers: "ok")
        self.faults = faults or Faults()
        self.model = model
        self.requests: list[Recorded] = []
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._n = 0
        self._first_chat: float | None = None
        self._base_url: str | None = None
        #: set from outside (benchmarks/chaos.py) to take the endpoint down for a while
        self.down = False

    # ------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """The server's URL (still known after stop(), for checking error messages)."""
        assert self._base_url is not None, "server not started"
        return self._base_url

    def start(self) -> FakeOpenAI:
        srv = _Server(("127.0.0.1", 0), self._handler_class())
        srv.daemon_threads = True
        srv.block_on_close = False  # slow-fault threads must not delay shutdown
        self._server = srv
        self._base_url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -------------------------------------------------------------- helpers
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.rstrip("/") == CHAT_PATH]

    def _draw_fault(self) -> str | None:
        with self._lock:
            if self.faults.rate > 0 and self._rng.random() < self.faults.rate:
                return self._rng.choice(list(self.faults.kinds))
        return None

    def _in_outage(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._first_chat is None:
                self._first_chat = now
            if self.down:
                return True
            return self.faults.outage_s > 0 and now - self._first_chat < self.faults.outage_s

    @staticmethod
    def prompt_tokens(body: dict) -> int:
        return sum(len(str(m.get("content") or "")) for m in body.get("messages") or []) // 4

    def _context_error(self, body: dict) -> dict | None:
        """The HTTP 400 payload of a request that does not fit ``context_window``, or None."""
        window, style = self.faults.context_window, self.faults.context_style
        if window is None or style == "fill":
            return None
        prompt = self.prompt_tokens(body)
        budget = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if style == "vllm" and prompt + budget > window:
            return {
                "object": "error",
                "type": "BadRequestError",
                "code": 400,
                "message": f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt + budget} tokens ({prompt} in the messages, {budget} in the completion). Please reduce "
                "the length of the messages or completion.",
            }
        if style == "openai" and prompt > window:
            return {
                "message": f"This model's maximum context length is {window} tokens. However, your messages "
                f"resulted in {prompt} tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        if style == "llamacpp" and prompt > window:
            return {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": window,
            }
        return None

    def _completion(
        self,
        body: dict,
        text: str,
        finish_reason: str,
        reasoning: str | None = None,
        billed: int | None = None,
        tool_calls: list[dict] | None = None,
    ) -> dict:
        with self._lock:
            self._n += 1
            n = self._n
        prompt = self.prompt_tokens(body)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        if tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_fake_{n}_{i}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]),
                    },
                }
                for i, c in enumerate(tool_calls)
            ]
            if finish_reason == "stop":
                finish_reason = "tool_calls"
        completion = (
            billed if billed is not None else (len(text) + len(reasoning or "") + len(str(tool_calls or ""))) // 4
        )
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout fault)

            def _drop(self) -> None:
                """Close the connection without an answer (the client sees a connection error)."""
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

            def _record(self, body: Any, raw: bytes) -> Recorded:
                rec = Recorded(
                    path=self.path,
                    method=self.command,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    raw=raw,
                )
                with fake._lock:
                    fake.requests.append(rec)
                return rec

            def do_GET(self) -> None:
                self._record(None, b"")
                if self.path.rstrip("/") == "/v1/models":
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": fake.model, "object": "model", "created": 0, "owned_by": "fake"}],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                rec = self._record(body, raw)
                if self.path.rstrip("/") != CHAT_PATH:
                    rec.status = 404
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if not isinstance(body, dict) or not body.get("messages"):
                    rec.status = 400
                    return self._send(400, {"error": {"message": "messages is required", "type": "invalid_request"}})
                if fake._in_outage():
                    rec.fault = f"outage_{fake.faults.outage_kind}"
                    if fake.faults.outage_kind == "drop":
                        rec.status = 0
                        return self._drop()
                    rec.status = 503
                    return self._send(503, {"error": {"message": "service unavailable (outage)", "type": "overloaded"}})
                for param, message in fake.faults.reject_params.items():
                    if param in body:
                        rec.status = 400
                        return self._send(
                            400,
                            {
                                "error": {
                                    "message": message,
                                    "type": "invalid_request_error",
                                    "param": param,
                                    "code": "unsupported_parameter",
                                }
                            },
                        )
                ctx_error = fake._context_error(body)
                if ctx_error is not None:
                    rec.status = 400
                    return self._send(400, ctx_error if "object" in ctx_error else {"error": ctx_error})
                rf = (body.get("response_format") or {}).get("type")
                if rf == "json_schema" and fake.faults.reject_json_schema:
                    rec.status = 500  # what llama-server answers (llama.cpp issue #11847)
                    return self._send(
                        500,
                        {
                            "error": {
                                "code": 500,
                                "type": "server_error",
                                "message": 'Either "json_schema" or "grammar" can be specified, but not both',
                            }
                        },
                    )
                if rf == "json_object" and fake.faults.reject_json_object:
                    rec.status = 400
                    return self._send(
                        400,
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "param": "response_format",
                                "message": "response_format type json_object is not supported",
                            }
                        },
                    )
                fault = fake._draw_fault()
                rec.fault = fault
                if fault == "429":
                    rec.status = 429
                    return self._send(
                        429,
                        {"error": {"message": "Rate limit reached (injected)", "type": "rate_limit"}},
                        {"Retry-After": f"{fake.faults.retry_after_s:g}"},
                    )
                if fault == "500":
                    rec.status = 500
                    return self._send(
                        500, {"error": {"message": "internal server error (injected)", "type": "server_error"}}
                    )
                if fault == "drop":
                    rec.status = 0
                    return self._drop()
                if fault == "slow":
                    time.sleep(fake.faults.slow_s)
                try:
                    reply = fake.responder(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception as exc:  # a responder bug shows up as a 500 the test can see
                    rec.status = 500
                    return self._send(500, {"error": {"message": f"responder failed: {type(exc).__name__}: {exc}"}})
                calls = None
                if isinstance(reply, dict):
                    calls, text = reply.get("tool_calls") or None, reply.get("content") or ""
                else:
                    text = reply
                finish = "stop"
                limit = body.get("max_tokens") or body.get("max_completion_tokens")
                billed = None
                if fault == "truncate":
                    text, finish = text[: len(text) // 2], "length"
                    billed = int(limit) if limit else None
                elif fault == "malformed":
                    text = text[: max(1, len(text) // 2)]
                elif fault == "schema":
                    text = _break_schema(text)
                if fake.faults.enforce_max_tokens and limit and len(text) // 4 > int(limit):
                    text, finish = text[: int(limit) * 4], "length"
                if fake.faults.context_window is not None and fake.faults.context_style == "fill":
                    room = max(0, fake.faults.context_window - fake.prompt_tokens(body))
                    if len(text) // 4 > room:
                        text, finish = text[: room * 4], "length"
                reasoning, style = fake.faults.reasoning_text, fake.faults.reasoning
                if style == "think":
                    text = f"<think>\n{reasoning}\n</think>\n\n{text}"
                elif style == "close_only":
                    text = f"{reasoning}\n</think>\n\n{text}"
                self._send(
                    200, fake._completion(body, text, finish, reasoning if style == "field" else None, billed, calls)
                )

        return Handler
