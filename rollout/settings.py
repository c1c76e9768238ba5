"""Rollout settings (the ``rollout:`` block of the config, or the CLI flags)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["auto", "offline", "llm"]


class RolloutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: episodes per dataset row, each from a fresh state
    episodes_per_task: int = Field(1, ge=1)
    #: user turns per episode at most (the first message counts)
    max_turns: int = Field(30, ge=1)
    #: assistant messages in a row (tool calls and their results) before the user must speak
    max_steps_per_turn: int = Field(12, ge=1)
    transport: Literal["fast", "mcp"] = "fast"
    #: per-episode probability that the offline assistant makes one mistake (seeded)
    mistake_rate: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = 0
    #: who plays each side: ``offline`` (the deterministic simulators), ``llm`` (the client
    #: passed to run_rollouts) or ``auto`` (llm when a client is given, else offline)
    user: Mode = "auto"
    assistant: Mode = "auto"
    #: wall-clock limit of one tool call in seconds (the call fails, the state rolls back)
    call_timeout_s: float = Field(10.0, gt=0)
    #: episodes played at the same time (threads; each has its own env processes)
    workers: int = Field(1, ge=1)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, **overrides: Any) -> RolloutSettings:
        data = {k: v for k, v in dict(cfg or {}).items() if k in cls.model_fields}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    def fingerprint(self, models: dict[str, str]) -> str:
        """What an episode's content depends on (a partial file from other settings is
        not resumed). ``workers`` is left out: it changes the speed, not the episodes."""
        d = self.model_dump(exclude={"workers"})
        d["models"] = dict(sorted(models.items()))
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
