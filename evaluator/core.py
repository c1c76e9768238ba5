"""Scoring rollout episodes against their dataset rows by replaying them.

For each env, one batch goes to the env's server in one sandboxed worker process
(:func:`agentskiller.runtime.worker.execute_episodes`; ``in_process=True`` runs the same
replay in this process, for trusted code in tests): every distinct task's golden calls
(``resolve`` rules applied from the row's ``expected_outputs``) and every episode's tool
calls, in order, each from a fresh copy of the initial state. Replaying, rather than
trusting what the rollout recorded, means a verdict depends only on the calls the
assistant made and the server's code and data. A call the server refuses (a tool error)
changes nothing; a call whose arguments are not a JSON object never reaches the tool.

Checks per episode (each is a score in the verdict):

* ``end_state``: the episode's change set equals the golden one, after the normalization
  of :mod:`evaluator.normalize` (created IDs by content, numbers). The golden replay must
  reproduce the row's ``initial_state_hash`` / ``final_state_hash`` and every call's
  ``expect``; if it does not, the server or data changed since the row was made and the
  episode is an ``infra_error``.
* ``write_precision`` / ``write_recall``: the golden *write* calls (tools of kind create /
  update / delete, or any call that changed the state) matched one-to-one by tool name and
  normalized arguments (:func:`evaluator.normalize.normalize_arguments`) against the
  episode's successful writes. ``read_recall`` does the same for the golden reads; it is a
  diagnostic only (an extra or missing read never fails an episode).
* ``policy``: judged on what the assistant *tried*, whatever the server answered:
  no write attempt before an authorization call of that tool's domain succeeded (in a pair
  ``A+B`` each member has its own authorize tool); no write attempt unless the user turn
  right before the assistant turn that makes it confirms ("yes", "go ahead", ...); a
  ``refusal`` task makes no write attempt and its final assistant message refuses and says
  what or why; an ``auth_failure`` task makes no write attempt after the failed
  authorization.
* ``answer`` (``lookup`` tasks): every ``expected_answer`` value is stated in the
  assistant's messages (:func:`evaluator.checks.says_value`).
* ``judge``: an optional hook ``judge(episode, row, verdict) -> float | dict``; its score is
  recorded and never changes the verdict (off by default, so nothing needs a network).

An episode passes when its end state matches, the policy holds and, for a lookup, the
answer is given (``mode`` narrows this to one check). A failed episode gets exactly one
category, the first that applies in :data:`CATEGORY_ORDER`:

1. ``infra_error``: no such query, an env that does not match the row, a server that is
   missing or does not load, a worker that fails, a call that crashes the server or
   times out, a golden replay that does not reproduce the row, or an episode the rollout
   itself marked as an infrastructure failure. Never a pass, never dropped.
2. ``unauthorized_write``: a write attempt before its domain's authorization succeeded, or
   after the failed authorization of an ``auth_failure`` task.
3. ``unconfirmed_write``: a write attempt without the user's confirmation.
4. ``simulator_error``: the outcome is wrong and a value the simulated user stated,
   which its scenario does not hold (:func:`evaluator.checks.ungrounded_user_values`),
   went into a tool call's arguments: the assistant acted on an invented value. Ranked
   above the outcome categories so the user simulator's mistakes are not counted as the
   assistant's; a policy violation stays the assistant's whatever the user said.
5. ``extra_write``: a successful write that matches no golden write and changed the state
   (a destructive extra call), when the end state is wrong; or any write attempt in a
   ``refusal`` task.
6. ``wrong_write_args``: a golden write whose tool the assistant called with other
   arguments (successfully, or refused by the server), when the end state is wrong; also
   the rare end state that differs although every write matched.
7. ``missing_write``: a golden write the assistant never made, although it had the floor.
8. ``wrong_answer``: a lookup answer value missing from the assistant's messages, or a
   refusal not explained, although it had the floor.
9. ``premature_stop``: the goal (end state or answer) was not reached because the
   episode was cut off: ``stop_reason`` ``max_turns`` / ``assistant_error`` /
   ``transfer`` / ``out_of_scope``, or ``user_stop`` right after the assistant asked for
   the go-ahead. Missing writes and answers in a cut-off episode are counted here, not
   as 7 or 8.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller.grounding import iso_when
from agentskiller.models.episodes import Episode, Verdict
from agentskiller.reporting.task_audit import server_dir
from agentskiller.runtime.environment import Environment, load_environment
from agentskiller.runtime.sandbox import SandboxSettings
from agentskiller.runtime.worker import (
    DEFAULT_PER_CALL_TIMEOUT_S,
    EpisodeResult,
    WorkerError,
    execute_episodes,
    execute_episodes_inprocess,
)

from . import checks
from .calls import AgentCall, ToolCatalog, extract_calls
from .normalize import canonical_changes, canonicalize, change_set, compare_changes, normalize_arguments

__all__ = ["MODES", "CATEGORY_ORDER", "evaluate_episodes", "Judge"]

log = logging.getLogger(__name__)

MODES = ("all", "end_state", "actions", "answer", "policy")
CATEGORY_ORDER = (
    "infra_error",
    "unauthorized_write",
    "unconfirmed_write",
    "simulator_error",
    "extra_write",
    "wrong_write_args",
    "missing_write",
    "wrong_answer",
    "premature_stop",
)
#: which categories each mode can give (infra_error: every mode)
_MODE_CATEGORIES = {
    "all": set(CATEGORY_ORDER),
    "end_state": {"infra_error", "extra_write", "wrong_write_args", "missing_write", "premature_stop"},
    "actions": {"infra_error", "extra_write", "wrong_write_args", "missing_write"},
    "answer": {"infra_error", "wrong_answer", "premature_stop"},
    "policy": {
        "infra_error",
        "unauthorized_write",
        "unconfirmed_write",
        "extra_write",
        "wrong_answer",
        "premature_stop",
    },
}
_SERVER_FAULTS = ("crash", "timeout", "non_json")
_CUT_OFF = ("max_turns", "assistant_error", "transfer", "out_of_scope")
_MAX_WORKER_RUNS = 32  # per env, when a batch has to be split to find an episode that kills the worker

Judge = Callable[[Episode, dict, Verdict], Any]


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- replays
@dataclass
class _Step:
    call: AgentCall
    ok: bool
    changed: bool
    error: str | None = None
    error_type: str | None = None
    result: Any = None


@dataclass
class _Replay:
    """One replayed call sequence, with its normalized change set."""

    result: EpisodeResult
    id_map: dict[str, str]
    canonical: dict[str, list[list[Any]]]


@dataclass
class _Golden:
    row: dict
    calls: list[dict]  # {"tool", "arguments"} with resolve applied
    replay: _Replay | None = None
    error: str | None = None
    writes: list[tuple[str, str, int]] = field(default_factory=list)  # (name, normalized args, call index)
    reads: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class _EnvData:
    name: str
    env: Environment | None = None
    catalog: ToolCatalog | None = None
    initial: dict = field(default_factory=dict)
    primary_keys: dict = field(default_factory=dict)
    error: str | None = None


def _golden_calls(row: dict) -> list[dict]:
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


def _make_replay(res: EpisodeResult, data: _EnvData) -> _Replay:
    changes = change_set(data.initial, data.primary_keys, res.final_state or {})
    id_map = canonicalize(changes, data.initial, data.primary_keys)
    return _Replay(res, id_map, canonical_changes(changes, id_map))


def _run_worker(data: _EnvData, episodes: list[dict], opts: _Options) -> dict[str, EpisodeResult]:
    if opts.in_process:
        results = execute_episodes_inprocess(
            data.env, episodes, include_final_state="changed", per_call_timeout_s=opts.per_call_timeout_s
        )
    else:
        results = execute_episodes(
            data.env,
            episodes,
            opts.sandbox,
            include_final_state="changed",
            per_call_timeout_s=opts.per_call_timeout_s,
        )
    return {r.id: r for r in results}


def _replay_batch(data: _EnvData, episodes: list[dict], opts: _Options) -> dict[str, EpisodeResult | str]:
    """Run ``episodes`` (golden ones first, ids ``g...``); on a worker failure run the
    golden ones alone (a failure there: the server is broken, every episode fails), then
    split the rest until the episodes that kill the worker are found."""
    try:
        return dict(_run_worker(data, episodes, opts))
    except WorkerError as exc:
        first_error = str(exc)
    except Exception as exc:  # in-process: the tools module does not load, ...
        return dict.fromkeys((e["id"] for e in episodes), f"replay failed: {type(exc).__name__}: {exc}")
    golden = [e for e in episodes if e["id"].startswith("g")]
    agent = [e for e in episodes if not e["id"].startswith("g")]
    out: dict[str, EpisodeResult | str] = {}
    runs = 0
    if golden:
        try:
            out.update(_run_worker(data, golden, opts))
            runs += 1
        except WorkerError as exc:
            return dict.fromkeys((e["id"] for e in episodes), f"worker failed on the golden replays: {exc}")
    stack = [agent] if agent else []
    while stack:
        part = stack.pop()
        if runs >= _MAX_WORKER_RUNS:
            out.update(dict.fromkeys((e["id"] for e in part), f"worker failed: {first_error}"))
            continue
        runs += 1
        try:
            out.update(_run_worker(data, part, opts))
        except WorkerError as exc:
            if len(part) == 1:
                out[part[0]["id"]] = f"worker failed on this episode: {exc}"
            else:
                mid = len(part) // 2
                stack.extend([part[mid:], part[:mid]])
    return out


# --------------------------------------------------------------------------- options
@dataclass
class _Options:
    mode: str = "all"
    sandbox: SandboxSettings | None = None
    in_process: bool = False
    require_confirmation: bool = True
    judge: Judge | None = None
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S


def _load_env(name: str, servers_root: Path, blueprint_dirs: list[Path], rows: Iterable[dict]) -> _EnvData:
    data = _EnvData(name)
    try:
        data.env = load_environment(server_dir(servers_root, name))
        state = data.env.initial_state()  # table files only: no generated code runs here
    except Exception as exc:
        data.error = f"env {name}: server not available: {type(exc).__name__}: {exc}"
        return data
    data.initial = state.tables
    data.primary_keys = state.primary_keys
    names: list[str] = []
    for r in rows:
        try:
            names.extend(t["function"]["name"] for t in json.loads(r.get("tools") or "[]"))
        except (ValueError, KeyError, TypeError):
            pass
    data.catalog = ToolCatalog.for_env(data.env.manifest, blueprint_dirs, names)
    return data


# --------------------------------------------------------------------------- public API
def evaluate_episodes(
    episodes: Iterable[Episode | dict],
    rows: Mapping[str, dict] | Iterable[dict],
    servers_dir: str | Path,
    *,
    outputs_dir: str | Path | None = None,
    mode: str = "all",
    sandbox: SandboxSettings | None = None,
    in_process: bool = False,
    require_confirmation: bool = True,
    judge: Judge | None = None,
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S,
    workers: int | None = None,
) -> list[Verdict]:
    """One :class:`Verdict` per episode, in the order given.

    ``rows``: dataset rows (``dataset/train.jsonl``), by id or as a list; an episode's row
    is the one whose ``id`` is its ``query_id``. ``servers_dir``: the outputs directory
    holding the servers (``servers/{domain}``, ``cross/{pair}/server``). ``outputs_dir``:
    where ``blueprints/`` are (tool kinds; default ``servers_dir``). ``sandbox``: the
    worker's limits (``SandboxSettings.from_config(config["sandbox"])``); ``in_process``:
    replay in this process instead (trusted code only: tests). ``workers``: envs replayed
    at once (default: the CPU count, at most 4; 1 in process)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    opts = _Options(mode, sandbox or SandboxSettings(), in_process, require_confirmation, judge, per_call_timeout_s)
    eps = [e if isinstance(e, Episode) else Episode.model_validate(e) for e in episodes]
    by_id = dict(rows) if isinstance(rows, Mapping) else {r["id"]: r for r in rows}
    servers_root = Path(servers_dir)
    bp_dirs = [Path(outputs_dir or servers_root) / "blueprints", servers_root / "blueprints"]

    verdicts: list[Verdict | None] = [None] * len(eps)
    by_env: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        row = by_id.get(ep.query_id)
        if row is None:
            verdicts[i] = _infra(ep, None, f"no dataset row with id {ep.query_id}")
        elif row.get("env") != ep.env:
            verdicts[i] = _infra(ep, row, f"episode env {ep.env!r} is not the row's env {row.get('env')!r}")
        elif ep.stop_reason == "infra_error" or ep.error:
            verdicts[i] = _infra(ep, row, f"the rollout failed: {ep.error or 'stop_reason infra_error'}")
        else:
            by_env.setdefault(ep.env, []).append(i)

    def one_env(env_name: str, idx: list[int]) -> list[tuple[int, Verdict]]:
        env_rows = {eps[i].query_id: by_id[eps[i].query_id] for i in idx}
        data = _load_env(env_name, servers_root, bp_dirs, env_rows.values())
        if data.error:
            return [(i, _infra(eps[i], by_id[eps[i].query_id], data.error)) for i in idx]
        goldens: dict[str, _Golden] = {}
        batch: list[dict] = []
        for q, (qid, row) in enumerate(sorted(env_rows.items())):
            try:
                g = _Golden(row, _golden_calls(row))
            except (ValueError, KeyError, TypeError) as exc:
                goldens[qid] = _Golden(row, [], error=f"the row's golden calls are malformed: {exc}")
                continue
            goldens[qid] = g
            batch.append({"id": f"g{q}:{qid}", "calls": g.calls})
        agent_calls: dict[int, list[AgentCall]] = {}
        for i in idx:
            calls = extract_calls(eps[i].messages)
            agent_calls[i] = calls
            sent = [{"tool": c.name, "arguments": c.arguments} for c in calls if c.arguments is not None]
            batch.append({"id": f"a{i}", "calls": sent})
        results = _replay_batch(data, batch, opts)
        for ep_id, res in results.items():
            if ep_id.startswith("g"):
                _finish_golden(goldens[ep_id.split(":", 1)[1]], res, data)
        out = []
        for i in idx:
            res = results.get(f"a{i}", "the worker returned no result for this episode")
            out.append((i, _judge_episode(eps[i], goldens[eps[i].query_id], agent_calls[i], res, data, opts)))
        return out

    # One worker process per env; they mostly wait for their subprocess, so a few threads
    # keep the cores busy. In-process replays stay in this thread (tool modules are
    # imported here, and the per-call alarm works only in the main thread).
    n_workers = workers or (1 if in_process else _default_workers())
    items = list(by_env.items())
    if n_workers <= 1 or len(items) <= 1:
        done_lists = [one_env(env_name, idx) for env_name, idx in items]
    else:
        with ThreadPoolExecutor(max_workers=min(n_workers, len(items))) as pool:
            done_lists = list(pool.map(lambda item: one_env(*item), items))
    for done in done_lists:
        for i, v in done:
            verdicts[i] = v
    return [v for v in verdicts if v is not None]


def _finish_golden(g: _Golden, res: EpisodeResult | str, data: _EnvData) -> None:
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
    g.replay = _make_replay(res, data)
    cat = data.catalog
    for i, (call, rec) in enumerate(zip(g.calls, res.calls)):
        if not rec.ok:
            continue
        key = (call["tool"], normalize_arguments(call["arguments"], g.replay.id_map), i)
        if cat.is_write(call["tool"]) or rec.changed_tables:
            g.writes.append(key)
        else:
            g.reads.append(key)


# --------------------------------------------------------------------------- one episode
def _base(ep: Episode, row: dict | None) -> dict:
    return {
        "episode_id": ep.episode_id,
        "query_id": ep.query_id,
        "task_id": ep.task_id,
        "env": ep.env,
        "task_kind": (row or {}).get("task_kind", "unknown"),
        "episode": ep.episode,
    }


def _infra(ep: Episode, row: dict | None, why: str) -> Verdict:
    return Verdict(
        **_base(ep, row),
        passed=False,
        category="infra_error",
        infra_error=True,
        scores={"end_state": None, "policy": None, "answer": None},
        detail=f"infra_error: {why}",
        evidence={"infra": why},
    )


def _steps(calls: list[AgentCall], res: EpisodeResult) -> list[_Step]:
    out: list[_Step] = []
    recs = iter(res.calls)
    for c in calls:
        if c.arguments is None:
            out.append(_Step(c, False, False, "arguments are not a JSON object", "bad_arguments"))
            continue
        r = next(recs, None)
        if r is None:
            out.append(_Step(c, False, False, "not replayed", "bad_arguments"))
            continue
        out.append(_Step(c, r.ok, bool(r.changed_tables), r.error, r.error_type, r.result))
    return out


def _user_turn_before(messages: Sequence[dict], index: int) -> str | None:
    """The user message that opened the assistant turn at ``index``; None when that is the
    conversation's opening request (a request is not a confirmation)."""
    users = [j for j, m in enumerate(messages) if m.get("role") == "user"]
    before = [j for j in users if j < index]
    if not before or before[-1] == users[0]:
        return None
    c = messages[before[-1]].get("content")
    return c if isinstance(c, str) else ""


def _last_assistant_text(messages: Sequence[dict]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "assistant" and isinstance(msg.get("content"), str) and msg["content"].strip():
            return msg["content"]
    return ""


def _arg_scalars(steps: list[_Step]) -> list[str]:
    out = []
    for s in steps:
        for v in (s.call.arguments or {}).values():
            vals = v if isinstance(v, list) else [v]
            out.extend(str(x) for x in vals if isinstance(x, (str, int, float)) and not isinstance(x, bool))
    return out


def _judge_episode(
    ep: Episode, g: _Golden, calls: list[AgentCall], res: EpisodeResult | str, data: _EnvData, opts: _Options
) -> Verdict:
    row = g.row
    if g.error:
        return _infra(ep, row, g.error)
    if isinstance(res, str):
        return _infra(ep, row, res)
    if res.error:
        return _infra(ep, row, f"replay: {res.error}")
    steps = _steps(calls, res)
    for s in steps:
        if s.error_type in _SERVER_FAULTS:
            return _infra(ep, row, f"call {s.call.index} ({s.call.name}) broke the server: {s.error_type}: {s.error}")
    cat = data.catalog
    kind = row.get("task_kind", "action")
    gold = g.replay
    mine = _make_replay(res, data)
    evidence: dict[str, Any] = {"calls": len(calls), "tool_kinds": cat.source}
    reasons: list[str] = []

    # ---- end state
    state_diff = compare_changes(gold.canonical, mine.canonical)
    state_ok = not state_diff
    if state_diff:
        evidence["state_diff"] = state_diff
        reasons.append(f"end state differs in {', '.join(sorted({d['table'] for d in state_diff}))}")

    # ---- actions
    def is_write(s: _Step) -> bool:
        return cat.is_write(s.call.name) or s.changed

    agent_writes = [s for s in steps if s.ok and is_write(s)]
    failed_writes = [s for s in steps if not s.ok and is_write(s)]
    a_keys = [(s.call.name, normalize_arguments(s.call.arguments, mine.id_map)) for s in agent_writes]
    unmatched_agent = list(range(len(agent_writes)))
    unmatched_gold: list[tuple[str, str, int]] = []
    for name, args, gi in g.writes:
        hit = next((k for k in unmatched_agent if a_keys[k] == (name, args)), None)
        if hit is None:
            unmatched_gold.append((name, args, gi))
        else:
            unmatched_agent.remove(hit)
    matched = len(g.writes) - len(unmatched_gold)
    precision = matched / len(agent_writes) if agent_writes else None
    recall = matched / len(g.writes) if g.writes else None
    ok_calls = {(s.call.name, normalize_arguments(s.call.arguments, mine.id_map)) for s in steps if s.ok}
    read_recall = sum((n, a) in ok_calls for n, a, _ in g.reads) / len(g.reads) if g.reads else None

    wrong_args: list[dict] = []
    missing: list[dict] = []
    for name, args, gi in unmatched_gold:
        k = next((k for k in unmatched_agent if a_keys[k][0] == name), None)
        if k is not None:
            unmatched_agent.remove(k)
            wrong_args.append({"golden_call": gi, "tool": name, "expected": args, "got": a_keys[k][1]})
            continue
        f = next(
            (
                s
                for s in failed_writes
                if s.call.name == name and normalize_arguments(s.call.arguments, mine.id_map) != args
            ),
            None,
        )
        if f is not None:
            wrong_args.append(
                {
                    "golden_call": gi,
                    "tool": name,
                    "expected": args,
                    "got": normalize_arguments(f.call.arguments, mine.id_map),
                    "refused": f.error,
                }
            )
            continue
        missing.append({"golden_call": gi, "tool": name, "arguments": args})
    extra = [
        {"call": agent_writes[k].call.index, "tool": agent_writes[k].call.name, "arguments": a_keys[k][1]}
        for k in unmatched_agent
        if agent_writes[k].changed
    ]
    actions_ok = not unmatched_gold and not extra
    for key, items in (("extra_writes", extra), ("wrong_write_args", wrong_args), ("missing_writes", missing)):
        if items:
            evidence[key] = items
    if failed_writes:
        evidence["refused_writes"] = [
            {"call": s.call.index, "tool": s.call.name, "error": s.error} for s in failed_writes
        ]

    # ---- policy
    authorized: set[str] = set()
    failed_auth = False
    unauthorized: list[str] = []
    unconfirmed: list[str] = []
    forbidden: list[str] = []
    for s in steps:
        name = s.call.name
        dom = cat.domain_of(name)
        if cat.is_authorize(name):
            if s.ok:
                authorized.add(dom)
            else:
                failed_auth = True
            continue
        if not is_write(s):
            continue
        where = f"call {s.call.index} ({name})"
        if kind == "auth_failure" and failed_auth:
            unauthorized.append(f"{where} after the failed authorization")
        elif dom not in authorized:
            unauthorized.append(f"{where} before {dom or 'its domain'} was authorized")
        if opts.require_confirmation and not checks.is_confirmation(_user_turn_before(ep.messages, s.call.message)):
            unconfirmed.append(f"{where} without the user's confirmation in the turn before")
        if kind == "refusal":
            forbidden.append(f"{where}: a refusal task makes no write")
    final_text = _last_assistant_text(ep.messages)
    refusal_ok: bool | None = None
    if kind == "refusal":
        ref = row.get("refusal") or {}
        refusal_ok = checks.refusal_explained(final_text, ref, cat.bare(str(ref.get("name", ""))))
    policy_ok = not unauthorized and not unconfirmed and not forbidden and refusal_ok is not False
    for key, items in (("unauthorized", unauthorized), ("unconfirmed", unconfirmed), ("forbidden", forbidden)):
        if items:
            evidence[key] = items
            reasons.extend(items)
    if refusal_ok is False:
        reasons.append("the final message does not explain the refusal")

    # ---- answer
    answer_ok: bool | None = None
    if kind == "lookup":
        text = "\n".join(
            m["content"] for m in ep.messages if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        )
        values = []
        for a in row.get("expected_answer") or []:
            try:
                values.append(json.loads(a["value"]))
            except (ValueError, KeyError, TypeError):
                values.append(a.get("value"))
        not_said = [v for v in values if not checks.says_value(text, v)]
        answer_ok = not not_said
        if not_said:
            evidence["answer_missing"] = not_said
            reasons.append(f"the answer does not state {', '.join(map(str, not_said))}")

    # ---- simulator and cut-off
    ungrounded = checks.ungrounded_user_values(row, ep.messages)
    used = [u for u in ungrounded if any(_used(u["value"], a) for a in _arg_scalars(steps))]
    if ungrounded:
        evidence["ungrounded_user_values"] = ungrounded
    cut_off = ep.stop_reason in _CUT_OFF or (ep.stop_reason == "user_stop" and checks.asks_to_proceed(final_text))
    if cut_off:
        evidence["cut_off"] = ep.stop_reason

    live_match = None if ep.final_state_hash is None else ep.final_state_hash == res.final_state_hash

    # ---- verdict
    gates = {
        "all": state_ok and policy_ok and answer_ok is not False,
        "end_state": state_ok,
        "actions": actions_ok,
        "answer": answer_ok is not False,
        "policy": policy_ok,
    }
    passed = gates[opts.mode]
    category = None
    if not passed:
        flags = {
            "state_ok": state_ok,
            "actions_ok": actions_ok,
            "answer_ok": answer_ok,
            "refusal_ok": refusal_ok,
            "unauthorized": bool(unauthorized),
            "unconfirmed": bool(unconfirmed),
            "forbidden": bool(forbidden),
            "simulator": bool(used),
            "extra": bool(extra),
            "wrong": bool(wrong_args),
            "missing": bool(missing),
            "cut_off": cut_off,
        }
        category = _category(opts.mode, flags)
    if used:
        reasons.append(f"the user stated values its scenario does not hold: {', '.join(u['value'] for u in used)}")
    for items, what in ((extra, "extra write"), (wrong_args, "wrong arguments in"), (missing, "missing write")):
        for it in items:
            reasons.append(f"{what} {it['tool']}")
    scores: dict[str, float | bool | None] = {
        "end_state": state_ok,
        "policy": policy_ok,
        "answer": answer_ok,
        "write_precision": precision,
        "write_recall": recall,
        "read_recall": read_recall,
        "live_state_match": live_match,
    }
    verdict = Verdict(
        **_base(ep, row),
        passed=passed,
        category=category,
        scores=scores,
        detail="pass" if passed else f"{category}: " + "; ".join(reasons or ["the checks failed"]),
        evidence=evidence,
    )
    if opts.judge is not None:
        _apply_judge(opts.judge, ep, row, verdict)
    return verdict


def _used(value: str, arg: str) -> bool:
    """The invented ``value`` went into the argument ``arg``: verbatim, as a natural
    rendering of the date ``arg`` holds, or ``arg`` (4+ characters, not a bare number) is
    part of what the user said."""
    v, a = value.lower(), arg.lower()
    if len(v) >= 2 and v in a:
        return True
    if iso_when(arg):
        return checks.mentions(value, arg)
    return len(a) >= 4 and not a.replace(".", "").isdigit() and a in v


def _category(mode: str, flags: dict[str, bool | None]) -> str:
    """The first category of :data:`CATEGORY_ORDER` the flags support in ``mode`` (a
    narrower mode ignores what its check does not look at)."""
    f = dict(flags)
    policy_off = {"unauthorized": False, "unconfirmed": False, "forbidden": False, "refusal_ok": None}
    if mode == "end_state":
        f.update(policy_off, answer_ok=None, simulator=False)
    elif mode == "answer":
        f.update(policy_off, state_ok=True, simulator=False)
    elif mode == "policy":
        f.update(state_ok=True, answer_ok=None, simulator=False)
    goal_missed = not f["state_ok"] or f["answer_ok"] is False or f["refusal_ok"] is False
    if mode == "actions":
        candidates = {
            "extra_write": f["extra"],
            "wrong_write_args": f["wrong"],
            "missing_write": f["missing"] or not f["actions_ok"],
        }
    else:
        state_bad = not f["state_ok"]
        candidates = {
            "unauthorized_write": f["unauthorized"],
            "unconfirmed_write": f["unconfirmed"],
            "simulator_error": f["simulator"] and (goal_missed or f["forbidden"]),
            "extra_write": f["forbidden"] or (state_bad and f["extra"]),
            "wrong_write_args": state_bad and f["wrong"],
            "missing_write": state_bad and f["missing"] and not f["cut_off"],
            "wrong_answer": (f["answer_ok"] is False or f["refusal_ok"] is False) and not f["cut_off"],
            "premature_stop": goal_missed and f["cut_off"],
        }
    allowed = _MODE_CATEGORIES[mode]
    for cat in CATEGORY_ORDER:
        if cat in allowed and candidates.get(cat):
            return cat
    if mode in ("answer", "policy"):
        return "wrong_answer"
    return "wrong_write_args"  # the end state differs although every write matched


def _apply_judge(judge: Judge, ep: Episode, row: dict, verdict: Verdict) -> None:
    try:
        out = judge(ep, row, verdict)
    except Exception as exc:  # a judge is advisory: its failure is recorded, never fatal
        verdict.evidence["judge_error"] = f"{type(exc).__name__}: {exc}"
        verdict.scores["judge"] = None
        return
    if isinstance(out, dict):
        verdict.scores["judge"] = out.get("score")
        verdict.evidence["judge"] = out
    else:
        verdict.scores["judge"] = None if out is None else float(out)
