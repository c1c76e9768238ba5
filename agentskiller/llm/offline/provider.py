"""The offline provider: deterministic, procedural answers per task, no network.

It is a stand-in for a model in demos, tests and CI, not a model: each task has a
registered handler that builds the answer from the request's context, a seeded RNG and the
bundled catalogue. Answers go through the same cache, validation and repair path as a real
model's, so a handler that returns something invalid is corrected (or fails) the same way.

A handler for a ``chat`` task (:meth:`LLMClient.chat`) answers one turn: a dict
``{"content": str | None, "tool_calls": [...]}`` (either key may be left out; a call is
``{"name": ..., "arguments": {...}}`` or OpenAI's ``{"id", "type", "function"}``) or a string
(content only). It sees the offered tools in ``req.tools`` and ``req.tool_choice``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ... import io
from ..base import LLMError, ProviderRequest, ProviderResponse, estimate_tokens, messages_text
from ..chat import id_offset, normalize_tool_calls

HandlerFn = Callable[["OfflineRequest"], "str | dict | list"]

_HANDLERS: dict[str, HandlerFn] = {}
_LOCK = threading.Lock()
_LOADED: set[str | None] = set()  # steps whose handler modules are imported; None: all
_LOAD_LOCK = threading.RLock()


def handler(task: str) -> Callable[[HandlerFn], HandlerFn]:
    """Register ``fn`` as the offline answer for ``task``.

    Registering a second, different function for a task is an error (two engineers
    claiming the same task); re-registering the same function (module reload) is fine.
    """

    def deco(fn: HandlerFn) -> HandlerFn:
        with _LOCK:
            old = _HANDLERS.get(task)
            if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
                raise ValueError(
                    f"offline handler for task {task!r} already registered by {old.__module__}.{old.__qualname__}"
                )
            _HANDLERS[task] = fn
        return fn

    return deco


def unregister(task: str) -> None:
    """Remove a handler (tests)."""
    with _LOCK:
        _HANDLERS.pop(task, None)


def load_handlers(step: str | None = None) -> None:
    """Import the handler modules of ``step`` (``"s07"``), or every one, once.

    Per step because a job asks for the tasks of its own step only: importing every
    handler (and the writers and code generators behind them) cost each LLM job about 60 ms.
    """
    if step in _LOADED or None in _LOADED:
        return
    with _LOAD_LOCK:  # other threads wait until the step's handlers are registered
        if step not in _LOADED and None not in _LOADED:
            from . import handlers

            handlers.load(step)
            _LOADED.add(step)


def get_handler(task: str) -> HandlerFn:
    fn = _HANDLERS.get(task)
    if fn is None:
        load_handlers(task.split(".", 1)[0])
        fn = _HANDLERS.get(task)
    if fn is None:  # registered by a module of another step: look everywhere before failing
        load_handlers()
        fn = _HANDLERS.get(task)
    if fn is None:
        raise LLMError(f"offline provider has no handler for task {task}")
    return fn


def registered_tasks() -> list[str]:
    load_handlers()
    return sorted(_HANDLERS)


def _context_digest(value: Any) -> str:
    # default=str: a Path or date in a context must not crash the offline provider; it
    # hashes like the string the prompt renderer (and so a real server) would see.
    return io.sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str))


def request_rng(seed: int, task: str, context: Any) -> random.Random:
    """RNG seeded from (seed, task, canonical context): the same request, the same answer."""
    digest = _context_digest([int(seed), task, context])
    return random.Random(int(digest[:16], 16))


@dataclass
class OfflineRequest:
    task: str
    messages: list[dict[str, Any]]
    context: Any
    rng: random.Random
    feedback: list[str] = field(default_factory=list)
    round: int = 0
    seed: int = 0
    #: chat tasks: the OpenAI-format tools offered and tool_choice (None outside chat)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @property
    def catalog(self) -> Any:
        # Lazy: the catalogue module belongs to the catalogue engineer and loads YAML.
        from .catalog import load_catalog

        return load_catalog()


def answer_text(result: Any) -> str:
    """A handler's return value as the text a model would have sent."""
    if isinstance(result, str):
        return result
    if isinstance(result, (dict, list)):
        return json.dumps(result, ensure_ascii=False, indent=2)
    raise LLMError(f"offline handler returned {type(result).__name__}; expected dict, list or str")


def run_handler(
    seed: int,
    task: str,
    messages: list[dict[str, Any]],
    context: Any,
    feedback: list[str] | None = None,
    round: int = 0,
) -> str:
    """Answer one round offline. Also used by the test server's offline bridge."""
    fn = get_handler(task)
    req = OfflineRequest(
        task=task,
        messages=messages,
        context=context,
        rng=request_rng(seed, task, context),
        feedback=list(feedback or []),
        round=round,
        seed=int(seed),
    )
    return answer_text(fn(req))


def chat_turn(result: Any, offset: int = 0) -> tuple[str, list[dict]]:
    """A chat handler's return value as ``(content, OpenAI tool calls)``."""
    if isinstance(result, str):
        return result, []
    if not isinstance(result, dict) or not set(result) <= {"content", "tool_calls"}:
        raise LLMError(
            f"offline chat handler returned {type(result).__name__} {str(result)[:200]}; expected a str or "
            '{"content": str | None, "tool_calls": [...]}'
        )
    content, calls = result.get("content"), result.get("tool_calls") or []
    if content is not None and not isinstance(content, str):
        raise LLMError(f"offline chat handler returned content of type {type(content).__name__}; expected str")
    if not isinstance(calls, list):
        raise LLMError(f"offline chat handler returned tool_calls of type {type(calls).__name__}; expected list")
    try:
        return content or "", normalize_tool_calls(calls, offset)
    except ValueError as exc:
        raise LLMError(f"offline chat handler returned a malformed tool call: {exc}") from exc


def run_chat_handler(
    seed: int,
    task: str,
    messages: list[dict[str, Any]],
    context: Any,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | dict[str, Any] | None = None,
) -> tuple[str, list[dict]]:
    """Answer one chat turn offline: ``(content, tool calls)``."""
    fn = get_handler(task)
    req = OfflineRequest(
        task=task,
        messages=messages,
        context=context,
        rng=request_rng(seed, task, context),
        seed=int(seed),
        tools=tools,
        tool_choice=tool_choice,
    )
    return chat_turn(fn(req), id_offset(messages))


@lru_cache(maxsize=1)
def _package_digest() -> str:
    """Hash of the offline provider's own code and data: editing a handler or the
    catalogue invalidates offline cache entries (a model would be a new model)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".yaml", ".yml", ".json") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=256)
def _module_digest(module: str) -> str:
    try:
        src = inspect.getsource(importlib.import_module(module))
    except (OSError, TypeError, ImportError):
        return ""
    return io.sha256_text(src)


class OfflineProvider:
    name = "offline"

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def cache_salt(self, request: ProviderRequest) -> dict:
        fn = get_handler(request.task)
        # The answer depends on the context and the handler code, not only on messages.
        return {
            "context": _context_digest(request.context),
            "code": _package_digest(),
            "handler": _module_digest(fn.__module__),
        }

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        if request.chat:
            content, calls = run_chat_handler(
                self.seed, request.task, request.messages, request.context, request.tools, request.tool_choice
            )
            return ProviderResponse(
                text=content,
                model=request.model,
                prompt_tokens=estimate_tokens(messages_text(request.messages)),
                completion_tokens=estimate_tokens(content + (json.dumps(calls) if calls else "")),
                finish_reason="tool_calls" if calls else "stop",
                tool_calls=calls or None,
            )
        text = run_handler(self.seed, request.task, request.messages, request.context, request.feedback, request.round)
        return ProviderResponse(
            text=text,
            model=request.model,
            prompt_tokens=estimate_tokens(messages_text(request.messages)),
            completion_tokens=estimate_tokens(text),
            finish_reason="stop",
        )

    def close(self) -> None:
        pass
