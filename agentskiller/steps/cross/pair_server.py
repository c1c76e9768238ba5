"""The MCP server of a pair ``A+B``: no new code, the members' proven tools over the fused database.

Size: over 400 lines because the manifest, the episode check and the Bridge Rule check share the pair's loading and quarantine paths.

Writes ``cross/{pair}/server/report.json`` (status, reason, checks and the runtime
``environment`` manifest) and ``cross/{pair}/tool_list.json`` (the namespaced union of the
members' s05 tool lists, names ``<Domain>__<tool>``).

The manifest: ``tools_modules`` point at the members' own ``servers/<Domain>/tools.py``,
``namespace`` maps each member's logical table names to the fused physical tables (entities
to themselves, relationships to ``<Domain>_<Relationship>``), ``tool_prefix`` is the domain,
so the unchanged tool code reads its own tables inside the pair.

Verified for real before the pair is ``passed``:

1. a sandboxed worker episode (the runtime's fast path) authorizes through BOTH members'
   authorization tools as one shared person and calls a read tool of each member (on a
   record of that member's namespaced relationship table where one exists): every call
   succeeds, the reads change nothing, and both authorizations name the same person;
2. the Bridge Rules (:mod:`agentskiller.models.bridge_rules`, from the blueprints and the
   links of ``cross/{pair}/tool_graph.json``) are the ones the merged policy states (s13's
   markers ``<!-- RULE: bridge.<id> -->``), the manifest records them (``bridge``) so the
   runtime enforces them, and every rule's contract tests (:mod:`.bridge_tests`: a violating
   call refused, a conforming one accepted) pass in the sandboxed worker; a rule without a
   test fails the pair like a failing one;
3. the live server, ``python -m agentskiller.serve cross/{pair}/server``, asked over
   MCP stdio (``initialize``, ``tools/list``), advertises exactly the pair's tool list (s09's check).

A failed member (blueprint, server, fused database) or a failed check quarantines the pair:
status ``failed``, a reason, no environment; the run goes on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import as_paths, require_blueprint
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import Blueprint, Tool
from agentskiller.models.bridge_rules import BridgeRule, derive_bridge_rules
from agentskiller.steps.cross.s10_combinations import TOOL_NAME_RE, pair_members
from agentskiller.steps.tasks.task_env import NS_SEP

REPORT_SCHEMA = "pair_server_report"
TOOL_LIST_SCHEMA = "tool_list"
READ_KINDS = ("read", "search", "compute")


class PairFailure(Exception):
    """The pair cannot be served; the message is the report's reason."""


def _by_domain(paths: list[Path], dir_named: bool) -> dict[str, Path]:
    return {(p.parent.name if dir_named else p.stem): p for p in paths}


def namespaced_tool_list(members: dict[str, list[dict]]) -> list[dict]:
    """The pair's OpenAI tool list: each member's tools, renamed ``<Domain>__<tool>``."""
    out = []
    for domain in sorted(members):
        for t in members[domain]:
            fn = dict(t["function"])
            fn["name"] = f"{domain}{NS_SEP}{fn['name']}"
            if not TOOL_NAME_RE.fullmatch(fn["name"]):
                raise PairFailure(f"namespaced tool name {fn['name']!r} does not fit ^[a-zA-Z0-9_-]{{1,64}}$")
            out.append({**t, "function": fn})
    names = [t["function"]["name"] for t in out]
    if len(set(names)) != len(names):
        raise PairFailure("duplicate namespaced tool names")
    return out


def pair_manifest(
    pair: str,
    bps: list[Blueprint],
    db_dir: Path,
    tools: dict[str, Path],
    server_dir: Path,
    simulation_time: str,
    bridge: list[BridgeRule] | None = None,
) -> dict:
    """The runtime manifest of the pair (paths relative to ``server_dir``)."""
    fused = artifacts.read(db_dir / "tables.json")
    base = server_dir.resolve()
    tables = {name: os.path.relpath((db_dir / rel).resolve(), base) for name, rel in sorted(fused["tables"].items())}
    namespace = {d: dict(sorted(ns.items())) for d, ns in sorted(fused["namespace"].items())}
    for bp in bps:  # every table the member's code may name must be mapped
        missing = sorted(set(bp.tables) - set(namespace.get(bp.domain, {})))
        if missing:
            raise PairFailure(f"s12 namespace of {bp.domain} lacks {missing}")
    domains = sorted(bp.domain for bp in bps)
    return {
        "env": pair,
        "domains": domains,
        "core_entity": bps[0].core_entity,
        "tables": tables,
        "namespace": namespace,
        "tools_modules": {d: os.path.relpath(tools[d].resolve(), base) for d in domains},
        "simulation_time": simulation_time,
        "tool_prefix": {d: d for d in domains},
        "bridge": [r.runtime() for r in bridge or []],
    }


# ----------------------------------------------------------------- episode check
def _load_records(manifest: dict, server_dir: Path, table: str) -> tuple[str, list[dict]]:
    data = artifacts.read((server_dir / manifest["tables"][table]).resolve())
    return data["primary_key"], sorted(data.get("records") or [], key=lambda r: str(r.get(data["primary_key"])))


def _core_fk(bp: Blueprint, rel_name: str) -> str | None:
    rel = bp.relationship(rel_name)
    return next((c.name for c in rel.columns if c.references == bp.core_entity), None) if rel else None


def _auth_call(bp: Blueprint, user: Any, core_pk: str) -> dict:
    auth = next((t for t in bp.tools if t.kind == "authorize"), None)
    if auth is None:
        raise PairFailure(f"{bp.domain} has no authorization tool")
    param = next((p for p in auth.parameters if (p.column or p.name) == core_pk), None)
    if param is None:
        param = next((p for p in auth.parameters if p.required), None)
    if param is None:
        raise PairFailure(f"{bp.domain}.{auth.name}: no parameter for the person's {core_pk}")
    return {"tool": f"{bp.domain}{NS_SEP}{auth.name}", "arguments": {param.name: user}}


def _read_call(bp: Blueprint, manifest: dict, server_dir: Path, user: Any, core_pk: str) -> dict:
    """A read call of ``bp``: preferably a read of one of the person's records in a
    (namespaced) relationship table, else a read tool without required parameters, else a
    read of the person's own record."""
    ns = manifest["namespace"][bp.domain]
    reads = [t for t in bp.tools if t.kind in READ_KINDS]

    def required(t: Tool) -> list:
        return [p for p in t.parameters if p.required]

    for t in reads:
        rel = bp.relationship(t.table)
        req = required(t)
        if rel is None or len(req) != 1 or (req[0].column or req[0].name) != rel.primary_key:
            continue
        fk = _core_fk(bp, rel.name)
        pk, recs = _load_records(manifest, server_dir, ns[rel.name])
        own = [r for r in recs if fk and r.get(fk) == user]
        if own:
            return {"tool": f"{bp.domain}{NS_SEP}{t.name}", "arguments": {req[0].name: own[0][pk]}}
    for t in reads:
        if not required(t):
            return {"tool": f"{bp.domain}{NS_SEP}{t.name}", "arguments": {}}
    for t in reads:
        req = required(t)
        if t.table == bp.core_entity and len(req) == 1 and (req[0].column or req[0].name) == core_pk:
            return {"tool": f"{bp.domain}{NS_SEP}{t.name}", "arguments": {req[0].name: user}}
    raise PairFailure(f"{bp.domain}: no read tool the episode check can call")


def shared_user(bps: list[Blueprint], manifest: dict, server_dir: Path) -> Any:
    """The person with records in the most members' relationship tables (then the most
    records, then the smallest key): the person both storylines are about."""
    core = bps[0].core_entity
    pk, people = _load_records(manifest, server_dir, core)
    owned: dict[Any, list[int]] = {r[pk]: [0] * len(bps) for r in people}
    for i, bp in enumerate(bps):
        for rel in bp.relationships:
            fk = _core_fk(bp, rel.name)
            if not fk:
                continue
            _, recs = _load_records(manifest, server_dir, manifest["namespace"][bp.domain][rel.name])
            for r in recs:
                if r.get(fk) in owned:
                    owned[r[fk]][i] += 1
    if not owned:
        raise PairFailure(f"the {core} table is empty")
    return min(owned, key=lambda u: (-sum(1 for n in owned[u] if n), -sum(owned[u]), str(u)))


def episode_check(bps: list[Blueprint], manifest: dict, server_dir: Path, sandbox) -> dict:
    """Authorize in both members as one person and read in each, in the sandboxed worker."""
    from agentskiller.runtime.worker import WorkerError, execute_episodes

    core_pk = _load_records(manifest, server_dir, bps[0].core_entity)[0]
    user = shared_user(bps, manifest, server_dir)
    calls: list[dict] = []
    for bp in bps:
        calls.append(_auth_call(bp, user, core_pk))
        calls.append(_read_call(bp, manifest, server_dir, user, core_pk))
    check: dict[str, Any] = {"user": user, "calls": [c["tool"] for c in calls], "passed": False, "detail": ""}
    try:
        [ep] = execute_episodes(server_dir, [{"id": "pair", "calls": calls}], sandbox)
    except WorkerError as exc:
        check["detail"] = str(exc)[:1000]
        return check
    recs = [c.model_dump() for c in ep.calls]
    problems = []
    if ep.error:
        problems.append(f"episode error: {ep.error}")
    if len(recs) != len(calls):
        problems.append(f"{len(recs)} of {len(calls)} calls ran")
    prev = None
    for call, rec in zip(calls, recs):
        if not rec["ok"]:
            problems.append(f"{call['tool']} failed: {rec['error_type']}: {rec['error']}")
        elif call["tool"] in _read_names(bps) and prev is not None and rec["state_hash_after"] != prev:
            problems.append(f"{call['tool']} is a read that changed the state")
        prev = rec["state_hash_after"]
    for call, rec in zip(calls[0::2], recs[0::2]):  # both authorizations name the same person
        if rec["ok"] and user not in _values(rec["result"]):
            problems.append(f"{call['tool']} did not authorize {user!r}: {str(rec['result'])[:200]}")
    check["passed"] = not problems
    check["detail"] = "; ".join(problems)[:2000]
    return check


def _read_names(bps: list[Blueprint]) -> set[str]:
    return {f"{bp.domain}{NS_SEP}{t.name}" for bp in bps for t in bp.tools if t.kind in READ_KINDS}


def _values(obj: Any) -> list:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return [obj]


# ----------------------------------------------------------------- bridge rules
def stated_rules(policy_report: Path | None, rules: list[BridgeRule]) -> None:
    """The merged policy (s13) must state every Bridge Rule the server enforces, and no other."""
    if policy_report is None or not Path(policy_report).is_file():
        raise PairFailure("no merged policy report (s13)")
    rep = artifacts.read(Path(policy_report))
    if rep.get("status") != "ok":
        raise PairFailure(f"s13 policy merge failed: {rep.get('reason', '')}")
    stated = {r.get("id") for r in rep.get("bridge_rules") or []}
    want = {r.id for r in rules}
    if stated != want:
        raise PairFailure(
            f"the merged policy states the Bridge Rules {sorted(x for x in stated if x)}, the server enforces "
            f"{sorted(want)}"
        )


def member_tasks(paths: list[Path]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in paths:
        doc = artifacts.read(p)
        if doc.get("status") != "failed":
            out[p.stem] = list(doc.get("tasks") or [])
    return out


def bridge_check(
    bps: list[Blueprint],
    rules: list[BridgeRule],
    manifest: dict,
    server_dir: Path,
    tool_list: list[dict],
    tasks: dict[str, list[dict]],
    sandbox,
) -> dict:
    """Every Bridge Rule's contract tests in one sandboxed worker run."""
    from agentskiller.runtime.worker import WorkerError, execute_episodes
    from agentskiller.steps.cross.bridge_tests import PairData, derive_tests, judge

    data = PairData.load(bps, manifest, server_dir, shared_user(bps, manifest, server_dir), tasks)
    tests, missing = derive_tests(rules, data, tool_list)
    per_rule: dict[str, dict[str, Any]] = {
        r.id: {"id": r.id, "kind": r.kind, "violating": 0, "conforming": 0, "passed": 0, "failures": []} for r in rules
    }
    check: dict[str, Any] = {"rules": len(rules), "tests": len(tests), "passed": False, "detail": ""}
    try:
        eps = execute_episodes(server_dir, [t.episode(i) for i, t in enumerate(tests)], sandbox) if tests else []
    except WorkerError as exc:
        check["detail"] = str(exc)[:1000]
        check["by_rule"] = list(per_rule.values())
        return check
    problems = [f"{rid}: no contract test ({why})" for rid, why in missing.items()]
    for t, ep in zip(tests, eps, strict=True):
        entry = per_rule[t.rule]
        entry[t.kind] += 1
        why = ep.error or judge(t, [c.model_dump() for c in ep.calls])
        if why:
            entry["failures"].append(f"{t.kind}: {why}"[:300])
            problems.append(f"{t.rule} {t.kind}: {why}")
        else:
            entry["passed"] += 1
    for rid, entry in per_rule.items():
        if rid not in missing and not (entry["violating"] and entry["conforming"]):
            problems.append(f"{rid}: needs a violating and a conforming test")
    check["tests_passed"] = sum(e["passed"] for e in per_rule.values())
    check["by_rule"] = list(per_rule.values())
    check["passed"] = not problems
    check["detail"] = "; ".join(problems)[:2000]
    return check


# ------------------------------------------------------------------------- step
def _report(pair: str, domains: list[str], status: str, reason: str, checks: dict, environment: dict | None) -> dict:
    # no top-level "env": load_environment() would take the report for a bare manifest
    return {
        "pair": pair,
        "domains": domains,
        "status": status,
        "reason": reason,
        "checks": checks,
        "environment": environment,
    }


def _quarantine(ctx: StepContext, pair: str, domains: list[str], reason: str, checks: dict | None = None) -> None:
    ctx.log.warning("pair server %s quarantined: %s", pair, reason)
    ctx.write_json("tool_list", {"domain": pair, "status": "failed", "reason": reason, "tools": []}, TOOL_LIST_SCHEMA)
    ctx.write_json("report", _report(pair, domains, "failed", reason, checks or {}, None), REPORT_SCHEMA)


def upstream_failure(ctx: StepContext) -> str | None:
    for p in as_paths(ctx.inputs.get("server_reports")):
        rep = artifacts.read(p)
        if rep.get("status") != "passed":
            return f"s09 server of {p.parent.name} failed: {rep.get('reason', '')}"
    for p in as_paths(ctx.inputs.get("tool_lists")):
        tl = artifacts.read(p)
        if tl.get("status") == "failed":
            return f"s05 tool list of {p.stem} failed: {tl.get('reason', '')}"
    tables = Path(ctx.inputs["db"]) / "tables.json"
    if not tables.is_file():
        return "s12 database: no tables.json"
    fused = artifacts.read(tables)
    if fused.get("status") == "failed":
        return f"s12 database failed: {fused.get('reason', '')}"
    return None


def run_checks(
    bps: list[Blueprint],
    manifest: dict,
    server_dir: Path,
    tool_list: list[dict],
    sandbox,
    rules: list[BridgeRule] | None = None,
    tasks: dict[str, list[dict]] | None = None,
) -> dict:
    """The sandboxed two-authorization episode, the Bridge Rules' contract tests, then (when
    both passed) the live MCP tool list."""
    from agentskiller.steps.domains.s09_server import check_mcp_server, mcp_check_timeout

    checks: dict[str, Any] = {}
    try:
        checks["episode"] = episode_check(bps, manifest, server_dir, sandbox)
    except PairFailure as exc:
        checks["episode"] = {"passed": False, "detail": str(exc)}
    if checks["episode"]["passed"] and rules is not None:
        try:
            checks["bridge"] = bridge_check(bps, rules, manifest, server_dir, tool_list, tasks or {}, sandbox)
        except PairFailure as exc:
            checks["bridge"] = {"passed": False, "detail": str(exc), "rules": len(rules), "tests": 0}
    if checks["episode"]["passed"] and checks.get("bridge", {"passed": True})["passed"]:
        checks["mcp"] = check_mcp_server(server_dir, tool_list, sandbox, timeout_s=mcp_check_timeout(sandbox))
    return checks


def run(ctx: StepContext) -> None:
    from agentskiller.steps.domains.s09_server import sandbox_settings

    report_path = ctx.output("report")
    server_dir = report_path.parent
    pair = ctx.wildcards.get("pair") or server_dir.parent.name
    domains = pair_members(pair)
    try:
        reason = upstream_failure(ctx)
        if reason:
            raise PairFailure(f"upstream failed: {reason}")
        bps = sorted(
            (require_blueprint(p, PairFailure) for p in as_paths(ctx.inputs["blueprints"])), key=lambda b: b.domain
        )
        if [bp.domain for bp in bps] != domains:
            raise PairFailure(f"blueprints {[bp.domain for bp in bps]} are not the members of {pair}")
        tools = _by_domain(as_paths(ctx.inputs["tools"]), dir_named=True)
        lists = {
            d: list(artifacts.read(p).get("tools") or [])
            for d, p in _by_domain(as_paths(ctx.inputs["tool_lists"]), dir_named=False).items()
        }
        tool_list = namespaced_tool_list({d: lists[d] for d in domains})
        graph_path = ctx.inputs.get("graph")
        graph = artifacts.read(Path(graph_path)) if graph_path and Path(graph_path).is_file() else None
        rules = derive_bridge_rules(bps, graph if graph and graph.get("status") != "failed" else None)
        stated_rules(ctx.inputs.get("policy_report"), rules)
        manifest = pair_manifest(
            pair, bps, Path(ctx.inputs["db"]), tools, server_dir, ctx.cfg.simulation_time, bridge=rules
        )
        tasks = member_tasks(as_paths(ctx.inputs.get("tasks")))
    except PairFailure as exc:
        _quarantine(ctx, pair, domains, str(exc))
        return
    sandbox = sandbox_settings(ctx.config)
    # The checks load the environment from a staging sibling of the server folder (same depth,
    # so the manifest's relative paths hold); the report is written once, after every check.
    staging = server_dir.parent / f".{server_dir.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    io.write_json(staging / "report.json", {"status": "passed", "environment": manifest})
    try:
        checks = run_checks(bps, manifest, staging, tool_list, sandbox, rules, tasks)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not checks["episode"]["passed"]:
        _quarantine(ctx, pair, domains, f"episode check failed: {checks['episode']['detail']}", checks)
        return
    if not checks["bridge"]["passed"]:
        _quarantine(ctx, pair, domains, f"Bridge Rule tests failed: {checks['bridge']['detail']}", checks)
        return
    mcp = checks["mcp"]
    if not mcp["tools_match"]:
        _quarantine(
            ctx, pair, domains, f"the live MCP server does not advertise the tool list: {mcp['detail']}", checks
        )
        return
    ctx.write_json("tool_list", {"domain": pair, "status": "ok", "tools": tool_list}, TOOL_LIST_SCHEMA)
    ctx.write_json("report", _report(pair, domains, "passed", "", checks, manifest), REPORT_SCHEMA)
    ctx.log.info(
        "pair server %s passed: %d tools, episode %s, Bridge Rules %d with %d/%d tests passed, MCP tools match",
        pair,
        len(tool_list),
        checks["episode"]["calls"],
        checks["bridge"]["rules"],
        checks["bridge"]["tests_passed"],
        checks["bridge"]["tests"],
    )


__all__ = [
    "run",
    "namespaced_tool_list",
    "pair_manifest",
    "episode_check",
    "bridge_check",
    "stated_rules",
    "shared_user",
    "PairFailure",
]
