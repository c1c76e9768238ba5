"""``dataset/trajectories.jsonl``: every episode the evaluator passed, as a complete conversation.

One row per passing episode: the messages as played (system policy, user and assistant turns,
assistant ``tool_calls``, ``tool`` results, the final answer), each with a ``train`` flag that
is true on assistant messages only (what a trainer computes the loss on), plus ``tools`` (a
JSON string, as in ``train.jsonl``), the env, domains, task id and kind, episode index, models
and the evaluator's scores.

Arrow-friendly like ``train.jsonl``: every message has the same keys (``content`` may be
null; ``tool_calls`` an empty list on non-assistant turns; ``tool_call_id`` and ``name`` empty
strings where they do not apply), and call arguments stay JSON strings.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from agentskiller import artifacts
from agentskiller.artifacts import as_paths
from agentskiller.jobs import StepContext
from agentskiller.models.episodes import Episode, Verdict

ROW_SCHEMA = "trajectory_row"


def _message(m: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {
            "id": str(c.get("id", "")),
            "type": "function",
            "function": {
                "name": c["function"]["name"],
                "arguments": c["function"]["arguments"]
                if isinstance(c["function"]["arguments"], str)
                else json.dumps(c["function"]["arguments"], sort_keys=True),
            },
        }
        for c in m.get("tool_calls") or []
    ]
    return {
        "role": m["role"],
        "content": m.get("content"),
        "tool_calls": calls,
        "tool_call_id": str(m.get("tool_call_id") or ""),
        "name": str(m.get("name") or ""),
        "train": m["role"] == "assistant",
    }


def trajectory_row(ep: Episode, row: dict, verdict: Verdict) -> dict:
    """The row of one passing episode; ``row`` is its query's dataset row (``task_kind``, ``tools``)."""
    return {
        "id": ep.episode_id,
        "query_id": ep.query_id,
        "task_id": ep.task_id,
        "env": ep.env,
        "domains": ep.domains,
        "task_kind": row.get("task_kind", "action"),
        "episode": ep.episode,
        "models": {"user": ep.models.get("user", ""), "assistant": ep.models.get("assistant", "")},
        "messages": [_message(m) for m in ep.messages],
        "tools": row["tools"],
        "turns": ep.turns,
        "tool_calls": ep.tool_calls,
        "stop_reason": ep.stop_reason,
        "scores": {k: (None if val is None else float(val)) for k, val in sorted(verdict.scores.items())},
    }


def build_rows(rows: list[dict], episodes: list[Episode], verdicts: list[Verdict]) -> list[dict]:
    """Rows for the passing episodes, ordered by env, query and episode."""
    by_id = {r["id"]: r for r in rows}
    passed = {v.episode_id: v for v in verdicts if v.passed}
    out = []
    for ep in sorted(episodes, key=lambda e: (e.env, e.query_id, e.episode)):
        v = passed.get(ep.episode_id)
        row = by_id.get(ep.query_id)
        if v is None or row is None:
            continue
        out.append(trajectory_row(ep, row, v))
    return out


def _row_facts(train: Any) -> dict[str, dict]:
    """query id -> the two columns a trajectory row takes from its dataset row (``task_kind``
    and ``tools``), read line by line; an env's tools string is kept once, shared by its rows."""
    facts: dict[str, dict] = {}
    tools_seen: dict[str, str] = {}
    for r in artifacts.iter_lines(train):
        tools = tools_seen.setdefault(r["tools"], r["tools"])
        facts[r["id"]] = {"task_kind": r.get("task_kind", "action"), "tools": tools}
    return facts


def stats(episodes: list[Episode], verdicts: list[Verdict]) -> dict:
    """Pass rates, failures by category and turn counts for ``stats.json`` and the card."""
    n = len(verdicts)
    passed = sum(v.passed for v in verdicts)
    by_kind: dict[str, Counter] = {}
    for v in verdicts:
        by_kind.setdefault(v.task_kind, Counter())["passed" if v.passed else "failed"] += 1
    turns = Counter(str(e.turns) for e in episodes)
    return {
        "episodes": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else 0.0,
        "infra_errors": sum(v.infra_error for v in verdicts),
        "failures_by_category": dict(
            sorted(Counter(v.category for v in verdicts if not v.passed and v.category).items())
        ),
        "by_task_kind": {k: dict(sorted(c.items())) for k, c in sorted(by_kind.items())},
        "turns": dict(sorted(turns.items(), key=lambda kv: int(kv[0]))),
    }


def run(ctx: StepContext) -> None:
    """Streamed: the dataset rows are reduced to what a trajectory needs, only passing
    verdicts are kept, and the rollouts are read and written one env file at a time (files
    in env order, episodes sorted within one: the order of :func:`build_rows`)."""
    facts = _row_facts(ctx.inputs["train"])
    passed: dict[str, Verdict] = {}
    for line in artifacts.iter_lines(ctx.inputs["results"]):
        v = Verdict.model_validate(line)
        if v.passed:
            passed[v.episode_id] = v
    n_episodes = 0
    with ctx.jsonl_writer("trajectories", ROW_SCHEMA) as writer:
        for p in sorted(as_paths(ctx.inputs["rollouts"]), key=lambda p: p.stem):
            episodes = [Episode.model_validate(e) for e in artifacts.iter_lines(p)]
            n_episodes += len(episodes)
            for ep in sorted(episodes, key=lambda e: (e.env, e.query_id, e.episode)):
                v = passed.get(ep.episode_id)
                row = facts.get(ep.query_id)
                if v is not None and row is not None:
                    writer.write(trajectory_row(ep, row, v))
            del episodes
        n_out = writer.count
    ctx.log.info("trajectories: %d of %d episodes passed", n_out, n_episodes)
