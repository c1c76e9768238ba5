"""Step s10 (checkpoint): which pairs of domains become cross-domain environments.

Deterministic, no LLM. A *candidate* is every unordered pair of domains whose blueprints
share the core person entity (the person is what interlocks the two storylines: one user
authorizes in both services). Candidates are then filtered *ex ante* on what the
single-domain pass already proved, so no pair is fused, served and sampled only to fail:

* both members' blueprints are ok and both servers passed their contract tests (s09);
* each member has at least ``cross.min_member_tasks`` *interlockable* valid tasks (s16): a
  valid golden trajectory that starts with the member's authorization tool, so its segment
  can follow another segment of the same authorized person;
* the fused names are legal: every ``<Domain>__<tool>`` fits the OpenAI function-name
  pattern, and no namespaced relationship table ``<Domain>_<Relationship>`` collides with
  another table of the pair.

The survivors are capped at ``cross.max_pairs``, deterministically: round-robin over core
persons (so different persons come first), within a person the pair with the most
interlockable tasks first, ties by name. Every pruned pair keeps its reason in the
artifact (the report shows what was pruned and why).

The pair name (wildcard ``{pair}``) is the member domains sorted and joined by ``+``.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentskiller import artifacts
from agentskiller.artifacts import as_paths, failure_reason, require_blueprint
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import Blueprint

SCHEMA = "combinations"
PAIR_SEP = "+"
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def pair_name(domains: list[str]) -> str:
    return PAIR_SEP.join(sorted(domains))


def pair_members(pair: str) -> list[str]:
    return sorted(pair.split(PAIR_SEP))


def physical_table(domain: str, table: str, entities: set[str]) -> str:
    """Physical name of a member's table in a pair: entity tables are shared (one global
    table per entity), relationship tables are namespaced ``<Domain>_<Relationship>``."""
    return table if table in entities else f"{domain}_{table}"


def _by_name(paths: list[Path], pattern: str) -> dict[str, Path]:
    """domain -> path for files named by the domain (``X/{domain}.json``, ``servers/{domain}/report.json``)."""
    out = {}
    for p in paths:
        name = p.parent.name if p.name == pattern else p.stem
        out[name] = p
    return out


def _blueprint(path: Path | None) -> tuple[Blueprint | None, str]:
    if path is None or not path.is_file():
        return None, "blueprint missing"
    reason = failure_reason(path)
    if reason is not None:
        return None, f"blueprint failed: {reason}"
    return require_blueprint(path), ""


def interlockable_tasks(bp: Blueprint, tasks_doc: dict) -> int:
    """Valid tasks whose golden trajectory starts with the authorization tool and goes on
    with at least one more call: a segment that needs only the shared person to begin."""
    auth = {t.name for t in bp.tools if t.kind == "authorize"}
    n = 0
    for t in tasks_doc.get("tasks") or []:
        calls = t.get("golden_calls") or []
        if t.get("status") == "valid" and len(calls) >= 2 and calls[0].get("name") in auth:
            n += 1
    return n


def member_facts(domain: str, bp_path: Path | None, report_path: Path | None, tasks_path: Path | None) -> dict:
    """What s10 knows of one domain: its blueprint, server status and task counts, or why it
    cannot be a member."""
    bp, why = _blueprint(bp_path)
    facts: dict[str, Any] = {"domain": domain, "blueprint": bp, "problem": None, "valid_tasks": 0, "interlockable": 0}
    if bp is None:
        facts["problem"] = f"{domain}: {why}"
        return facts
    if report_path is None or not report_path.is_file():
        facts["problem"] = f"{domain}: no server report"
        return facts
    rep = artifacts.read(report_path)
    if rep.get("status") != "passed":
        facts["problem"] = f"{domain}: server quarantined ({str(rep.get('reason') or 'failed')[:200]})"
        return facts
    if tasks_path is None or not tasks_path.is_file():
        facts["problem"] = f"{domain}: no single-domain tasks"
        return facts
    doc = artifacts.read(tasks_path)
    if doc.get("status") == "failed":
        facts["problem"] = f"{domain}: single-domain tasks failed ({str(doc.get('reason') or '')[:200]})"
        return facts
    facts["valid_tasks"] = sum(t.get("status") == "valid" for t in doc.get("tasks") or [])
    facts["interlockable"] = interlockable_tasks(bp, doc)
    return facts


def name_problems(a: Blueprint, b: Blueprint) -> list[str]:
    """Fused names that would be illegal or ambiguous."""
    problems = []
    entities = set(a.entities) | set(b.entities)
    seen: dict[str, str] = {}
    for bp in (a, b):
        for t in bp.tools:
            name = f"{bp.domain}__{t.name}"
            if not TOOL_NAME_RE.fullmatch(name):
                problems.append(f"namespaced tool name {name!r} does not fit ^[a-zA-Z0-9_-]{{1,64}}$")
        for rel in bp.relationships:
            phys = physical_table(bp.domain, rel.name, entities)
            if phys in entities or phys in seen:
                problems.append(f"table name collision: {phys} ({bp.domain}) vs {seen.get(phys, 'an entity table')}")
            seen[phys] = bp.domain
    return problems


def evaluate_pair(fa: dict, fb: dict, min_tasks: int) -> tuple[dict, str | None]:
    """(pair entry, reason it is pruned or None)."""
    a, b = sorted((fa, fb), key=lambda f: f["domain"])
    doms = [a["domain"], b["domain"]]
    core = (a["blueprint"] or b["blueprint"]).core_entity if (a["blueprint"] or b["blueprint"]) else ""
    entry: dict[str, Any] = {
        "pair": pair_name(doms),
        "domains": doms,
        "core_entity": core,
        "valid_tasks": {f["domain"]: f["valid_tasks"] for f in (a, b)},
        "interlockable_tasks": {f["domain"]: f["interlockable"] for f in (a, b)},
    }
    for f in (a, b):
        if f["problem"]:
            return entry, f"member not feasible: {f['problem']}"
    entry["shared_entities"] = sorted(set(a["blueprint"].entities) & set(b["blueprint"].entities))
    for f in (a, b):
        if f["interlockable"] < min_tasks:
            return entry, (
                f"member not feasible: {f['domain']} has {f['interlockable']} interlockable valid "
                f"task(s) (of {f['valid_tasks']} valid), needs {min_tasks}"
            )
    problems = name_problems(a["blueprint"], b["blueprint"])
    if problems:
        return entry, "; ".join(problems)[:500]
    return entry, None


def select(feasible: list[dict], max_pairs: int) -> tuple[list[dict], list[dict]]:
    """Deterministic cap: round-robin over core persons, best pairs of each person first."""
    by_core: dict[str, list[dict]] = defaultdict(list)
    for e in feasible:
        by_core[e["core_entity"]].append(e)
    for lst in by_core.values():
        lst.sort(key=lambda e: (-sum(e["interlockable_tasks"].values()), e["pair"]))
    order: list[dict] = []
    queues = [by_core[c] for c in sorted(by_core)]
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order[:max_pairs], order[max_pairs:]


def run(ctx: StepContext) -> None:
    cfg = ctx.cfg.cross
    enabled, max_pairs, min_tasks = cfg.enabled, cfg.max_pairs, cfg.min_member_tasks
    index = artifacts.read(ctx.inputs["index"])
    bps = _by_name(as_paths(ctx.inputs.get("blueprints")), "")
    reports = _by_name(as_paths(ctx.inputs.get("server_reports")), "report.json")
    tasks = _by_name(as_paths(ctx.inputs.get("tasks")), "")

    core_of = {d["domain"]: d.get("core_entity") for d in index.get("domains", [])}
    facts = {d: member_facts(d, bps.get(d), reports.get(d), tasks.get(d)) for d in sorted(core_of)}
    candidates = [
        (a, b) for a, b in itertools.combinations(sorted(core_of), 2) if core_of[a] and core_of[a] == core_of[b]
    ]
    feasible: list[dict] = []
    pruned: list[dict] = []
    for a, b in candidates:
        entry, reason = evaluate_pair(facts[a], facts[b], min_tasks)
        entry["core_entity"] = entry["core_entity"] or core_of[a]
        if reason:
            pruned.append({**entry, "stage": "feasibility", "reason": reason})
        else:
            feasible.append(entry)
    if not enabled:
        kept, over = [], feasible
        cap_reason = "cross.enabled is false"
    else:
        kept, over = select(feasible, max_pairs)
        cap_reason = f"over the cap cross.max_pairs={max_pairs} (kept pairs of other persons first)"
    pruned += [{**e, "stage": "cap", "reason": cap_reason} for e in over]
    pruned.sort(key=lambda e: e["pair"])
    counts = {
        "domains": len(core_of),
        "candidates": len(candidates),
        "feasible": len(feasible),
        "kept": len(kept),
        "pruned": len(pruned),
    }
    ctx.log.info("s10: %s", counts)
    for p in pruned:
        ctx.log.info("s10 pruned %s: %s", p["pair"], p["reason"])
    ctx.write_json(
        "combinations",
        {
            "status": "ok",
            "enabled": enabled,
            "max_pairs": max_pairs,
            "min_member_tasks": min_tasks,
            "counts": counts,
            "pairs": kept,
            "pruned": pruned,
        },
        SCHEMA,
    )


def kept_pairs(path: str | Path) -> list[str]:
    """The kept pair names of a ``cross/combinations.json`` (what ``{pair}`` ranges over)."""
    return sorted(p["pair"] for p in artifacts.read(path).get("pairs", []))


__all__ = [
    "run",
    "pair_name",
    "pair_members",
    "physical_table",
    "kept_pairs",
    "interlockable_tasks",
    "evaluate_pair",
    "select",
    "name_problems",
]
