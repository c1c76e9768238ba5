"""A quick self-check of an episode against its row: did it solve the task?

Not the evaluator (``evaluator/`` scores episodes properly); this is what the rollout's
tests and benchmark use to measure the offline simulators:

* ``action`` rows: the episode's final state hash equals the row's ``final_state_hash``;
* ``lookup``, ``refusal``, ``auth_failure`` rows: it equals the ``initial_state_hash``
  (nothing written), and for ``lookup`` rows every ``expected_answer`` value appears in
  what the assistant said.
"""

from __future__ import annotations

import json
from typing import Any

from agentskiller.models.episodes import Episode

from .nlu import render, value_in_text

__all__ = ["solved", "assistant_text", "calls_with_messages", "episode_calls", "replay_final_hashes"]


def assistant_text(ep: Episode | dict) -> str:
    msgs = ep.messages if isinstance(ep, Episode) else ep["messages"]
    return "\n".join(m.get("content") or "" for m in msgs if m.get("role") == "assistant")


def _told(value: Any, text: str) -> bool:
    if isinstance(value, (dict, list)):
        return all(_told(v, text) for v in (value.values() if isinstance(value, dict) else value))
    if value is None:
        return "null" in text or "none" in text.lower()
    return render(value) in text or value_in_text(value, text)


def solved(row: dict, ep: Episode | dict) -> tuple[bool, str]:
    """``(solved, cause)``; cause is "" when solved."""
    d = ep if isinstance(ep, dict) else ep.model_dump()
    if d["stop_reason"] == "infra_error":
        return False, "infra_error"
    kind = row.get("task_kind", "action")
    want = row["final_state_hash"] if kind == "action" else row["initial_state_hash"]
    if d.get("final_state_hash") != want:
        return False, "wrong_final_state" if kind == "action" else "unexpected_write"
    if kind == "lookup":
        text = assistant_text(d)
        for a in row.get("expected_answer") or []:
            if not _told(json.loads(a["value"]), text):
                return False, "answer_not_told"
    return True, ""


def calls_with_messages(ep: Episode | dict) -> list[tuple[int, dict]]:
    """``(message index, {"tool", "arguments"})`` of every call that reached the env, in
    order: what a replay runs. Calls whose arguments were not a JSON object never reached it
    and are left out."""
    msgs = ep.messages if isinstance(ep, Episode) else ep["messages"]
    out = []
    for i, m in enumerate(msgs):
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                continue
            if isinstance(args, dict):
                out.append((i, {"tool": fn.get("name", ""), "arguments": args}))
    return out


def episode_calls(ep: Episode | dict) -> list[dict]:
    """The tool calls an episode made, in order, as ``{"tool", "arguments"}``."""
    return [c for _, c in calls_with_messages(ep)]


def replay_final_hashes(episodes: list[Episode], outputs_dir) -> dict[str, str]:
    """``episode_id -> final state hash`` from replaying each episode's tool calls on a
    fresh state, in one sandboxed worker per env (independent of the transport that played
    them)."""
    from pathlib import Path

    from agentskiller.runtime.worker import execute_episodes

    from .transport import server_dir

    by_env: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_env.setdefault(ep.env, []).append(ep)
    out: dict[str, str] = {}
    for env, eps in sorted(by_env.items()):
        batch = [{"id": ep.episode_id, "calls": episode_calls(ep)} for ep in eps]
        for res in execute_episodes(server_dir(Path(outputs_dir), env), batch):
            out[res.id] = res.final_state_hash
    return out
