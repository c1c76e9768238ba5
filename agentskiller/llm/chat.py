"""Tool calling: the answer of :meth:`LLMClient.chat` and the tool-call helpers of the providers.

A chat answer is an assistant turn in OpenAI's Chat Completions shape: ``content`` (text or
None) and ``tool_calls`` (``{id, type: "function", function: {name, arguments}}``, the
arguments a JSON *string*, as the API sends them). Providers hand back raw calls in any of
the shapes below; :func:`normalize_tool_calls` turns them into that one shape, with
deterministic ids ``call_<n>`` where a call has none (``n`` counts the calls already in the
conversation, so ids stay unique across the turns of one conversation).

Fallback for servers without a tool parser (:func:`parse_content_tool_calls`): a llama.cpp
server without a tool-call template, or a vLLM/SGLang one started without a tool parser that
still accepts ``tools``, answers a call as text. When an answer has no ``tool_calls``, its
content is searched for

* JSON calls, the whole content or a fenced block or a value inside prose:
  ``{"name": ..., "arguments": {...}}`` (also ``"parameters"``, Llama 3.x's key),
  ``{"tool": ..., "arguments": ...}``, ``{"function": {"name": ..., "arguments": ...}}``,
  ``{"tool_calls": [...]}``, or a list of those;
* Hermes/Qwen tags: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` (several
  allowed; a last tag left open at the end of the answer counts).

Only calls to the tools offered become tool calls: calls to other names are ignored, and a
JSON value or tag with no call to an offered tool stays in the content untouched. A JSON
value counts only when every item in it has a call's shape, so a data object the assistant
shows the user is not mistaken for a call. What became a call is cut from the content (the
whole value or tag); ``ChatAnswer.tool_call_fallback`` (and the usage line's
``tool_call_fallback``) records that this happened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .base import ProviderResponse

#: ``tool_choice`` values as strings (a dict names one function: ``{"type": "function",
#: "function": {"name": ...}}``).
TOOL_CHOICES = ("auto", "none", "required")

_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_ARG_KEYS = ("arguments", "parameters", "args")
_NAME_KEYS = ("name", "tool", "tool_name")


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: str = Field(description="the arguments as JSON text (normally an object)")


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    type: Literal["function"] = "function"
    function: ToolFunction

    def parsed_arguments(self) -> Any:
        """The arguments decoded (``json.loads``); raises ``ValueError`` on bad JSON."""
        return json.loads(self.function.arguments) if self.function.arguments.strip() else {}


class ChatUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatAnswer(BaseModel):
    """One assistant turn. Equal for equal requests: a cached answer is the fresh one
    (cache hits and latency are in the usage lines and :class:`LLMStats`, not here)."""

    model_config = ConfigDict(extra="forbid")
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    model: str = ""
    usage: ChatUsage = Field(default_factory=ChatUsage)
    reasoning: str | None = None
    #: the tool calls were parsed from the content (a server without a tool parser)
    tool_call_fallback: bool = False

    def as_message(self) -> dict[str, Any]:
        """The turn as a message to append to the conversation for the next request."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.model_dump() for tc in self.tool_calls]
        return msg


# ------------------------------------------------------------------ helpers
def tool_names(tools: Sequence[dict] | None) -> list[str]:
    """The function names of OpenAI-format ``tools`` (``{"type": "function", "function": {...}}``)."""
    names = []
    for t in tools or ():
        fn = t.get("function") if isinstance(t, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"not an OpenAI function tool (need type function and function.name): {t!r}")
        names.append(name)
    return names


def checked_tools(tools: Sequence[dict] | None, tool_choice: str | dict) -> list[dict] | None:
    """A copy of ``tools`` (None for none) after checking them and ``tool_choice``; a
    malformed one is the caller's bug (``ValueError``), found before any request."""
    if isinstance(tool_choice, str) and tool_choice not in TOOL_CHOICES:
        raise ValueError(f"tool_choice {tool_choice!r} is not one of {TOOL_CHOICES} or a dict naming a function")
    if not isinstance(tool_choice, (str, dict)):
        raise ValueError(f"tool_choice must be a str or a dict, not {type(tool_choice).__name__}")
    out = [dict(t) for t in tools] if tools else None
    tool_names(out)
    return out


def chat_answer(resp: ProviderResponse, messages: Sequence[dict]) -> ChatAnswer:
    """The :class:`ChatAnswer` of a provider's response to a chat request with ``messages``
    (raises ``ValueError`` for malformed tool calls)."""
    calls = [ToolCall.model_validate(c) for c in normalize_tool_calls(resp.tool_calls, id_offset(messages))]
    return ChatAnswer(
        content=resp.text if resp.text and resp.text.strip() else None,
        tool_calls=calls,
        finish_reason=resp.finish_reason,
        model=resp.model,
        usage=ChatUsage(prompt_tokens=resp.prompt_tokens, completion_tokens=resp.completion_tokens),
        reasoning=resp.reasoning,
        tool_call_fallback=resp.tool_call_fallback,
    )


def id_offset(messages: Sequence[dict]) -> int:
    """How many tool calls the conversation already has (the first free ``call_<n>``)."""
    n = 0
    for m in messages:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if isinstance(calls, list):
            n += len(calls)
    return n


def _arguments(value: Any) -> dict | None:
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def call_shape(obj: Any) -> tuple[str, dict] | None:
    """``(name, arguments)`` when ``obj`` is a tool call in one of the accepted shapes."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict):
        name, src = fn.get("name"), fn
    elif isinstance(fn, str):
        name, src = fn, obj
    else:
        name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
        src = obj
    if not isinstance(name, str) or not name.strip():
        return None
    raw = next((src[k] for k in _ARG_KEYS if k in src), None)
    args = _arguments(raw)
    return (name.strip(), args) if args is not None else None


def _dump(args: Any) -> str:
    return json.dumps(args, ensure_ascii=False)


def normalize_tool_calls(raw: Sequence[Any] | None, offset: int = 0) -> list[dict]:
    """Calls in any accepted shape as OpenAI tool calls (plain dicts). A call's own id is
    kept; one without gets ``call_<offset + i>``. Arguments given as an object are
    serialised; arguments already a string are kept as the model sent them."""
    out = []
    for i, item in enumerate(raw or ()):
        if not isinstance(item, dict):
            raise ValueError(f"tool call {i} is not an object: {item!r}")
        fn = item.get("function")
        cid = item.get("id")
        cid = cid if isinstance(cid, str) and cid.strip() else f"call_{offset + i}"
        if isinstance(fn, dict) and isinstance(fn.get("name"), str) and isinstance(fn.get("arguments"), str):
            name, arguments = fn["name"], fn["arguments"]
        else:
            shape = call_shape(item)
            if shape is None:
                raise ValueError(f"tool call {i} has no function name and object arguments: {item!r}")
            name, arguments = shape[0], _dump(shape[1])
        out.append({"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}})
    return out


# ------------------------------------------------------- content fallback
@dataclass
class ContentCalls:
    """What :func:`parse_content_tool_calls` found: the calls (``{"name", "arguments"}``, the
    arguments an object), the content left, and calls ignored for naming no offered tool."""

    calls: list[dict]
    content: str | None
    ignored: list[str] = field(default_factory=list)


def _items(value: Any) -> list | None:
    """The call candidates of a JSON value, or None when not every item is call-shaped."""
    if isinstance(value, dict) and set(value) == {"tool_calls"}:
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    if not items or any(call_shape(x) is None for x in items):
        return None
    return items


def _take(value: Any, known: set[str], calls: list[dict], ignored: list[str]) -> bool:
    """Append the known calls of ``value``; True when at least one was taken."""
    items = _items(value)
    if items is None:
        return False
    took = False
    for x in items:
        name, args = call_shape(x)  # type: ignore[misc]
        if name in known:
            calls.append({"name": name, "arguments": args})
            took = True
        else:
            ignored.append(name)
    return took


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except ValueError:
        return None


def _json_values(text: str) -> list[tuple[int, int, Any]]:
    """``(start, end, value)`` of fenced JSON blocks and of bare JSON objects/lists in ``text``."""
    found: list[tuple[int, int, Any]] = []
    fences = []
    for m in _FENCE_RE.finditer(text):
        fences.append((m.start(), m.end()))
        try:
            found.append((m.start(), m.end(), json.loads(m.group(1))))
        except ValueError:
            continue
    dec = json.JSONDecoder()
    i = 0
    while True:
        hits = [j for j in (text.find("{", i), text.find("[", i)) if j >= 0]
        if not hits:
            break
        j = min(hits)
        fence = next(((a, b) for a, b in fences if a <= j < b), None)
        if fence is not None:
            i = fence[1]
            continue
        try:
            value, end = dec.raw_decode(text, j)
        except ValueError:
            i = j + 1
            continue
        found.append((j, end, value))
        i = end
    return sorted(found, key=lambda t: t[0])


def parse_content_tool_calls(content: str | None, tools: Sequence[dict] | None) -> ContentCalls | None:
    """Tool calls written into the text of an answer (see the module docstring), or None
    when the content holds no call to an offered tool."""
    if not content or not tools:
        return None
    known = set(tool_names(tools))
    calls: list[dict] = []
    ignored: list[str] = []
    cut: list[tuple[int, int]] = []
    tags = list(_TAG_RE.finditer(content))
    if tags:
        for m in tags:
            if _take(_loads(m.group(1)), known, calls, ignored):
                cut.append((m.start(), m.end()))
    else:
        for start, end, value in _json_values(content):
            if _take(value, known, calls, ignored):
                cut.append((start, end))
    if not calls:
        return None
    rest, pos = [], 0
    for start, end in cut:
        rest.append(content[pos:start])
        pos = end
    rest.append(content[pos:])
    left = re.sub(r"\n{3,}", "\n\n", "".join(rest)).strip()
    return ContentCalls(calls=calls, content=left or None, ignored=ignored)
