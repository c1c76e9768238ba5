"""The ``openai`` provider: Chat Completions through the official SDK, any base URL.

Size: over 400 lines because each way a real endpoint fails (transport, refused parameter, response format, context length, truncation) is classified here, in one place, from the same exception.

Reliability lives here, not in the SDK (``max_retries=0``):

* Transport failures (timeouts, connection errors, 408/409/429, 5xx) are retried with
  exponential backoff and jitter, honouring ``Retry-After`` / ``retry-after-ms``, for up to
  ``llm.retry_window_s`` of total time (and at most ``llm.max_retries`` retries when set).
  Then :class:`LLMTransportError` is raised, never :class:`LLMError`: an outage must fail the
  job, not quarantine the unit. Once one request gave up, the others of this provider give
  up at their next retry instead of waiting out a window each.
* A 400/422 is read: a context-length error raises :class:`LLMContextLengthError` with the
  token counts (or, when only the answer budget is too big, is retried once with the budget
  that fits); a parameter the model rejects (``temperature`` on reasoning models, ``seed``,
  ``max_tokens`` for ``max_completion_tokens``) is dropped once with a warning; only an error
  naming ``response_format`` / ``json_schema`` makes structured output degrade from
  ``json_schema`` to ``json_object`` to plain text; anything else raises
  :class:`LLMRequestError`.
* Truncation (``finish_reason == "length"``) is retried with a doubled ``max_tokens`` (up to
  4x), unless the answer stopped short of the budget: then the context window is full and a
  bigger budget cannot help.
* Reasoning (``reasoning_content`` / ``reasoning`` fields, ``<think>`` blocks) is split from
  the answer; only the answer is returned for parsing.
* Chat calls (:meth:`LLMClient.chat`) send ``tools`` and ``tool_choice`` and read
  ``message.tool_calls``. A server without a tool parser (llama.cpp without a tool-call
  template, for one) writes the call into the text instead; then the calls to offered tools
  are parsed from the answer (:func:`.chat.parse_content_tool_calls`: JSON
  ``{"name", "arguments"}`` and its variants, ``<tool_call>`` tags), cut from it, and the
  response says so (``tool_call_fallback``; ``finish_reason`` becomes ``tool_calls``).

What was learned about a model (working response format, dropped parameters) is kept in
``<llm.cache_dir>/endpoints.json`` (:mod:`.endpoint_memory`), so later jobs start with it.
Every attempt that did not give the answer is reported to ``request.on_attempt``.

The ``openai`` package is imported when this provider is built, so offline runs never pay
for it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from .base import (
    Attempt,
    LLMConfig,
    LLMContextLengthError,
    LLMError,
    LLMRequestError,
    LLMTransportError,
    ProviderRequest,
    ProviderResponse,
    estimate_tokens,
    messages_text,
    schema_name,
)
from .chat import id_offset, normalize_tool_calls, parse_content_tool_calls
from .endpoint_memory import EndpointMemory, ModelQuirks, endpoint_id
from .extract import split_reasoning
from .slots import SlotPool

log = logging.getLogger("agentskiller.llm.openai")

DEFAULT_ENDPOINT = "https://api.openai.com/v1"
#: Sent with every request: harmless for real servers, lets test servers dispatch.
TASK_HEADER = "X-AgentSkiller-Task"
MODES = ("json_schema", "json_object", "text")
TRUNCATION_GROWTH_CAP = 4
#: Connecting should be quick even when answers are slow: an unreachable host is retried
#: within the window instead of hanging for the whole read timeout.
CONNECT_TIMEOUT_S = 10.0
#: An answer budget below this is useless; a context error that leaves less is "prompt too big".
MIN_ANSWER_TOKENS = 64

# A 400/422 names the structured-output feature (OpenAI, vLLM, SGLang, Ollama wordings).
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json schema|json_object|structured output", re.IGNORECASE)
# llama-server answers a json_schema it cannot handle with HTTP 500 naming the grammar.
_FORMAT_WORDS_500 = re.compile(r"response_format|json_schema|json schema|grammar", re.IGNORECASE)
# How OpenAI, vLLM, SGLang, llama.cpp, TGI and Ollama word "the request does not fit".
_CONTEXT_WORDS = re.compile(
    r"maximum context length|context_length_exceeded|context length|context window|too many tokens"
    r"|exceeds? the available context|exceed_context_size|prompt is too long|input is too long"
    r"|maximum input length|max_model_len|longer than the model",
    re.IGNORECASE,
)
#: Optional sampling parameters a model may refuse; dropped (max_tokens: renamed) on a 400.
DROPPABLE = ("temperature", "seed", "top_p")
_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
_REJECT_WORDS = re.compile(
    r"unsupported|not supported|does not support|not allowed|unrecognized|unknown (?:parameter|field)"
    r"|extra (?:inputs|fields)|only the default",
    re.IGNORECASE,
)


class _FormatRejected(Exception):
    """The server does not support the response_format we sent."""


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error recorded"
    status = getattr(exc, "status_code", None)
    msg = getattr(exc, "message", None) or str(exc)
    name = type(exc).__name__
    return f"{name} (HTTP {status}): {msg}" if status else f"{name}: {msg}"


def _body_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    try:
        text = json.dumps(body) if not isinstance(body, str) else body
    except (TypeError, ValueError):
        text = str(body)
    return f"{getattr(exc, 'message', '')} {text}"


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:  # HTTP-date form
        return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def context_limits(exc: Any) -> dict[str, int]:
    """Token counts a context-length error gives, as far as the server says them:
    ``window`` (the model's context), ``requested`` (prompt + budget), ``prompt``, ``completion``."""
    text = _body_text(exc)
    out: dict[str, int] = {}
    body = getattr(exc, "body", None)
    if isinstance(body, dict):  # llama.cpp: {"n_prompt_tokens": .., "n_ctx": ..}
        for src, dst in (("n_ctx", "window"), ("n_prompt_tokens", "prompt")):
            if isinstance(body.get(src), int):
                out[dst] = body[src]
    patterns = (
        ("window", r"maximum context length is (\d+)"),
        ("window", r"context (?:length|window|size) (?:is |of )?(\d+)"),
        ("window", r"max_model_len[^\d]{0,20}(\d+)"),
        ("requested", r"(?:you )?requested (\d+) tokens"),
        ("prompt", r"messages resulted in (\d+) tokens"),
        ("prompt", r"(\d+) in the messages"),
        ("prompt", r"(\d+) (?:input|prompt) tokens"),
        ("completion", r"(\d+) in the completion"),
    )
    for name, pat in patterns:
        m = re.search(pat, text, re.IGNORECASE)
        if m and name not in out:
            out[name] = int(m.group(1))
    return out


def _rejected_param(exc: Any, sent: dict[str, Any]) -> str | None:
    """The request parameter a 400/422 refuses, if it is one we may drop or rename."""
    candidates = [*DROPPABLE, *_TOKEN_PARAMS]
    param = getattr(exc, "param", None)
    if isinstance(param, str) and param in candidates and param in sent:
        return param
    text = _body_text(exc)
    if not _REJECT_WORDS.search(text):
        return None
    for name in candidates:
        if name in sent and re.search(rf"\b{name}\b", text):
            return name
    return None


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        cfg: LLMConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import openai  # lazy: see module docstring

        self._openai = openai
        self.cfg = cfg
        self.endpoint = cfg.base_url or DEFAULT_ENDPOINT
        self.label = endpoint_id(self.endpoint)  # for messages: never a user:password part
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if not key:
            if cfg.base_url is None:
                raise LLMRequestError(
                    f"llm.provider is openai but environment variable {cfg.api_key_env or '(none)'} "
                    f"holding the API key is not set (or set llm.base_url for a local server)"
                )
            key = "sk-no-key-required"  # local servers ignore it, the SDK insists on one
        # timeout_s bounds the wait for one answer (read); connecting fails fast and is retried.
        timeout = openai.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, CONNECT_TIMEOUT_S))
        self.client = openai.OpenAI(api_key=key, base_url=self.endpoint, timeout=timeout, max_retries=0)
        self._sleep = sleep
        self._clock = clock
        self._jitter = random.Random()  # timing only; never affects answers
        self._lock = threading.Lock()
        self._memory = EndpointMemory(
            cfg.cache_dir, self.endpoint, read=cfg.cache_mode != "off", write=cfg.cache_mode == "read_write"
        )
        self._quirks: dict[str, ModelQuirks] = self._memory.load()
        self._gave_up: LLMTransportError | None = None
        # llm.max_in_flight: one lock-file slot per request on the wire, across all jobs
        self._slots = SlotPool.for_cache(cfg.cache_dir, cfg.max_in_flight)

    # ---------------------------------------------------------------- public
    def cache_salt(self, request: ProviderRequest) -> dict:
        return {}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # pragma: no cover - closing must never mask the real error
            pass

    def learned_mode(self, model: str) -> str | None:
        """The response format that last worked for ``model`` (None = not learned yet)."""
        return self.quirks(model).response_format

    def quirks(self, model: str) -> ModelQuirks:
        with self._lock:
            return self._quirks.get(model, ModelQuirks()).model_copy(deep=True)

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        if self._gave_up is not None:
            raise LLMTransportError(f"{request.task}: not sent, the endpoint is down: {self._gave_up}")
        modes = self._modes(request)
        last = ""
        for i, mode in enumerate(modes):
            try:
                resp = self._complete_in_mode(request, mode)
            except _FormatRejected as exc:
                last = str(exc)
                nxt = modes[i + 1] if i + 1 < len(modes) else None
                log.warning(
                    "%s does not accept response_format %s for model %s (task %s): %s%s",
                    self.label,
                    mode,
                    request.model,
                    request.task,
                    exc,
                    f"; falling back to {nxt}" if nxt else "",
                )
                continue
            if (
                request.schema is not None
                and self.cfg.response_format == "auto"
                and self.learned_mode(request.model) != mode
            ):
                self._learn(request.model, lambda q, m=mode: setattr(q, "response_format", m))
            return resp
        raise LLMRequestError(
            f"{request.task}: {self.label} rejected every response format {list(modes)} for model {request.model}; "
            f"last error: {last}"
        )

    # -------------------------------------------------------------- internals
    def _learn(self, model: str, change: Callable[[ModelQuirks], None]) -> None:
        with self._lock:
            q = self._quirks.setdefault(model, ModelQuirks())
            change(q)
            snapshot = q.model_copy(deep=True)
        self._memory.save(model, snapshot)

    def _report(self, request: ProviderRequest, attempt: Attempt) -> None:
        if request.on_attempt is not None:
            request.on_attempt(attempt)

    def _modes(self, request: ProviderRequest) -> tuple[str, ...]:
        if request.schema is None:
            return ("text",)
        if self.cfg.response_format != "auto":
            return (self.cfg.response_format,)
        learned = self.learned_mode(request.model)
        return MODES[MODES.index(learned) :] if learned in MODES else MODES

    def _messages(self, request: ProviderRequest, mode: str) -> list[dict]:
        msgs = [dict(m) for m in request.messages]
        if request.schema_json is None or mode == "json_schema":
            return msgs
        # Without server-side schema enforcement the model must see the schema itself.
        # It goes into the system message (not the user turn, which test servers parse,
        # nor a second system message, which some chat templates refuse).
        note = (
            "Respond with a single JSON object only, valid against this JSON Schema:\n```json\n"
            + json.dumps(request.schema_json, ensure_ascii=False)
            + "\n```"
        )
        if msgs and msgs[0].get("role") == "system" and isinstance(msgs[0].get("content"), str):
            msgs[0]["content"] = msgs[0]["content"].rstrip() + "\n\n" + note
        else:
            msgs.insert(0, {"role": "system", "content": note})
        return msgs

    def _complete_in_mode(self, request: ProviderRequest, mode: str) -> ProviderResponse:
        messages = self._messages(request, mode)
        max_tokens = request.max_tokens
        cap = request.max_tokens * TRUNCATION_GROWTH_CAP
        while True:
            resp, max_tokens, latency = self._create(request, messages, mode, max_tokens)
            choice = resp.choices[0]
            msg = choice.message
            content = msg.content or getattr(msg, "refusal", None) or ""
            think, answer = split_reasoning(content)
            # vLLM/SGLang reasoning parsers and DeepSeek: reasoning_content; OpenRouter, newer vLLM: reasoning.
            field_reasoning = getattr(msg, "reasoning_content", None) or getattr(msg, "reasoning", None)
            parts = [p for p in (field_reasoning, think) if isinstance(p, str) and p.strip()]
            usage = getattr(resp, "usage", None)
            pt = getattr(usage, "prompt_tokens", None)
            ct = getattr(usage, "completion_tokens", None)
            pt = int(pt) if pt is not None else estimate_tokens(messages_text(messages))
            if choice.finish_reason == "length":
                ct_known = ct is not None
                ct = int(ct) if ct_known else estimate_tokens(content + "".join(parts))
                self._report(
                    request, Attempt("truncated", pt, ct, latency, f"finish_reason=length with max_tokens={max_tokens}")
                )
                if ct_known and ct < 0.9 * max_tokens:
                    # The server stopped before the budget: a bigger budget cannot help.
                    raise LLMContextLengthError(
                        f"{request.task}: the prompt is too big for model {request.model} at {self.label}: the "
                        f"answer was cut off after {ct} tokens with max_tokens={max_tokens}, so the context window "
                        f"is full (prompt {pt} + answer {ct} = {pt + ct} tokens), or the server caps answers below "
                        f"max_tokens (llama.cpp --n-predict, Ollama num_predict). Use a model with a longer "
                        f"context window, raise the server's limit, or give this step smaller inputs"
                    )
                if max_tokens >= cap:
                    raise LLMError(
                        f"{request.task}: answer from {self.label} truncated (finish_reason=length) "
                        f"even with max_tokens={max_tokens}"
                    )
                max_tokens = min(cap, max_tokens * 2)
                log.warning("task %s: answer truncated; retrying with max_tokens=%d", request.task, max_tokens)
                continue
            finish = choice.finish_reason
            calls, fallback = None, False
            if request.chat:
                answer, calls, fallback = self._tool_calls(request, msg, answer)
                if fallback:
                    finish = "tool_calls"
            return ProviderResponse(
                text=answer,
                model=request.model,
                prompt_tokens=pt,
                completion_tokens=int(ct) if ct is not None else estimate_tokens(content),
                finish_reason=finish,
                reasoning="\n\n".join(parts) or None,
                tool_calls=calls,
                tool_call_fallback=fallback,
            )

    def _tool_calls(self, request: ProviderRequest, msg: Any, answer: str) -> tuple[str, list[dict] | None, bool]:
        """``(content, tool calls, parsed from the text?)`` of a chat answer."""
        raw = []
        for tc in getattr(msg, "tool_calls", None) or []:
            fn = getattr(tc, "function", None)
            name = getattr(fn, "name", None)
            if not isinstance(name, str) or not name:
                log.warning("task %s: ignoring a tool call without a function name: %r", request.task, tc)
                continue
            args = getattr(fn, "arguments", None)
            if not isinstance(args, str):  # some servers send an object
                args = json.dumps(args if args is not None else {}, ensure_ascii=False)
            raw.append(
                {"id": getattr(tc, "id", None), "type": "function", "function": {"name": name, "arguments": args}}
            )
        offset = id_offset(request.messages)
        if raw:
            return answer, normalize_tool_calls(raw, offset), False
        if not request.tools or request.tool_choice == "none":
            return answer, None, False
        found = parse_content_tool_calls(answer, request.tools)
        if found is None:
            return answer, None, False
        log.info(
            "task %s: model %s at %s wrote %d tool call(s) into its text (no tool parser on the server?): parsed %s%s",
            request.task,
            request.model,
            self.label,
            len(found.calls),
            ", ".join(c["name"] for c in found.calls),
            f"; ignored calls to tools not offered: {', '.join(found.ignored)}" if found.ignored else "",
        )
        return found.content or "", normalize_tool_calls(found.calls, offset), True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after  # capped by what is left of the retry window
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * (2**attempt))
        return base * (0.5 + 0.5 * self._jitter.random())  # "equal jitter": spread, yet grows

    def _kwargs(self, request: ProviderRequest, messages: list[dict], mode: str, max_tokens: int) -> dict[str, Any]:
        q = self.quirks(request.model)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "extra_headers": {TASK_HEADER: request.task},
            q.max_tokens_param: max_tokens,
        }
        if "temperature" not in q.dropped_params:
            kwargs["temperature"] = request.temperature
        if "seed" not in q.dropped_params:
            kwargs["seed"] = request.seed
        if request.tools:
            kwargs["tools"] = request.tools
            kwargs["tool_choice"] = request.tool_choice or "auto"
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(request.schema), "schema": request.schema_json, "strict": False},
            }
        elif mode == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def _drop_param(self, request: ProviderRequest, param: str, exc: Any) -> None:
        if param in _TOKEN_PARAMS:
            other = _TOKEN_PARAMS[1 - _TOKEN_PARAMS.index(param)]
            self._learn(request.model, lambda q: setattr(q, "max_tokens_param", other))
            what = f"sending {other} instead"
        else:
            self._learn(request.model, lambda q: q.dropped_params.append(param))
            what = "sending requests without it from now on"
        log.warning(
            "model %s at %s rejects parameter %s (task %s: %s); %s",
            request.model,
            self.label,
            param,
            request.task,
            _describe(exc),
            what,
        )

    def _context_error(self, request: ProviderRequest, exc: Any, limits: dict[str, int], max_tokens: int) -> str:
        known = []
        if "window" in limits:
            known.append(f"context window {limits['window']} tokens")
        if "prompt" in limits:
            known.append(f"prompt {limits['prompt']} tokens")
        if "requested" in limits:
            known.append(f"requested {limits['requested']} tokens in all")
        known.append(f"answer budget max_tokens={max_tokens}")
        return (
            f"{request.task}: the prompt is too big for model {request.model} at {self.label} "
            f"({', '.join(known)}). Use a model with a longer context window or smaller inputs for this step. "
            f"Server said: {_describe(exc)}"
        )

    def _create(
        self, request: ProviderRequest, messages: list[dict], mode: str, max_tokens: int
    ) -> tuple[Any, int, float]:
        """One answer: ``(response, max_tokens used, latency of the successful attempt)``."""
        oa = self._openai
        window = self.cfg.retry_window_s
        started = self._clock()
        retries = 0
        adjusted: set[str] = set()  # parameters dropped/renamed in this call (each only once)
        shrunk = False
        last: BaseException | None = None
        while True:
            kwargs = self._kwargs(request, messages, mode, max_tokens)
            retry_after = None
            t0 = self._clock()
            try:
                with self._slots.slot():  # held for the HTTP request only, not for backoff
                    resp = self.client.chat.completions.create(**kwargs)
                if getattr(resp, "choices", None):
                    return resp, max_tokens, self._clock() - t0
                last = LLMTransportError("the server returned no choices")
            except (oa.APITimeoutError, oa.APIConnectionError) as exc:
                last = exc
            except oa.APIStatusError as exc:
                status, body = exc.status_code, _body_text(exc)
                failed = self._clock() - t0
                if status in (400, 413, 422) and _CONTEXT_WORDS.search(body):
                    self._report(request, Attempt("context_length", latency_s=failed, error=_describe(exc)))
                    limits = context_limits(exc)
                    prompt = limits.get("prompt")
                    if prompt is None and "requested" in limits and "completion" in limits:
                        prompt = limits["requested"] - limits["completion"]
                    fits = limits["window"] - prompt if "window" in limits and prompt is not None else None
                    if not shrunk and fits is not None and MIN_ANSWER_TOKENS <= fits < max_tokens:
                        # The prompt fits, only the answer budget does not: ask for what is left.
                        shrunk = True
                        log.warning(
                            "task %s: model %s at %s has a %d-token context and the prompt %d tokens; "
                            "retrying with max_tokens=%d instead of %d",
                            request.task,
                            request.model,
                            self.label,
                            limits["window"],
                            prompt,
                            fits,
                            max_tokens,
                        )
                        max_tokens = fits
                        continue
                    raise LLMContextLengthError(self._context_error(request, exc, limits, max_tokens)) from exc
                if status in (400, 422):
                    param = _rejected_param(exc, kwargs)
                    if param is not None and param not in adjusted:
                        self._report(request, Attempt("param_rejected", latency_s=failed, error=_describe(exc)))
                        adjusted.update(_TOKEN_PARAMS if param in _TOKEN_PARAMS else (param,))
                        self._drop_param(request, param, exc)
                        continue
                    if mode != "text" and (
                        getattr(exc, "param", None) == "response_format" or _FORMAT_WORDS.search(body)
                    ):
                        self._report(request, Attempt("format_rejected", latency_s=failed, error=_describe(exc)))
                        raise _FormatRejected(_describe(exc)) from exc
                elif status == 500 and mode != "text" and _FORMAT_WORDS_500.search(body):
                    self._report(request, Attempt("format_rejected", latency_s=failed, error=_describe(exc)))
                    raise _FormatRejected(_describe(exc)) from exc
                if not (status in (408, 409, 429) or status >= 500):
                    self._report(request, Attempt("refused", latency_s=failed, error=_describe(exc)))
                    raise LLMRequestError(
                        f"{request.task}: {self.label} refused the request for model {request.model}: {_describe(exc)}"
                    ) from exc
                last = exc
                retry_after = retry_after_s(exc.response.headers)
            self._report(request, Attempt("error", latency_s=self._clock() - t0, error=_describe(last)))
            retries += 1
            elapsed = self._clock() - started
            left = window - elapsed
            over_count = self.cfg.max_retries is not None and retries > self.cfg.max_retries
            if self._gave_up is not None or over_count or left <= 0:
                break
            delay = min(self._backoff(retries - 1, retry_after), left)
            log.warning(
                "task %s: %s failed (%s); retry %d in %.2fs (%.1fs of the %gs retry window left)",
                request.task,
                self.label,
                _describe(last),
                retries,
                delay,
                left,
                window,
            )
            self._sleep(delay)
        if self._gave_up is not None and not over_count and left > 0:
            raise LLMTransportError(
                f"{request.task}: {self.label} gave up: another request exhausted the retry window "
                f"({self._gave_up}); last error here: {_describe(last)}"
            ) from last
        bound = f"llm.retry_window_s={window:g}" + (
            f", llm.max_retries={self.cfg.max_retries}" if self.cfg.max_retries is not None else ""
        )
        err = LLMTransportError(
            f"{request.task}: {self.label} failed after {retries} attempt(s) in {elapsed:.1f}s ({bound}); "
            f"last error: {_describe(last)}"
        )
        with self._lock:
            if self._gave_up is None:
                self._gave_up = err
        raise err from last
