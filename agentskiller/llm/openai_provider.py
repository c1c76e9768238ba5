"""The ``openai`` provider: Chat Completions through the official SDK, any base URL.

Reliability lives here, not in the SDK (``max_retries=0``): our own exponential backoff with
jitter on timeouts, connection errors, 408/409/429 and 5xx, honouring ``Retry-After`` /
``retry-after-ms``; truncation (``finish_reason == "length"``) retried with a larger
``max_tokens``; and structured output that degrades from ``json_schema`` to
``json_object`` to plain text when a server (llama.cpp, older vLLM, Ollama) rejects a mode.
The working mode is remembered for the life of the client.

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

from .base import LLMConfig, LLMError, ProviderRequest, ProviderResponse, estimate_tokens, messages_text, schema_name

log = logging.getLogger("agentskiller.llm.openai")

DEFAULT_ENDPOINT = "https://api.openai.com/v1"
#: Sent with every request: harmless for real servers, lets test servers dispatch.
TASK_HEADER = "X-AgentSkiller-Task"
MODES = ("json_schema", "json_object", "text")
MAX_RETRY_AFTER_S = 600.0
TRUNCATION_GROWTH_CAP = 4

_FORMAT_WORDS = re.compile(r"response_format|json_schema|json schema|grammar", re.IGNORECASE)


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


class OpenAIProvider:
    name = "openai"

    def __init__(self, cfg: LLMConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        import openai  # lazy: see module docstring

        self._openai = openai
        self.cfg = cfg
        self.endpoint = cfg.base_url or DEFAULT_ENDPOINT
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if not key:
            if cfg.base_url is None:
                raise LLMError(
                    f"llm.provider is openai but environment variable {cfg.api_key_env or '(none)'} "
                    f"holding the API key is not set (or set llm.base_url for a local server)"
                )
            key = "sk-no-key-required"  # local servers ignore it, the SDK insists on one
        self.client = openai.OpenAI(api_key=key, base_url=self.endpoint, timeout=cfg.timeout_s, max_retries=0)
        self._sleep = sleep
        self._jitter = random.Random()  # timing only; never affects answers
        self._lock = threading.Lock()
        self._learned_mode: str | None = None
        self._max_tokens_param = "max_tokens"

    # ---------------------------------------------------------------- public
    def cache_salt(self, request: ProviderRequest) -> dict:
        return {}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # pragma: no cover - closing must never mask the real error
            pass

    @property
    def learned_mode(self) -> str | None:
        return self._learned_mode

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        modes = self._modes(request)
        last: Exception | None = None
        for i, mode in enumerate(modes):
            try:
                resp = self._complete_in_mode(request, mode)
            except _FormatRejected as exc:
                last = exc
                nxt = modes[i + 1] if i + 1 < len(modes) else None
                log.warning(
                    "%s rejected response_format %s for task %s (%s)%s",
                    self.endpoint,
                    mode,
                    request.task,
                    exc,
                    f"; falling back to {nxt}" if nxt else "",
                )
                continue
            if request.schema is not None and self.cfg.response_format == "auto":
                with self._lock:
                    self._learned_mode = mode
            return resp
        raise LLMError(
            f"{request.task}: {self.endpoint} rejected every response format {list(modes)}; last error: {last}"
        )

    # -------------------------------------------------------------- internals
    def _modes(self, request: ProviderRequest) -> tuple[str, ...]:
        if request.schema is None:
            return ("text",)
        if self.cfg.response_format != "auto":
            return (self.cfg.response_format,)
        learned = self._learned_mode
        return MODES[MODES.index(learned) :] if learned else MODES

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
            resp = self._create(request, messages, mode, max_tokens)
            choice = resp.choices[0]
            text = choice.message.content or getattr(choice.message, "refusal", None) or ""
            if choice.finish_reason == "length":
                if max_tokens >= cap:
                    raise LLMError(
                        f"{request.task}: answer from {self.endpoint} truncated (finish_reason=length) "
                        f"even with max_tokens={max_tokens}"
                    )
                max_tokens = min(cap, max_tokens * 2)
                log.warning("task %s: answer truncated; retrying with max_tokens=%d", request.task, max_tokens)
                continue
            usage = getattr(resp, "usage", None)
            pt = getattr(usage, "prompt_tokens", None)
            ct = getattr(usage, "completion_tokens", None)
            return ProviderResponse(
                text=text,
                model=request.model,
                prompt_tokens=int(pt) if pt is not None else estimate_tokens(messages_text(messages)),
                completion_tokens=int(ct) if ct is not None else estimate_tokens(text),
                finish_reason=choice.finish_reason,
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * (2**attempt))
        return base * (0.5 + 0.5 * self._jitter.random())  # "equal jitter": spread, yet grows

    def _create(self, request: ProviderRequest, messages: list[dict], mode: str, max_tokens: int) -> Any:
        oa = self._openai
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "temperature": request.temperature,
            "seed": request.seed,
            "extra_headers": {TASK_HEADER: request.task},
        }
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(request.schema), "schema": request.schema_json, "strict": False},
            }
        elif mode == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        attempts = self.cfg.max_retries + 1
        last: BaseException | None = None
        for attempt in range(attempts):
            kwargs.pop("max_tokens", None)
            kwargs.pop("max_completion_tokens", None)
            kwargs[self._max_tokens_param] = max_tokens
            retry_after = None
            try:
                resp = self.client.chat.completions.create(**kwargs)
                if not getattr(resp, "choices", None):
                    raise LLMError("the server returned no choices")
                return resp
            except (oa.APITimeoutError, oa.APIConnectionError) as exc:
                last = exc
            except oa.APIStatusError as exc:
                status = exc.status_code
                body = _body_text(exc)
                if status == 400 and "max_completion_tokens" in body and self._max_tokens_param == "max_tokens":
                    # Newer OpenAI models refuse max_tokens; switch once and retry at once.
                    self._max_tokens_param = "max_completion_tokens"
                    last = exc
                    continue
                if mode != "text" and (status in (400, 422) or (status == 500 and _FORMAT_WORDS.search(body))):
                    raise _FormatRejected(_describe(exc)) from exc
                if status in (408, 409, 429) or status >= 500:
                    last = exc
                    retry_after = retry_after_s(exc.response.headers)
                else:
                    raise LLMError(f"{request.task}: {self.endpoint} refused the request: {_describe(exc)}") from exc
            except LLMError as exc:
                last = exc
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, retry_after)
                log.warning(
                    "task %s: %s failed (%s); retry %d/%d in %.2fs",
                    request.task,
                    self.endpoint,
                    _describe(last),
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise LLMError(
            f"{request.task}: {self.endpoint} failed after {attempts} attempt(s); last error: {_describe(last)}"
        )
