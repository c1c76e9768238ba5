"""Scripted episodes: a dataset row played by a script instead of two models.

Used by the tests and ``benchmarks/evaluate.py`` to make episodes whose verdict is known:
:func:`golden_steps` is the row's golden path as a conversation (the assistant asks for the
go-ahead before each write and the user says yes; the final message answers the lookup,
explains the refusal or the failed authorization), and :func:`episode` turns any list of
steps into an :class:`~agentskiller.models.episodes.Episode`. Steps are tuples:

* ``("user", text)`` / ``("assistant", text)``: a message;
* ``("call", name, arguments)``: one assistant message with one tool call, then its tool
  message;
* ``("calls", [(name, arguments), ...])``: one assistant message with parallel calls.

Tool messages carry ``results[i]`` when given (e.g. the row's ``expected_outputs`` for the
golden path), else ``{}``: the evaluator replays the calls and never trusts them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from agentskiller.models.episodes import Episode

__all__ = ["GoldenUser", "golden_steps", "episode", "resolved_golden_calls"]

Step = tuple


def resolved_golden_calls(row: dict) -> list[tuple[str, dict]]:
    """``(name, arguments)`` per golden call, ``resolve`` rules applied from the row's
    ``expected_outputs``."""
    outs = row.get("expected_outputs") or []
    calls = []
    for c in row["golden_calls"]:
        args = json.loads(c["function"]["arguments"] or "{}")
        for param, rule in json.loads(c.get("resolve") or "{}").items():
            args[param] = json.loads(outs[rule["call"]])[rule["field"]]
        calls.append((c["function"]["name"], args))
    return calls


def _answer_text(row: dict) -> str:
    kind = row.get("task_kind")
    if kind == "lookup":
        vals = []
        for a in row.get("expected_answer") or []:
            v = json.loads(a["value"])
            vals.append(f"{a['field'].replace('_', ' ')}: {v}")
        return "Here is what I found - " + "; ".join(vals) + "."
    if kind == "refusal":
        ref = row.get("refusal") or {}
        return f"I'm sorry, I can't do that: {ref.get('why', 'the policy does not allow it')}."
    if kind == "auth_failure":
        return "I'm sorry, I could not verify that ID, so I cannot act on the account."
    return "All done."


class GoldenUser:
    """The user of :func:`golden_steps`, live: yes to every "Shall I go ahead?", else ends the
    conversation (``###STOP###``). An ``EpisodeEnv`` user (``user(row, seed)``) for playing
    the golden path through an episode, where the offline user would reveal its requests one
    at a time."""

    name = "scripted"

    def __init__(self, row: dict, seed: int = 0) -> None:
        self.row = row

    def reply(self, messages: list[dict]) -> str:
        last = next(m for m in reversed(messages) if m["role"] == "assistant" and m.get("content"))
        return "Yes, please go ahead." if "Shall I go ahead?" in last["content"] else "Thanks, that's all. ###STOP###"


def golden_steps(row: dict, is_write: Callable[[str], bool], *, confirm: bool = True) -> list[Step]:
    """The golden path as steps. ``is_write(name)``: whether a tool writes (writes get an
    "ask - yes" exchange first when ``confirm``)."""
    steps: list[Step] = []
    for name, args in resolved_golden_calls(row):
        if confirm and is_write(name):
            steps.append(("assistant", f"I will call {name} with {json.dumps(args)}. Shall I go ahead?"))
            steps.append(("user", "Yes, please go ahead."))
        steps.append(("call", name, args))
    steps.append(("assistant", _answer_text(row)))
    steps.append(("user", "Thanks, that's all."))
    return steps


def episode(
    row: dict,
    steps: Sequence[Step],
    *,
    episode: int = 0,
    results: Sequence[Any] | None = None,
    stop_reason: str = "user_stop",
    **fields: Any,
) -> Episode:
    """An Episode of ``row`` whose messages follow ``steps`` (see the module docstring)."""
    messages: list[dict] = [dict(row["messages"][0]), dict(row["messages"][1])]
    n_calls = 0
    turns = 1

    def add_calls(calls: list[tuple[str, dict]]) -> None:
        nonlocal n_calls
        tcs = []
        for name, args in calls:
            tcs.append(
                {
                    "id": f"call_{n_calls + len(tcs)}",
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
            )
        messages.append({"role": "assistant", "content": None, "tool_calls": tcs})
        for tc in tcs:
            res = results[n_calls] if results is not None and n_calls < len(results) else "{}"
            messages.append(
                {"role": "tool", "tool_call_id": tc["id"], "content": res if isinstance(res, str) else json.dumps(res)}
            )
            n_calls += 1

    for st in steps:
        if st[0] in ("user", "assistant"):
            messages.append({"role": st[0], "content": st[1]})
            turns += st[0] == "user"
        elif st[0] == "call":
            add_calls([(st[1], st[2])])
        elif st[0] == "calls":
            add_calls(list(st[1]))
        else:
            raise ValueError(f"unknown step {st[0]!r}")
    eid = hashlib.sha256(f"{row['id']}:{episode}".encode()).hexdigest()[:16]
    base = {
        "episode_id": eid,
        "query_id": row["id"],
        "task_id": row.get("task_id", ""),
        "env": row["env"],
        "domains": list(row.get("domains") or [row["env"]]),
        "episode": episode,
        "models": {"user": "scripted", "assistant": "scripted"},
        "transport": "fast",
        "messages": messages,
        "stop_reason": stop_reason,
        "turns": turns,
        "tool_calls": n_calls,
    }
    base.update(fields)
    return Episode.model_validate(base)
