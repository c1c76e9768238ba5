"""Rollout episodes and their verdicts: the boundary between ``rollout/`` and ``evaluator/``.

One :class:`Episode` per line of ``rollouts/{env}.jsonl``: a simulated user and an assistant
playing one dataset row (``query_id``) from a fresh state, as OpenAI chat messages - the
policy as the system message, user and assistant turns, assistant ``tool_calls`` and the
``tool`` results. ``mistakes`` is the ground truth of what the offline assistant got wrong on
purpose (a configured mistake rate), which the evaluator never reads but its tests compare
with.

One :class:`Verdict` per line of ``evaluation/results.jsonl``: what the evaluator decided for
one episode, with exactly one failure category when it did not pass.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StopReason = Literal[
    "user_stop",  # the user said ###STOP###: goal met or refused
    "transfer",  # ###TRANSFER###: the user asked for a human
    "out_of_scope",  # ###OUT-OF-SCOPE###: the scenario cannot be served here
    "max_turns",  # rollout.max_turns reached
    "assistant_error",  # the assistant's model failed (after retries) or answered nonsense
    "infra_error",  # the env's server could not be started or crashed
    # the assistant ended the episode without the user's stop (agentskiller.rlenv: an RL
    # trainer's loop ends when the model stops calling tools); not a cut-off
    "assistant_stop",
]
MistakeKind = Literal["wrong_argument", "skipped_step", "extra_call", "premature_end", "unconfirmed_write"]
FailureCategory = Literal[
    "missing_write",
    "wrong_write_args",
    "extra_write",
    "unauthorized_write",
    "unconfirmed_write",
    "premature_stop",
    "wrong_answer",
    "simulator_error",
    "infra_error",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Mistake(_Model):
    """One error the offline assistant injected (ground truth for the evaluator's tests)."""

    kind: MistakeKind
    #: index into ``Episode.messages`` of the assistant message that carries it
    message: int
    detail: str = ""


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Episode(_Model):
    episode_id: str  # sha256(query_id, episode)[:16]
    query_id: str
    task_id: str
    env: str
    domains: list[str]
    episode: int = Field(ge=0)
    models: dict[str, str]  # {"user": ..., "assistant": ...}
    transport: Literal["fast", "mcp"]
    #: OpenAI chat messages: system, user, assistant (content and/or tool_calls with
    #: function.arguments as a JSON string), tool (tool_call_id, content: the result or
    #: the error as JSON text)
    messages: list[dict[str, Any]]
    stop_reason: StopReason
    turns: int = Field(ge=0)  # user turns
    tool_calls: int = Field(ge=0)
    final_state_hash: str | None = None
    usage: dict[str, Usage] = Field(default_factory=dict)  # per role
    mistakes: list[Mistake] = Field(default_factory=list)
    error: str | None = None


class Verdict(_Model):
    episode_id: str
    query_id: str
    task_id: str
    env: str
    task_kind: str
    episode: int
    passed: bool
    category: FailureCategory | None = None
    infra_error: bool = False
    scores: dict[str, float | bool | None] = Field(default_factory=dict)
    detail: str = ""
    #: structured findings behind the verdict (README "Evaluating rollouts": state_diff, missing_writes,
    #: wrong_write_args, extra_writes, unauthorized, unconfirmed, ungrounded_user_values, ...)
    evidence: dict[str, Any] = Field(default_factory=dict)
