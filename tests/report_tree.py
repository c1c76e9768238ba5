"""A small synthetic run (``outputs/`` and ``logs/``) for the reporting tests.

Three outlined domains and one dropped outline; AlphaDesk and BetaDesk pass s09, GammaDesk is
quarantined there (its later artifacts carry the reason forward, as the steps write them);
the pair AlphaDesk+BetaDesk is kept and AlphaDesk+GammaDesk pruned. Each artifact has the
fields the real steps write that the reporting code reads (schemas/ are authoritative).
"""

from __future__ import annotations

import json
from pathlib import Path

from agentskiller.llm.usage import usage_line
from agentskiller.steps.tasks.dataset import card_text

DOMAINS = ["AlphaDesk", "BetaDesk", "GammaDesk"]
PAIR = "AlphaDesk+BetaDesk"
FAILED = "GammaDesk"
SERVER_REASON = (
    "2 contract tests still fail after 3 round(s): cancel_booking.valid: KeyError 'booking_id'; get_booking.unknown"
)
#: per ok env: (templates accepted, rejected, instances, tasks valid, invalid, queries, golden calls per query)
COUNTS = {"AlphaDesk": (3, 1, 6, 5, 1, 5, 3), "BetaDesk": (2, 0, 4, 4, 0, 3, 2), PAIR: (2, 2, 4, 4, 0, 4, 5)}
META = {"step": "x", "schema_version": 1, "provider": "offline", "models": {"text": "t", "code": "c"}, "seed": 7}


def _w(root: Path, rel: str, doc) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in doc), encoding="utf-8")
    elif isinstance(doc, str):
        path.write_text(doc, encoding="utf-8")
    else:
        path.write_text(json.dumps({**doc, "meta": META} if isinstance(doc, dict) else doc), encoding="utf-8")


def _history(env: str) -> dict:
    acc, rej, inst, valid, invalid, _, _ = COUNTS[env]
    return {
        "s14": {
            "counts": {"trajectories": acc + rej, "accepted": acc, "rejected": rej, "failed": 0},
            "rejections": [
                {"template_id": f"t{i}", "status": "rejected", "reason": "criterion below 2: realistic"}
                for i in range(rej)
            ],
        },
        "s15": {"counts": {"templates": acc, "instances": inst, "skipped": 0}, "rejections": []},
        "s16": {
            "counts": {"instances": inst, "valid": valid, "invalid": invalid},
            "rejections": [
                {"instance_id": f"i{i}", "reason": "call 2 failed: tool_error: no seat 'S-1'"} for i in range(invalid)
            ],
        },
    }


def _ok_env(root: Path, env: str) -> list[dict]:
    acc, rej, inst, valid, invalid, nq, calls = COUNTS[env]
    hist = _history(env)
    _w(
        root,
        f"task_templates/{env}.json",
        {"env": env, "status": "ok", "counts": hist["s14"]["counts"], "templates": []},
    )
    _w(
        root,
        f"instances/{env}.json",
        {"env": env, "status": "ok", "counts": hist["s15"]["counts"], "history": {k: hist[k] for k in ("s14", "s15")}},
    )
    _w(root, f"tasks/{env}.json", {"env": env, "status": "ok", "counts": hist["s16"]["counts"], "history": hist})
    queries = [{"env": env, "query_id": f"{env}-{i}", "task_id": f"{env}-t{i}"} for i in range(nq)]
    _w(root, f"queries/{env}.jsonl", queries)
    golden = [
        {"type": "function", "function": {"name": f"tool{k}", "arguments": "{}"}, "resolve": "{}"} for k in range(calls)
    ]
    return [{"id": q["query_id"], "env": env, "cross_domain": "+" in env, "golden_calls": golden} for q in queries]


def make_run(work: Path) -> Path:
    """Write the synthetic run under ``work/outputs`` and ``work/logs``; returns ``work/outputs``."""
    root = work / "outputs"
    _w(root, "topics.json", {"topics": [{"name": f"topic{i}"} for i in range(5)], "rejected": []})
    _w(root, "entities.json", {"entities": [{"name": f"Entity{i}"} for i in range(7)], "rejected": [{"name": "X"}]})
    _w(
        root,
        "blueprints/outlines.json",
        {
            "domains": [{"domain": d, "core_entity": "Entity0", "peripheral_entities": []} for d in DOMAINS],
            "dropped": [{"domain": "DeltaDesk", "core_entity": "Entity0", "reason": "over max_domains=3"}],
        },
    )
    _w(
        root,
        "blueprints/index.json",
        {"domains": [{"domain": d, "status": "ok", "reason": None} for d in DOMAINS], "ok": 3, "failed": 0},
    )
    for d in DOMAINS:
        _w(root, f"blueprints/{d}.json", {"domain": d, "status": "ok"})
        _w(root, f"tool_lists/{d}.json", {"domain": d, "status": "ok", "tools": []})
        _w(
            root,
            f"database/{d}/tables.json",
            {"domain": d, "status": "ok", "tables": {"Entity0": "e.json", "R": "r.json"}},
        )
        _w(root, f"database/{d}/summary.json", {"domain": d, "status": "ok", "tables": {}})
        _w(root, f"policies/{d}.json", {"domain": d, "status": "ok"})
        _w(root, f"tool_graphs/{d}.json", {"domain": d, "status": "ok"})
    for d in ("AlphaDesk", "BetaDesk"):
        _w(
            root,
            f"servers/{d}/report.json",
            {"domain": d, "status": "passed", "reason": "", "tests_run": 40, "tests_passed": 40},
        )
    _w(
        root,
        f"servers/{FAILED}/report.json",
        {"domain": FAILED, "status": "failed", "reason": SERVER_REASON, "tests_run": 40, "tests_passed": 38},
    )
    reason = f"s14: server_report failed: {SERVER_REASON}"
    _w(
        root,
        f"task_templates/{FAILED}.json",
        {
            "env": FAILED,
            "status": "failed",
            "reason": reason,
            "counts": {"trajectories": 0, "accepted": 0, "rejected": 0, "failed": 0},
        },
    )
    _w(root, f"instances/{FAILED}.json", {"env": FAILED, "status": "failed", "reason": "s15: templates failed: ..."})
    _w(
        root,
        f"tasks/{FAILED}.json",
        {
            "env": FAILED,
            "status": "failed",
            "reason": "s16: instances failed: ...",
            "counts": {"instances": 0, "valid": 0, "invalid": 0},
        },
    )
    _w(root, f"queries/{FAILED}.jsonl", [{"env": FAILED, "status": "failed", "reason": "s17: tasks failed: ..."}])
    _w(
        root,
        "cross/combinations.json",
        {
            "pairs": [{"pair": PAIR, "domains": PAIR.split("+")}],
            "counts": {"domains": 3, "candidates": 2, "feasible": 1, "kept": 1, "pruned": 1},
            "pruned": {
                "total": 1,
                "by_reason": {"feasibility: member not feasible: server quarantined": 1},
                "sample_limit": 200,
                "sample": [
                    {
                        "pair": "AlphaDesk+GammaDesk",
                        "domains": ["AlphaDesk", "GammaDesk"],
                        "stage": "feasibility",
                        "reason": "GammaDesk: s09 server failed",
                    }
                ],
            },
            "status": "ok",
        },
    )
    _w(root, f"cross/{PAIR}/tool_graph.json", {"status": "ok"})
    _w(root, f"cross/{PAIR}/database/tables.json", {"status": "ok", "tables": {"a": "a", "b": "b", "c": "c"}})
    _w(root, f"cross/{PAIR}/database/summary.json", {"status": "ok", "tables": {}})
    _w(root, f"cross/{PAIR}/policy.json", {"status": "ok"})
    _w(
        root,
        f"cross/{PAIR}/server/report.json",
        {
            "pair": PAIR,
            "status": "passed",
            "reason": "",
            "checks": {"episode": {"passed": True}, "mcp": {"ran": True, "tools_match": True}},
        },
    )
    train: list[dict] = []
    per_env: dict[str, dict] = {}
    for env in COUNTS:
        train += _ok_env(root, env)
        per_env[env] = {"status": "ok", **{k: v["counts"] for k, v in _history(env).items()}, "queries": COUNTS[env][5]}
    per_env[FAILED] = {"status": "failed", "reason": "s17: tasks failed: ..."}
    _w(root, "dataset/train.jsonl", train)
    stats = {
        "totals": {
            "rows": len(train),
            "envs": len(per_env),
            "envs_failed": 1,
            "cross_domain_rows": sum(r["cross_domain"] for r in train),
        },
        "per_env": per_env,
    }
    _w(root, "dataset/stats.json", stats)
    _w(root, "dataset/card.md", card_text(META, stats))
    logs = work / "logs"
    usage = [
        ("blueprint", "AlphaDesk", "s04.blueprint_detail", "model-text", 1200, 800, False, 0.012),
        ("blueprint", "BetaDesk", "s04.blueprint_detail", "model-text", 1100, 700, True, 0.0),
        ("server", "AlphaDesk", "s09.tool_code", "model-code", 3000, 2500, False, 0.05),
        ("server", "GammaDesk", "s09.tool_code", "model-code", 3300, 2600, False, 0.06),
        ("tasks", PAIR, "s14.template", "model-text", 900, 400, False, 0.004),
        ("queries", "AlphaDesk", "s17.query", "model-text", 500, 300, False, 0.002),
    ]
    for rule, unit, task, model, pt, ct, hit, cost in usage:
        path = logs / rule / f"{unit}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "task": task,
            "model": model,
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "cache_hit": hit,
            "round": 0,
            "cost_usd": cost,
            "provider": "openai",
            "role": "text",
            "latency_s": 1.0,
        }
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"2026-01-01 00:00:00,000 INFO {usage_line(row)}\n")
    return root
