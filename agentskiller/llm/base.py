"""Shared types of the LLM layer: the errors, the config, provider requests/responses.

Providers (offline, openai) see one :class:`ProviderRequest` per round and return one
:class:`ProviderResponse`; everything else (cache, validation, repair loop, usage) lives in
:mod:`agentskiller.llm.client`, so both providers go through exactly the same path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agentskiller.config import defaults


class LLMError(RuntimeError):
    """A content failure: the answer stayed unacceptable after its repair rounds (or stayed
    truncated at 4x the budget). Steps may quarantine the unit for it."""


class LLMTransportError(RuntimeError):
    """The endpoint could not be reached or kept failing (timeouts, connection errors, 429,
    5xx) for the whole ``llm.retry_window_s``. Deliberately *not* an :class:`LLMError`: an
    outage says nothing about the unit, so it must fail the job instead of shrinking the
    dataset."""


class LLMRequestError(RuntimeError):
    """The request cannot be served as configured: the endpoint refused it (bad key, unknown
    model, no usable response format, a prompt too big for the model) or a read_only cache
    has no entry for it. Repeating cannot help and the unit is not to blame, so this too fails
    the job. Not an :class:`LLMError`."""


class LLMContextLengthError(LLMRequestError):
    """The prompt (plus the answer budget) does not fit the model's context window."""


class Price(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


#: the schema's defaults of the ``llm:`` block: the only place they are written down
_D = defaults()["llm"]


#: LLM roles and their models: ``text`` and ``code`` for the steps, ``user`` and ``assistant``
#: for the rollout's simulated user and the assistant under test (None = the text model).
ROLES = ("text", "code", "user", "assistant")


class Models(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = _D["models"]["text"]
    code: str = _D["models"]["code"]
    user: str | None = _D["models"]["user"]
    assistant: str | None = _D["models"]["assistant"]


class LLMConfig(BaseModel):
    """The ``llm:`` block of config/config.yaml, with defaults filled.

    Unknown keys are ignored here: the workflow validates the whole config against
    ``schemas/config.schema.yaml`` before any step runs.
    """

    model_config = ConfigDict(extra="ignore")

    provider: Literal["offline", "openai"] = _D["provider"]
    base_url: str | None = _D["base_url"]
    api_key_env: str | None = _D["api_key_env"]
    models: Models = Field(default_factory=Models)
    temperature: float = _D["temperature"]
    max_tokens: int = Field(default=_D["max_tokens"], ge=1)
    timeout_s: float = Field(default=_D["timeout_s"], gt=0)
    retry_window_s: float = Field(default=_D["retry_window_s"], gt=0)
    max_retries: int | None = Field(default=_D["max_retries"], ge=0)
    backoff_initial_s: float = Field(default=_D["backoff_initial_s"], ge=0)
    backoff_max_s: float = Field(default=_D["backoff_max_s"], ge=0)
    max_repair_rounds: int = Field(default=_D["max_repair_rounds"], ge=0)
    repair_temperature_step: float = Field(default=_D["repair_temperature_step"], ge=0)
    repair_temperature_max: float = Field(default=_D["repair_temperature_max"], ge=0, le=2)
    response_format: Literal["auto", "json_schema", "json_object", "text"] = _D["response_format"]
    cache_dir: str = _D["cache_dir"]
    cache_mode: Literal["read_write", "read_only", "off"] = _D["cache_mode"]
    max_concurrency: int = Field(default=_D["max_concurrency"], ge=1)
    max_in_flight: int = Field(default=_D["max_in_flight"], ge=0)
    prices: dict[str, Price] = Field(default_factory=dict)

    def model_for(self, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown LLM role {role!r} (expected one of {', '.join(ROLES)})")
        return getattr(self.models, role) or self.models.text

    def round_temperature(self, rnd: int) -> float:
        """Sampling temperature of repair round ``rnd``: a small step up per round, so a
        model at temperature 0 does not repeat the rejected answer word for word."""
        if rnd <= 0 or self.repair_temperature_step <= 0:
            return self.temperature
        stepped = min(self.repair_temperature_max, self.temperature + rnd * self.repair_temperature_step)
        return round(max(self.temperature, stepped), 6)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


@dataclass
class ProviderRequest:
    """One round of one ``generate`` call, or one ``chat`` call (``chat=True``: the answer
    may hold tool calls), as a provider sees it."""

    task: str
    role: str
    model: str
    messages: list[dict[str, Any]]
    schema: type[BaseModel] | None
    schema_json: dict | None
    temperature: float
    max_tokens: int
    seed: int
    context: Any = None
    feedback: list[str] = field(default_factory=list)
    round: int = 0
    #: Called by a provider for every HTTP attempt that did not give the final answer
    #: (failed, truncated, refused), so each one gets its usage line.
    on_attempt: Callable[[Attempt], None] | None = None
    #: A ``chat`` call: OpenAI-format function tools offered (None = none) and ``tool_choice``.
    chat: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


@dataclass
class Attempt:
    """One provider attempt that did not become the answer (see ProviderRequest.on_attempt)."""

    outcome: str  # error | truncated | param_rejected | format_rejected | context_length | refused
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None


@dataclass
class ProviderResponse:
    text: str  # the answer only: reasoning (<think> blocks, reasoning_content) is kept apart
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = "stop"
    reasoning: str | None = None
    #: chat calls only: OpenAI-shaped tool calls (see :func:`.chat.normalize_tool_calls`)
    tool_calls: list[dict[str, Any]] | None = None
    #: the tool calls were parsed from the text (a server without a tool parser)
    tool_call_fallback: bool = False


class Provider(Protocol):
    name: str

    def complete(self, request: ProviderRequest) -> ProviderResponse: ...

    def cache_salt(self, request: ProviderRequest) -> dict:
        """Extra, provider-specific fields for the cache key (may be empty)."""
        ...

    def close(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters per token) where a server reports none."""
    return len(text) // 4


def messages_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):  # content parts
            parts.extend(str(p.get("text", "")) for p in c if isinstance(p, dict))
    return "\n".join(parts)


# ------------------------------------------------------------- repair messages
# The repair message is plain prose for a model, but its shape is fixed so that a test
# server (tests/fake_openai.py) can recover the error list and answer like the offline
# provider does. One bullet per error; continuation lines of an error are indented.
FEEDBACK_HEADER = "Your previous answer had these problems:"
FEEDBACK_FOOTER = "Answer again with the complete, corrected answer in the same format (not a diff, no commentary)."


def format_feedback(errors: list[str]) -> str:
    bullets = []
    for e in errors:
        lines = str(e).splitlines() or [""]
        bullets.append("- " + lines[0] + "".join("\n  " + ln for ln in lines[1:]))
    return FEEDBACK_HEADER + "\n" + "\n".join(bullets) + "\n\n" + FEEDBACK_FOOTER


def parse_feedback(text: str) -> list[str] | None:
    """Inverse of :func:`format_feedback`; None when ``text`` is not a repair message."""
    if not isinstance(text, str) or not text.startswith(FEEDBACK_HEADER):
        return None
    body = text[len(FEEDBACK_HEADER) :]
    end = body.rfind("\n\n" + FEEDBACK_FOOTER)
    if end >= 0:
        body = body[:end]
    errors: list[str] = []
    for line in body.split("\n"):
        if line.startswith("- "):
            errors.append(line[2:])
        elif line.startswith("  ") and errors:
            errors[-1] += "\n" + line[2:]
    return errors


_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]+")


def schema_name(schema: type[BaseModel]) -> str:
    """A name usable as ``response_format.json_schema.name`` (``^[a-zA-Z0-9_-]{1,64}$``)."""
    return (_NAME_RE.sub("_", schema.__name__) or "answer")[:64]
