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
interlockable tasks first, ties by name. The artifact counts the pruned pairs per stage and
reason and keeps a bounded sample of them (the first ``PRUNED_SAMPLE`` by pair name, each
with its full reason): the report shows what was pruned and why.

Not quadratic: with ``n`` domains of one person there are ``n (n - 1) / 2`` candidates (half a
million at 1,000 domains), so they are never all built. Domains are grouped by core person and
classified once (not feasible, too few interlockable tasks, names that are illegal on their
own, clean); the pruned pairs are *counted* from the class sizes, only pairs that an index of
table and entity names flags are checked for a name collision, and the kept pairs are drawn
lazily, best first, until the cap is reached. :func:`plan` gives the same pairs, counts and
sample as evaluating every candidate would (``tests/test_s10_scale.py`` checks it against
that brute force).

The pair name (wildcard ``{pair}``) is the member domains sorted and joined by ``+``.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from math import comb
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentskiller import artifacts
from agentskiller.artifacts import ArtifactError, as_paths
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import Blueprint

SCHEMA = "combinations"
PAIR_SEP = "+"
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: how many pruned pairs the artifact lists with their reasons (all of them are counted)
PRUNED_SAMPLE = 200
#: reason kinds (``pruned.by_reason`` keys are ``"<stage>: <kind>"``)
KIND_THIN = "member not feasible: too few interlockable tasks"
KIND_NAMES = "fused names illegal or colliding"


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
    """The member's blueprint, read once and checked by its model only: s04 validated it
    against its JSON Schema when it wrote it, and at a thousand domains that second schema
    pass was nine tenths of s10's time."""
    if path is None or not path.is_file():
        return None, "blueprint missing"
    data = artifacts.read(path)
    if isinstance(data, dict) and data.get("status") == "failed":
        return None, f"blueprint failed: {data.get('reason') or 'failed upstream'}"
    try:
        return Blueprint.model_validate({k: v for k, v in data.items() if k in Blueprint.model_fields}), ""
    except (AttributeError, ValidationError) as exc:
        raise ArtifactError(f"{path}: not a blueprint ({str(exc)[:300]})") from None


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
    facts: dict[str, Any] = {
        "domain": domain,
        "blueprint": bp,
        "problem": None,
        "problem_kind": None,
        "valid_tasks": 0,
        "interlockable": 0,
    }

    def problem(kind: str, text: str) -> dict:
        facts["problem"], facts["problem_kind"] = f"{domain}: {text}", f"member not feasible: {kind}"
        return facts

    if bp is None:
        return problem(why.split(":", 1)[0], why)
    if report_path is None or not report_path.is_file():
        return problem("no server report", "no server report")
    rep = artifacts.read(report_path)
    if rep.get("status") != "passed":
        return problem("server quarantined", f"server quarantined ({str(rep.get('reason') or 'failed')[:200]})")
    if tasks_path is None or not tasks_path.is_file():
        return problem("no single-domain tasks", "no single-domain tasks")
    doc = artifacts.read(tasks_path)
    if doc.get("status") == "failed":
        return problem(
            "single-domain tasks failed", f"single-domain tasks failed ({str(doc.get('reason') or '')[:200]})"
        )
    facts["valid_tasks"] = sum(t.get("status") == "valid" for t in doc.get("tasks") or [])
    facts["interlockable"] = interlockable_tasks(bp, doc)
    return facts


def name_problems(a: Blueprint, b: Blueprint | None) -> list[str]:
    """Fused names that would be illegal or ambiguous (``b=None``: the problems ``a`` has with
    any partner, which every pair of ``a`` then has too)."""
    problems = []
    members = (a,) if b is None else (a, b)
    entities = set().union(*(bp.entities for bp in members))
    seen: dict[str, str] = {}
    for bp in members:
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


def _entry(facts: dict[str, dict], a: str, b: str, core: str, min_tasks: int) -> tuple[dict, str | None]:
    entry, reason = evaluate_pair(facts[a], facts[b], min_tasks)
    entry["core_entity"] = entry["core_entity"] or core
    return entry, reason


def _name_sets(bp: Blueprint) -> tuple[set[str], set[str], set[str]]:
    """(entities, relationship names, namespaced relationship names) of a blueprint."""
    rels = {r.name for r in bp.relationships}
    return set(bp.entities), rels, {f"{bp.domain}_{r}" for r in rels}


def _collisions(clean: list[str], facts: dict[str, dict]) -> set[tuple[str, str]]:
    """Pairs of clean domains (no name problem of their own) whose fused tables collide.

    A collision needs a relationship's name or its namespaced name to be an entity of the
    other member, or two namespaced names to be equal; an index of those names finds the few
    pairs where that can happen, and :func:`name_problems` decides each of them exactly."""
    sets = {d: _name_sets(facts[d]["blueprint"]) for d in clean}
    by_entity: dict[str, list[str]] = defaultdict(list)
    by_namespaced: dict[str, list[str]] = defaultdict(list)
    for d in clean:
        for e in sets[d][0]:
            by_entity[e].append(d)
        for n in sets[d][2]:
            by_namespaced[n].append(d)
    flagged: set[tuple[str, str]] = set()
    for a in clean:
        _, rels, namespaced = sets[a]
        for t in rels | namespaced:
            flagged.update((min(a, b), max(a, b)) for b in by_entity.get(t, ()) if b != a)
        for t in namespaced:
            flagged.update((min(a, b), max(a, b)) for b in by_namespaced.get(t, ()) if b != a)
    return {(a, b) for a, b in flagged if name_problems(facts[a]["blueprint"], facts[b]["blueprint"])}


class _Person:
    """The domains of one core person, classified once; pairs counted, not built."""

    def __init__(self, core: str, domains: list[str], facts: dict[str, dict], min_tasks: int) -> None:
        self.core = core
        self.domains = domains  # sorted
        self.problem = [d for d in domains if facts[d]["problem"]]
        ok = [d for d in domains if not facts[d]["problem"]]
        good = [d for d in ok if facts[d]["interlockable"] >= min_tasks]
        self.clean = [d for d in good if not name_problems(facts[d]["blueprint"], None)]
        self.collisions = _collisions(self.clean, facts)
        n, n_ok, n_good, n_clean = len(domains), len(ok), len(good), len(self.clean)
        self.candidates = comb(n, 2)
        self.by_reason: Counter = Counter()
        # a pair with a member that is not feasible is pruned for its first such member (by name)
        for i, d in enumerate(self.problem):
            self.by_reason[f"feasibility: {facts[d]['problem_kind']}"] += (n - 1) - i
        self.by_reason[f"feasibility: {KIND_THIN}"] += comb(n_ok, 2) - comb(n_good, 2)
        self.by_reason[f"feasibility: {KIND_NAMES}"] += comb(n_good, 2) - comb(n_clean, 2) + len(self.collisions)
        self.feasible = comb(n_clean, 2) - len(self.collisions)
        self._value = {d: facts[d]["interlockable"] for d in self.clean}

    def best_first(self) -> Iterator[tuple[str, str]]:
        """Feasible pairs in the cap's order: most interlockable tasks first, then by name."""
        by_value: dict[int, list[str]] = defaultdict(list)
        for d in self.clean:  # already sorted by name
            by_value[self._value[d]].append(d)
        values = sorted(by_value)
        sums = sorted(
            {u + v for u in values for v in values if u != v or len(by_value[u]) >= 2},
            reverse=True,
        )
        for s in sums:
            for a in self.clean:  # pair names sort as (a, b) tuples: "+" sorts before [A-Za-z0-9]
                partners = by_value.get(s - self._value[a])
                if not partners:
                    continue
                for b in partners[bisect.bisect_right(partners, a) :]:
                    if (a, b) not in self.collisions:
                        yield a, b


def plan(core_of: dict[str, str | None], facts: dict[str, dict], min_tasks: int, max_pairs: int, enabled: bool) -> dict:
    """Kept pairs (in the cap's order), counts, and the pruned pairs as counts per reason plus a
    sample, as if every same-person candidate had been evaluated and capped (see the module doc)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for d in sorted(core_of):
        if core_of[d]:
            groups[str(core_of[d])].append(d)
    persons = {c: _Person(c, ds, facts, min_tasks) for c, ds in sorted(groups.items())}
    kept: list[tuple[str, str, str]] = []
    if enabled:
        active = [(c, p.best_first()) for c, p in persons.items() if p.feasible]
        while active and len(kept) < max_pairs:  # round-robin over persons, lazily
            still = []
            for c, it in active:
                if len(kept) >= max_pairs:
                    break
                nxt = next(it, None)
                if nxt is not None:
                    kept.append((nxt[0], nxt[1], c))
                    still.append((c, it))
            active = still
        cap_kind = f"over the cap cross.max_pairs={max_pairs} (kept pairs of other persons first)"
    else:
        cap_kind = "cross.enabled is false"
    by_reason: Counter = Counter()
    for p in persons.values():
        by_reason.update(p.by_reason)
    feasible = sum(p.feasible for p in persons.values())
    by_reason[f"cap: {cap_kind}"] += feasible - len(kept)
    candidates = sum(p.candidates for p in persons.values())
    kept_entries = [_entry(facts, a, b, c, min_tasks)[0] for a, b, c in kept]
    kept_names = {e["pair"] for e in kept_entries}
    sample: list[dict] = []
    for a in sorted(d for c in groups.values() for d in c):  # the first pruned pairs by name
        if len(sample) >= PRUNED_SAMPLE:
            break
        group = groups[str(core_of[a])]
        for b in group[bisect.bisect_right(group, a) :]:
            if pair_name([a, b]) in kept_names:
                continue
            entry, reason = _entry(facts, a, b, str(core_of[a]), min_tasks)
            stage = "feasibility" if reason else "cap"
            sample.append({**entry, "stage": stage, "reason": reason or cap_kind})
            if len(sample) >= PRUNED_SAMPLE:
                break
    counts = {
        "domains": len(core_of),
        "candidates": candidates,
        "feasible": feasible,
        "kept": len(kept_entries),
        "pruned": candidates - len(kept_entries),
    }
    return {
        "counts": counts,
        "pairs": kept_entries,
        "pruned": {
            "total": counts["pruned"],
            "by_reason": {k: v for k, v in sorted(by_reason.items()) if v},
            "sample_limit": PRUNED_SAMPLE,
            "sample": sample,
        },
    }


def run(ctx: StepContext) -> None:
    cfg = ctx.cfg.cross
    enabled, max_pairs, min_tasks = cfg.enabled, cfg.max_pairs, cfg.min_member_tasks
    index = artifacts.read(ctx.inputs["index"])
    bps = _by_name(as_paths(ctx.inputs.get("blueprints")), "")
    reports = _by_name(as_paths(ctx.inputs.get("server_reports")), "report.json")
    tasks = _by_name(as_paths(ctx.inputs.get("tasks")), "")

    core_of = {d["domain"]: d.get("core_entity") for d in index.get("domains", [])}
    facts = {d: member_facts(d, bps.get(d), reports.get(d), tasks.get(d)) for d in sorted(core_of)}
    result = plan(core_of, facts, min_tasks, max_pairs, enabled)
    ctx.log.info("s10: %s", result["counts"])
    for reason, n in result["pruned"]["by_reason"].items():
        ctx.log.info("s10 pruned %d pair(s): %s", n, reason)
    for p in result["pruned"]["sample"]:
        ctx.log.info("s10 pruned %s: %s", p["pair"], p["reason"])
    ctx.write_json(
        "combinations",
        {
            "status": "ok",
            "enabled": enabled,
            "max_pairs": max_pairs,
            "min_member_tasks": min_tasks,
            **result,
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
    "plan",
    "name_problems",
    "PRUNED_SAMPLE",
]
