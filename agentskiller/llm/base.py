"""Shared types of the LLM layer: the error, the config, provider requests/responses.

Providers (offline, openai) see one :class:`ProviderRequest` per round and return one
:class:`ProviderResponse`; everything else (cache, validation, repair loop, usage) lives in
:mod:`agentskiller.llm.client`, so both providers go through exactly the same path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class LLMError(RuntimeError):
    """An LLM request failed for good (after retries / repair rounds / cache policy)."""


class Price(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


class Models(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = "offline-text"
    code: str = "offline-code"


class LLMConfig(BaseModel):
    """The ``llm:`` block of config/config.yaml, with defaults filled.

    Unknown keys are ignored here: the workflow validates the whole config against
    ``schemas/config.schema.yaml`` before any step runs.
    """

    model_config = ConfigDict(extra="ignore")

    provider: Literal["offline", "openai"] = "offline"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    models: Models = Field(default_factory=Models)
    temperature: float = 0.0
    max_tokens: int = Field(default=8192, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    max_repair_rounds: int = Field(default=3, ge=0)
    response_format: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    cache_dir: str = ".llm_cache"
    cache_mode: Literal["read_write", "read_only", "off"] = "read_write"
    max_concurrency: int = Field(default=4, ge=1)
    prices: dict[str, Price] = Field(default_factory=dict)

    def model_for(self, role: str) -> str:
        if role not in ("text", "code"):
            raise ValueError(f"unknown LLM role {role!r} (expected 'text' or 'code')")
        return getattr(self.models, role)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


@dataclass
class ProviderRequest:
    """One round of one ``generate`` call, as a provider sees it."""

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


@dataclass
class ProviderResponse:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = "stop"


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
