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

   (``broken_link`` ranks between 5 and 6: in a cross-domain row, a call of a link's target
   tool whose argument is not the field of the latest result of the link's source tool
   before it - the value was not carried across from the other service -, when the end
   state is wrong; :func:`evaluator.verdicts.broken_links`.)
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
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agentskiller.models.episodes import Episode, Verdict
from agentskiller.reporting.task_audit import server_dir
from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.sandbox import SandboxSettings
from agentskiller.runtime.worker import (
    DEFAULT_PER_CALL_TIMEOUT_S,
    EpisodeResult,
    WorkerError,
    execute_episodes,
    execute_episodes_inprocess,
)

from .calls import AgentCall, ToolCatalog, extract_calls
from .replays import EnvData, Golden, Judge, Options, finish_golden, golden_calls
from .verdicts import CATEGORY_ORDER, MODES, infra_verdict, judge_episode

__all__ = ["MODES", "CATEGORY_ORDER", "evaluate_episodes", "Judge"]

log = logging.getLogger(__name__)

_MAX_WORKER_RUNS = 32  # per env, when a batch has to be split to find an episode that kills the worker


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- replays
def _run_worker(data: EnvData, episodes: list[dict], opts: Options) -> dict[str, EpisodeResult]:
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


def _replay_batch(data: EnvData, episodes: list[dict], opts: Options) -> dict[str, EpisodeResult | str]:
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


def _load_env(name: str, servers_root: Path, blueprint_dirs: list[Path], rows: Iterable[dict]) -> EnvData:
    data = EnvData(name)
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
    opts = Options(mode, sandbox or SandboxSettings(), in_process, require_confirmation, judge, per_call_timeout_s)
    eps = [e if isinstance(e, Episode) else Episode.model_validate(e) for e in episodes]
    by_id = dict(rows) if isinstance(rows, Mapping) else {r["id"]: r for r in rows}
    servers_root = Path(servers_dir)
    bp_dirs = [Path(outputs_dir or servers_root) / "blueprints", servers_root / "blueprints"]

    verdicts: list[Verdict | None] = [None] * len(eps)
    by_env: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        row = by_id.get(ep.query_id)
        if row is None:
            verdicts[i] = infra_verdict(ep, None, f"no dataset row with id {ep.query_id}")
        elif row.get("env") != ep.env:
            verdicts[i] = infra_verdict(ep, row, f"episode env {ep.env!r} is not the row's env {row.get('env')!r}")
        elif ep.stop_reason == "infra_error" or ep.error:
            verdicts[i] = infra_verdict(ep, row, f"the rollout failed: {ep.error or 'stop_reason infra_error'}")
        else:
            by_env.setdefault(ep.env, []).append(i)

    def one_env(env_name: str, idx: list[int]) -> list[tuple[int, Verdict]]:
        env_rows = {eps[i].query_id: by_id[eps[i].query_id] for i in idx}
        data = _load_env(env_name, servers_root, bp_dirs, env_rows.values())
        if data.error:
            return [(i, infra_verdict(eps[i], by_id[eps[i].query_id], data.error)) for i in idx]
        goldens: dict[str, Golden] = {}
        batch: list[dict] = []
        for q, (qid, row) in enumerate(sorted(env_rows.items())):
            try:
                g = Golden(row, golden_calls(row))
            except (ValueError, KeyError, TypeError) as exc:
                goldens[qid] = Golden(row, [], error=f"the row's golden calls are malformed: {exc}")
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
                finish_golden(goldens[ep_id.split(":", 1)[1]], res, data)
        out = []
        for i in idx:
            res = results.get(f"a{i}", "the worker returned no result for this episode")
            out.append((i, judge_episode(eps[i], goldens[eps[i].query_id], agent_calls[i], res, data, opts)))
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
