"""What the evaluator knows about one env and one replay: the shared data classes, the golden
calls of a row (``resolve`` applied) and the check that a golden replay still reproduces its
row (``initial_state_hash``, ``final_state_hash``, every call's ``expect``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentskiller.models.episodes import Episode, Verdict
from agentskiller.runtime.environment import Environment
from agentskiller.runtime.sandbox import SandboxSettings
from agentskiller.runtime.worker import DEFAULT_PER_CALL_TIMEOUT_S, EpisodeResult

from .calls import AgentCall, ToolCatalog
from .normalize import canonical_changes, canonicalize, change_set, normalize_arguments

__all__ = ["Step", "Replay", "Golden", "EnvData", "Options", "Judge", "make_replay", "golden_calls", "finish_golden"]

Judge = Callable[[Episode, dict, Verdict], Any]


@dataclass
class Step:
    call: AgentCall
    ok: bool
    changed: bool
    error: str | None = None
    error_type: str | None = None
    result: Any = None


@dataclass
class Replay:
    """One replayed call sequence, with its normalized change set."""

    result: EpisodeResult
    id_map: dict[str, str]
    canonical: dict[str, list[list[Any]]]


@dataclass
class Golden:
    row: dict
    calls: list[dict]  # {"tool", "arguments"} with resolve applied
    replay: Replay | None = None
    error: str | None = None
    writes: list[tuple[str, str, int]] = field(default_factory=list)  # (name, normalized args, call index)
    reads: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class EnvData:
    name: str
    env: Environment | None = None
    catalog: ToolCatalog | None = None
    initial: dict = field(default_factory=dict)
    primary_keys: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Options:
    mode: str = "all"
    sandbox: SandboxSettings | None = None
    in_process: bool = False
    require_confirmation: bool = True
    judge: Judge | None = None
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S


def make_replay(res: EpisodeResult, data: EnvData) -> Replay:
    changes = change_set(data.initial, data.primary_keys, res.final_state or {})
    id_map = canonicalize(changes, data.initial, data.primary_keys)
    return Replay(res, id_map, canonical_changes(changes, id_map))


# --------------------------------------------------------------------------- one episode
def golden_calls(row: dict) -> list[dict]:
    """The row's golden calls with ``resolve`` applied from ``expected_outputs`` (the
    golden results the row recorded; the replay then proves they still hold)."""
    outputs = row.get("expected_outputs") or []
    calls = []
    for i, c in enumerate(row["golden_calls"]):
        args = json.loads(c["function"]["arguments"] or "{}")
        for param, rule in json.loads(c.get("resolve") or "{}").items():
            j = int(rule["call"])
            if j >= i or j >= len(outputs):
                raise ValueError(f"golden call {i}: resolve {param} refers to call {j}")
            res = json.loads(outputs[j])
            if not isinstance(res, dict) or rule["field"] not in res:
                raise ValueError(f"golden call {i}: call {j}'s result has no {rule['field']!r}")
            args[param] = res[rule["field"]]
        calls.append({"tool": c["function"]["name"], "arguments": args})
    return calls


def finish_golden(g: Golden, res: EpisodeResult | str, data: EnvData) -> None:
    row = g.row
    if isinstance(res, str):
        g.error = res
        return
    if res.error:
        g.error = f"golden replay: {res.error}"
        return
    for i, (call, rec) in enumerate(zip(row["golden_calls"], res.calls)):
        want_ok = call.get("expect", "ok") == "ok"
        if rec.ok != want_ok:
            g.error = (
                f"golden call {i} ({rec.tool}) "
                + (f"failed: {rec.error}" if want_ok else "succeeded, the row expects a refusal")
                + " (the server or its data changed since the dataset was built)"
            )
            return
    if row.get("initial_state_hash") and res.initial_state_hash != row["initial_state_hash"]:
        g.error = "the env's initial state is not the row's initial_state_hash (its data changed)"
        return
    if res.final_state_hash != row.get("final_state_hash"):
        g.error = "the golden replay does not reach the row's final_state_hash (the server or its data changed)"
        return
    g.replay = make_replay(res, data)
    cat = data.catalog
    for i, (call, rec) in enumerate(zip(g.calls, res.calls)):
        if not rec.ok:
            continue
        key = (call["tool"], normalize_arguments(call["arguments"], g.replay.id_map), i)
        if cat.is_write(call["tool"]) or rec.changed_tables:
            g.writes.append(key)
        else:
            g.reads.append(key)
