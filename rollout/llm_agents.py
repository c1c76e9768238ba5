"""Model-backed user and assistant, written against ``LLMClient.chat``.

Only this interface is used (see :class:`ChatLLM`; tests pass a stub)::

    llm.chat(task, messages, tools=None, role="assistant" | "user", tool_choice="auto",
             context=None) -> ChatAnswer(content: str | None,
                                         tool_calls: [{id, type, function: {name, arguments}}],
                                         finish_reason, usage)

``tool_calls`` items and ``usage`` may be plain dicts or pydantic models (``model_dump``).

* :class:`LLMAssistant`: the messages as played (the row's policy is the system message)
  and the env's tools; its answer is the next assistant message.
* :class:`LLMUser`: the system prompt is ``agentskiller/prompts/rollout.yaml`` (``user``)
  filled with the row's scenario and the stop tokens; the conversation is shown with the
  roles swapped and without tool traffic (the user sees only what the assistant says).
  Reasoning the model prints (``<think>...</think>``, "Thought: ..." lines) is cut.

``context`` carries the query id and episode index, so the response cache keeps the
episodes of one task apart (the same request in another episode is another sample).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from typing import Any, Protocol

from agentskiller.models.episodes import Usage

from .nlu import STOP_TOKENS

__all__ = ["ChatLLM", "LLMAssistant", "LLMUser", "AssistantFailure", "model_name", "user_system_prompt"]


class ChatLLM(Protocol):
    def chat(
        self,
        task: str,
        messages: Sequence[dict],
        tools: Sequence[dict] | None = None,
        role: str = "assistant",
        tool_choice: str | dict = "auto",
        context: Any = None,
    ) -> Any: ...


class AssistantFailure(RuntimeError):
    """The assistant's model gave no usable turn (``stop_reason = assistant_error``)."""


def _dump(x: Any) -> Any:
    return x.model_dump() if hasattr(x, "model_dump") else x


def model_name(llm: Any, role: str) -> str:
    cfg = getattr(llm, "config", None)
    for getter in (getattr(cfg, "model_for", None), getattr(llm, "model_for", None)):
        if callable(getter):
            try:
                return str(getter(role))
            except Exception:  # pragma: no cover - a client without that role
                pass
    return str(getattr(llm, "model", None) or type(llm).__name__)


def _add_usage(acc: Usage, usage: Any) -> None:
    u = _dump(usage) or {}
    if isinstance(u, dict):
        acc.prompt_tokens += int(u.get("prompt_tokens") or 0)
        acc.completion_tokens += int(u.get("completion_tokens") or 0)


def _llm_error_types() -> tuple[type[BaseException], ...]:
    try:
        from agentskiller.llm.base import LLMError

        return (LLMError,)
    except ImportError:  # pragma: no cover
        return ()


class LLMAssistant:
    def __init__(self, llm: ChatLLM, context: dict | None = None, task: str = "rollout.assistant") -> None:
        self.llm = llm
        self.context = context or {}
        self.task = task
        self.name = model_name(llm, "assistant")
        self.usage = Usage()
        self.mistakes: list = []

    def respond(self, messages: list[dict], tools: list[dict]) -> dict:
        try:
            ans = self.llm.chat(
                self.task, messages, tools=tools, role="assistant", tool_choice="auto", context=self.context
            )
        except _llm_error_types() as exc:
            raise AssistantFailure(f"assistant model failed: {exc}") from exc
        _add_usage(self.usage, getattr(ans, "usage", None))
        content = getattr(ans, "content", None)
        calls = []
        for i, tc in enumerate(getattr(ans, "tool_calls", None) or []):
            tc = _dump(tc)
            fn = _dump(tc.get("function") or {})
            args = fn.get("arguments", "{}")
            if not isinstance(args, str):
                args = json.dumps(args, ensure_ascii=False)
            calls.append(
                {
                    "id": str(tc.get("id") or f"call_{len(messages)}_{i}"),
                    "type": "function",
                    "function": {"name": str(fn.get("name", "")), "arguments": args},
                }
            )
        if not (content and content.strip()) and not calls:
            raise AssistantFailure(
                f"assistant model gave an empty turn (finish_reason={getattr(ans, 'finish_reason', None)})"
            )
        msg: dict[str, Any] = {"role": "assistant", "content": content if content and content.strip() else None}
        if calls:
            msg["tool_calls"] = calls
        return msg


def user_system_prompt(scenario: dict) -> str:
    from agentskiller.prompts import load

    spec = load("rollout")["user"]
    facts = "\n".join(f"- {f['fact']}: {f['value']}" for f in scenario.get("known_facts") or []) or "- (nothing)"
    persona = scenario.get("persona") or {}
    tokens = {v: k for k, v in STOP_TOKENS.items()}
    values = {
        "persona_name": persona.get("name", "the customer"),
        "manner": persona.get("manner", "polite"),
        "reason_for_call": scenario.get("reason_for_call", ""),
        "instruction": scenario.get("instruction", ""),
        "known_facts": facts,
        "stop": tokens["user_stop"],
        "transfer": tokens["transfer"],
        "out_of_scope": tokens["out_of_scope"],
    }
    return string.Template(str(spec["system"])).substitute(values).strip()


_THINK = re.compile(r"<think>.*?</think>|<thinking>.*?</thinking>", re.S | re.I)
_THOUGHT = re.compile(
    r"^\s*(?:thought|thinking|reasoning|analysis)\s*:.*?(?:\n\s*\n|\n(?=\s*(?:user|me|reply|answer)\s*:)|$)",
    re.S | re.I,
)
_LABEL = re.compile(r"^\s*(?:user|customer|me|reply|answer)\s*:\s*", re.I)


def clean_user_text(text: str) -> str:
    t = _THINK.sub("", text or "")
    t = _THOUGHT.sub("", t)
    t = _LABEL.sub("", t)
    return t.strip()


class LLMUser:
    def __init__(self, llm: ChatLLM, scenario: dict, context: dict | None = None, task: str = "rollout.user") -> None:
        self.llm = llm
        self.system = user_system_prompt(scenario)
        self.context = context or {}
        self.task = task
        self.name = model_name(llm, "user")
        self.usage = Usage()

    def view(self, messages: list[dict]) -> list[dict]:
        """The conversation as the user model sees it: roles swapped, no tool traffic."""
        out = [{"role": "system", "content": self.system}]
        for m in messages:
            role, content = m.get("role"), m.get("content")
            if role == "user" and content:
                out.append({"role": "assistant", "content": content})
            elif role == "assistant" and content:
                out.append({"role": "user", "content": content})
        return out

    def reply(self, messages: list[dict]) -> str:
        ans = self.llm.chat(self.task, self.view(messages), tools=None, role="user", context=self.context)
        _add_usage(self.usage, getattr(ans, "usage", None))
        return clean_user_text(getattr(ans, "content", None) or "")
