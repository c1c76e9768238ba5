"""The dataset rule: ``dataset/train.jsonl``, ``dataset/card.md``, ``dataset/stats.json``.

One row per query, in OpenAI chat format plus what a trainer or evaluator needs to check an
episode: ``messages`` (system = the env's policy, then the user's first message), ``tools``,
the user scenario, the golden calls, expected outputs and the final state hash.

Arrow-friendly by design (``datasets.load_dataset("json", ...)``): Arrow infers one schema
for the whole file, and free-form JSON whose keys differ from row to row (tool parameter
schemas, call arguments, tool results) breaks that inference. Those values are stored as
JSON *strings*, the way OpenAI's ``function.arguments`` already is:

* ``tools``: the OpenAI tools list, ``json.dumps``-ed (``json.loads(row["tools"])``);
* ``golden_calls[i].function.arguments`` and ``golden_calls[i].resolve``: JSON strings;
* ``expected_outputs[i]``: JSON strings.

Every row carries ``env_version`` (:mod:`agentskiller.env_version`: a content hash of the
env's server code, database, policy, the task and the user simulator's version), and
``tasks_stats.json`` each env's version without a task (``per_env.<env>.env_version``), so a
reward is compared with another only when they were computed in the same environment.

Every other column has one fixed shape (see ``schemas/dataset_row.schema.json``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from agentskiller import artifacts
from agentskiller.artifacts import as_paths
from agentskiller.env_version import env_version, load_env_parts, row_env_version
from agentskiller.jobs import StepContext

ROW_SCHEMA = "dataset_row"
STATS_SCHEMA = "dataset_stats"


class TooFewRows(RuntimeError):
    """The dataset would have fewer rows than ``dataset.min_rows``: the message names every
    quarantined unit and its reason, so a run that produced nothing says why."""


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def _env_of(p: Path) -> str:
    """The env a policy / tool list belongs to: ``policies/{domain}.md`` or a pair's
    ``cross/{pair}/policy.md`` and ``cross/{pair}/tool_list.json``."""
    return p.parent.name if "+" in p.parent.name else p.stem


def _tools_of(doc: Any) -> list[dict]:
    if isinstance(doc, list):
        return doc
    return list(doc.get("tools") or [])


def _policy_for(env: str, domains: list[str], policies: dict[str, str]) -> str:
    if env in policies:
        return policies[env]
    return "\n\n".join(policies[d] for d in domains if d in policies)


def _tools_for(env: str, domains: list[str], tool_lists: dict[str, list[dict]]) -> list[dict]:
    if env in tool_lists:
        return tool_lists[env]
    return [t for d in domains for t in tool_lists.get(d, [])]


def build_row(query: dict, task: dict, policy: str, tools: list[dict]) -> dict:
    return {
        "id": query["query_id"],
        "env": query["env"],
        "domains": query["domains"],
        "cross_domain": query["cross_domain"],
        "messages": [{"role": "system", "content": policy}, {"role": "user", "content": query["first_message"]}],
        "tools": _dumps(tools),
        "scenario": {
            "persona": query["persona"],
            "reason_for_call": query["reason_for_call"],
            "instruction": query["instruction"],
            "known_facts": query["known_facts"],
        },
        "trajectory": query["trajectory"],
        "golden_calls": [
            {
                "type": "function",
                "function": {"name": c["name"], "arguments": _dumps(c["arguments"])},
                "resolve": _dumps(c.get("resolve") or {}),
                "expect": c.get("expect", "ok"),
            }
            for c in task["golden_calls"]
        ],
        "expected_outputs": [_dumps(o) for o in task["expected_outputs"]],
        "task_kind": task.get("task_kind", "action"),
        "grounding": [
            [{"argument": a, "source": src} for a, src in sorted(g.items())] for g in task.get("grounding") or []
        ],
        "expected_answer": [
            {"call": a["call"], "field": a["field"], "value": _dumps(a["value"])}
            for a in task.get("expected_answer") or []
        ],
        "refusal": (
            {**task["refusal"], "arguments": _dumps(task["refusal"]["arguments"])} if task.get("refusal") else None
        ),
        "difficulty": task["difficulty"],
        "initial_state_hash": task.get("initial_state_hash") or "",
        "final_state_hash": task["final_state_hash"],
        "task_id": task["task_id"],
        "template_id": task["template_id"],
        "instance_id": task["instance_id"],
    }


def _server_of(report: Path) -> str:
    """The env a server report belongs to: ``servers/{domain}/report.json`` or a pair's
    ``cross/{pair}/server/report.json``."""
    return report.parent.parent.name if report.parent.name == "server" else report.parent.name


def servers_by_env(server_reports: Any) -> dict[str, Path]:
    return {_server_of(p): p.parent for p in as_paths(server_reports)}


def add_env_version(rows: list[dict], server: Path) -> dict[str, str]:
    """Stamp every row of one env with its ``env_version``; the env's parts (code,
    database, policy of the first row, simulator)."""
    parts = load_env_parts(server, rows[0]["messages"][0]["content"]) if rows else {}
    for r in rows:
        r["env_version"] = row_env_version(r, parts)
    return parts


def golden_calls(row: dict) -> list[dict]:
    """A row's golden calls back as ``{"name", "arguments", "resolve"}`` dicts (for replay)."""
    return [
        {
            "name": c["function"]["name"],
            "arguments": json.loads(c["function"]["arguments"]),
            "resolve": json.loads(c["resolve"]),
        }
        for c in row["golden_calls"]
    ]


def card_text(meta: dict, stats: dict) -> str:
    t = stats["totals"]
    lines = [
        "# AgentSkiller synthetic tool-use dataset",
        "",
        "## What",
        "",
        "Multi-turn tool-use tasks for training function-calling agents. Each row is one",
        "customer's request to an executable service environment (an MCP server over a",
        "synthetic database, governed by a written policy): the policy as the system message,",
        "the customer's first message, the environment's tools in OpenAI format, the user",
        "scenario (persona, reason, full instruction, known facts) and the golden tool calls",
        "with their expected outputs and the final database state hash.",
        "",
        "## How it was made",
        "",
        "1. Domains (entities, blueprint, database, policy, tool graph, MCP server) are",
        "   synthesized and the server is tested against contract tests (steps s01-s09).",
        "2. s14: each tool-graph trajectory gets an abstract task template written by the text",
        "   model and scored by an LLM judge (realistic, trajectory-faithful, policy-compliant,",
        "   unambiguous); only templates above the threshold are kept.",
        "3. s15: concrete values are chosen from the database so that the authorized user owns",
        "   the records and every precondition holds (deterministic, seeded); a lookup is added",
        "   before any record the user names by its attributes rather than its ID.",
        "4. s16: the golden calls run on a fresh state in a sandboxed worker; a task is kept",
        "   only if every call succeeds (an auth-failure user's mistyped ID is refused), every",
        "   write changes the state, every list call returns a record and every argument has",
        "   a source an agent can reach (`grounding`): the user states it, an earlier result",
        "   holds it, the tool's schema allows it as a literal, or it is today's date.",
        "5. s17: a persona-based user simulator writes the scenario and first message; every",
        "   concrete value is checked against the task's instance (hallucination check).",
        "",
        "## Task kinds",
        "",
        "- `action`: the user asks for writes; `final_state_hash` is where they lead.",
        "- `lookup`: read-only; `expected_answer` holds the values the user must be told.",
        "- `refusal`: the user asks for a write the policy forbids; `refusal` names the call,",
        "  the rule and why. The golden path makes no write; the server refuses the call.",
        "- `auth_failure`: the user gives an ID that does not authorize (the golden call has",
        "  `expect: refused`); nothing else may happen.",
        "",
        "`difficulty` counts calls, writes, arguments taken from earlier results (lookups)",
        "and domains.",
        "",
        "## Format notes",
        "",
        "`tools`, `golden_calls[].function.arguments`, `golden_calls[].resolve` and",
        "`expected_outputs[]` are JSON strings (as OpenAI's `function.arguments` already is):",
        "their keys differ from row to row, which Arrow cannot infer as one schema. Decode",
        "them with `json.loads`. `resolve` maps an argument to `{call, field}`: its value is",
        "field `field` of the result of call `call` (an ID a create returned); replays apply",
        "the same rule and reach `final_state_hash`.",
        "",
        "## Counts",
        "",
        f"- rows: {t['rows']}",
        f"- environments: {t['envs']} ({t['envs_failed']} quarantined)",
        f"- cross-domain rows: {t['cross_domain_rows']}",
        "- task kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.get("task_kinds", {}).items())),
        "",
        "| env | templates accepted / rejected / failed | instances | tasks valid / invalid | queries |",
        "|---|---|---|---|---|",
    ]
    for env, c in sorted(stats["per_env"].items()):
        if c.get("status") == "failed":
            lines.append(f"| {env} | quarantined: {c.get('reason', '')} | | | |")
            continue
        s14, s15, s16 = c.get("s14", {}), c.get("s15", {}), c.get("s16", {})
        lines.append(
            f"| {env} | {s14.get('accepted', 0)} / {s14.get('rejected', 0)} / {s14.get('failed', 0)} | "
            f"{s15.get('instances', 0)} | {s16.get('valid', 0)} / {s16.get('invalid', 0)} | "
            f"{c.get('queries', 0)} |"
        )
    lines += [
        "",
        *rollout_lines(stats.get("rollouts")),
        "## Provenance",
        "",
        f"- provider: {meta.get('provider')}",
        f"- models: text `{meta.get('models', {}).get('text')}`, code `{meta.get('models', {}).get('code')}`",
        f"- seed: {meta.get('seed')}",
        f"- schema version: {meta.get('schema_version')}",
        "",
    ]
    if meta.get("provider") == "offline":
        lines += [
            "The offline provider is a deterministic procedural stand-in for a model (demos,",
            "tests, CI): phrasing comes from seeded templates, not from a language model.",
            "",
        ]
    return "\n".join(lines)


def env_rows(
    queries_path: Any, tasks_path: Any, policy_paths: Any, tool_list_paths: Any, server_report: Any = None
) -> list[dict]:
    """The dataset rows of one env, exactly as :func:`run` builds them, from that env's own
    artifacts (the rollout rule plays them without waiting for every env); none for a
    quarantined env. ``env_version`` is set when the env's server report is given."""
    policies = {_env_of(p): artifacts.read_text(p) for p in as_paths(policy_paths) if p.is_file()}
    tool_lists = {_env_of(p): _tools_of(artifacts.read(p)) for p in as_paths(tool_list_paths) if p.is_file()}
    queries = artifacts.read_lines(queries_path)
    doc = artifacts.read(tasks_path)
    if doc.get("status") == "failed" or any(q.get("status") == "failed" for q in queries):
        return []
    env = Path(queries_path).stem
    tasks = {t["task_id"]: t for t in doc.get("tasks", [])}
    rows = [
        build_row(
            q, tasks[q["task_id"]], _policy_for(env, q["domains"], policies), _tools_for(env, q["domains"], tool_lists)
        )
        for q in queries
    ]
    for report in as_paths(server_report)[:1]:
        add_env_version(rows, report.parent)
    return sorted(rows, key=lambda r: (r["env"], r["id"]))


def run(ctx: StepContext) -> None:
    policies = {_env_of(p): artifacts.read_text(p) for p in as_paths(ctx.inputs.get("policies")) if p.is_file()}
    tool_lists = {
        _env_of(p): _tools_of(artifacts.read(p)) for p in as_paths(ctx.inputs.get("tool_lists")) if p.is_file()
    }
    tasks_by_env: dict[str, dict] = {}
    for p in as_paths(ctx.inputs.get("tasks")):
        doc = artifacts.read(p)
        tasks_by_env[doc.get("env") or p.stem] = doc
    servers = servers_by_env(ctx.inputs.get("servers"))
    rows: list[dict] = []
    per_env: dict[str, dict] = {}
    traj_len: Counter = Counter()
    task_kinds: Counter = Counter()
    tools_used: Counter = Counter()
    rejections: dict[str, Counter] = {"s14": Counter(), "s15": Counter(), "s16": Counter(), "s17": Counter()}
    for p in sorted(as_paths(ctx.inputs.get("queries"))):
        queries = artifacts.read_lines(p)
        env = p.stem
        doc = tasks_by_env.get(env, {})
        if doc.get("status") == "failed" or any(q.get("status") == "failed" for q in queries):
            reason = doc.get("reason") or next((q.get("reason") for q in queries if q.get("reason")), "failed")
            per_env[env] = {"status": "failed", "reason": reason}
            continue
        tasks = {t["task_id"]: t for t in doc.get("tasks", [])}
        hist = doc.get("history", {})
        entry = {
            "status": "ok",
            **{s: dict(h.get("counts", {})) for s, h in sorted(hist.items())},
            "queries": len(queries),
        }
        for step, h in hist.items():
            for r in h.get("rejections", []):
                rejections.setdefault(step, Counter())[_reason_key(r.get("reason"))] += 1
        n_valid = sum(t["status"] == "valid" for t in tasks.values())
        if n_valid > len(queries):
            rejections["s17"]["query failed the grounding / completeness checks"] += n_valid - len(queries)
        per_env[env] = entry
        env_rows_: list[dict] = []
        for q in queries:
            task = tasks[q["task_id"]]
            domains = q["domains"]
            env_rows_.append(
                build_row(q, task, _policy_for(env, domains, policies), _tools_for(env, domains, tool_lists))
            )
            traj_len[str(len(task["golden_calls"]))] += 1
            task_kinds[task.get("task_kind", "action")] += 1
            tools_used.update(f"{env}:{c['name']}" for c in task["golden_calls"])
        if env_rows_:
            if env not in servers:
                raise ValueError(f"dataset: env {env} has rows but no server among the inputs (servers)")
            entry["env_version"] = env_version(add_env_version(env_rows_, servers[env]))
        rows.extend(env_rows_)
    rows.sort(key=lambda r: (r["env"], r["id"]))
    min_rows = ctx.cfg.dataset.min_rows
    if len(rows) < min_rows:
        raise TooFewRows(too_few_rows_message(len(rows), min_rows, per_env, ctx.inputs.get("index")))
    stats = {
        "totals": {
            "rows": len(rows),
            "envs": len(per_env),
            "envs_failed": sum(1 for e in per_env.values() if e.get("status") == "failed"),
            "cross_domain_rows": sum(r["cross_domain"] for r in rows),
        },
        "per_env": per_env,
        "trajectory_lengths": dict(sorted(traj_len.items(), key=lambda kv: int(kv[0]))),
        "task_kinds": dict(sorted(task_kinds.items())),
        "tools_used": dict(sorted(tools_used.items())),
        "rejection_reasons": {s: dict(sorted(c.items())) for s, c in rejections.items()},
    }
    ctx.write_jsonl("train", rows, ROW_SCHEMA)
    ctx.write_json("stats", stats, STATS_SCHEMA)
    if "card" in ctx.outputs:  # the workflow writes the card after the rollouts (card_run)
        ctx.write_text("card", card_text(ctx.meta(), stats))
    ctx.log.info("dataset: %d rows from %d envs", len(rows), len(per_env))


def card_run(ctx: StepContext) -> None:
    """``dataset/stats.json`` and ``dataset/card.md`` once the rollouts are judged: the
    tasks' figures (``dataset/tasks_stats.json``) plus pass rates, failures by category and
    turn counts of the rollouts (:func:`agentskiller.steps.rollout.trajectories.stats`)."""
    from agentskiller.models.episodes import Episode, Verdict
    from agentskiller.steps.rollout.trajectories import stats as rollout_stats

    stats = artifacts.read(ctx.inputs["tasks_stats"])
    stats.pop("meta", None)
    episodes = [
        Episode.model_validate(e) for p in as_paths(ctx.inputs.get("rollouts")) for e in artifacts.read_lines(p)
    ]
    verdicts = [Verdict.model_validate(v) for p in as_paths(ctx.inputs.get("results")) for v in artifacts.read_lines(p)]
    stats["rollouts"] = rollout_stats(episodes, verdicts)
    ctx.write_json("stats", stats, STATS_SCHEMA)
    ctx.write_text("card", card_text(ctx.meta(), stats))


def rollout_lines(r: dict | None) -> list[str]:
    """The card's section on the rollouts and their evaluation (none before they exist)."""
    if not r:
        return []
    lines = [
        "## Rollouts and evaluation",
        "",
        "Every row was played by a simulated user and an assistant over the env's tools and",
        "judged by the evaluator (end state, writes, lookup answers, policy); the passing",
        "conversations are `dataset/trajectories.jsonl`.",
        "",
        f"- episodes: {r['episodes']}, passed: {r['passed']} (pass rate {r['pass_rate']:.1%}), "
        f"infra errors: {r['infra_errors']}",
        "- failures by category: " + (", ".join(f"{k} {v}" for k, v in r["failures_by_category"].items()) or "none"),
        "- by task kind: "
        + ", ".join(f"{k} {c.get('passed', 0)}/{sum(c.values())}" for k, c in r["by_task_kind"].items()),
        "- user turns per episode: " + ", ".join(f"{k}: {v}" for k, v in r["turns"].items()),
        "",
    ]
    return lines


def quarantined_units(per_env: dict[str, dict], index: Any = None) -> list[tuple[str, str]]:
    """``(unit, reason)`` of every failed blueprint of the index and every env that gave no row."""
    units: list[tuple[str, str]] = []
    for p in as_paths(index):
        if not p.is_file():
            continue
        doc = artifacts.read(p)
        for d in doc.get("domains", []) if isinstance(doc, dict) else []:
            # a failed blueprint's env is listed below with the reason carried forward
            if d.get("status") != "ok" and d.get("domain") not in per_env:
                units.append((f"blueprint {d.get('domain')}", str(d.get("reason") or d.get("status"))))
    for env, entry in sorted(per_env.items()):
        if entry.get("status") == "failed":
            units.append((f"env {env}", str(entry.get("reason") or "failed")))
        elif not entry.get("queries"):
            counts = ", ".join(
                f"{step} {k} {v}" for step in ("s14", "s15", "s16") for k, v in (entry.get(step) or {}).items() if v
            )
            units.append((f"env {env}", f"no query survived ({counts or 'no counts'})"))
    return units


def too_few_rows_message(n: int, min_rows: int, per_env: dict[str, dict], index: Any = None) -> str:
    units = quarantined_units(per_env, index)
    lines = [f"dataset: {n} row(s), fewer than dataset.min_rows = {min_rows}; {len(units)} unit(s) gave none:"]
    if units:
        lines += [f"  - {unit}: {reason}" for unit, reason in units]
    elif per_env:
        lines.append(f"  (none quarantined: the {len(per_env)} env(s) gave {n} row(s) in all)")
    else:
        lines.append("  (no env reached the dataset step)")
    return "\n".join(lines)


def _reason_key(reason: Any) -> str:
    """Group reasons by their kind: IDs, values and numbers are masked so counts aggregate."""
    text = str(reason or "unknown")
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", text)
    text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b|\b[\w-]*\d[\w-]*\b", "<id>", text)
    return text[:160]
