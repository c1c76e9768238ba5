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

__all__ = ["solved", "assistant_text"]


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
