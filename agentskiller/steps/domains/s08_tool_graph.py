"""s08 tool graph: which tool can follow which, and the trajectories that come from it.

The text model answers with directed edges between the domain's tools (``state
dependency``: needs the session or a record state another tool establishes; ``information
flow``: an input comes from another tool's output, e.g. IDs from a search; ``storyline
flow``: a natural follow-up) and, per tool, its *preconditions*: tools that must have run
earlier in the same trajectory. The answer is checked in code with networkx: only known
tools, no self-loops, a DAG, the authorize tool the only root (in-degree 0), every tool
reachable from it, every precondition an ancestor of its tool (else no trajectory could
satisfy it). Violations go back to the model (LLM client repair loop).

Trajectories: every path from the authorize tool with ``tool_graph.min_length`` to
``max_length`` tools (prefixes included: a path that stops early is a trajectory too),
kept only if each tool's preconditions occur earlier in it, then ranked deterministically
and capped at ``tool_graph.max_trajectories``: round-robin over the lengths (longest
first) so short and long tasks mix, and within a length greedily prefer trajectories that
write, do not change a record they created, cover tools not yet covered, mix kinds, and
spread use over the tools; ties break on the tool names. ``tasks.kinds.lookup`` of the kept
trajectories are read-only ones (s15's lookup tasks), spread through the list. s14 turns
each kept trajectory into a task template.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import networkx as nx
from pydantic import BaseModel, Field

from agentskiller import artifacts
from agentskiller.artifacts import blueprint_or_reason, upstream_reason
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.blueprint import WRITE_KINDS, Blueprint
from agentskiller.prompts import render
from agentskiller.steps.repair import checks_failed

EdgeType = Literal["state dependency", "information flow", "storyline flow"]
#: hard bound on enumerated paths, so a dense graph with a large max_length stays cheap
MAX_ENUMERATED = 200_000


class GraphEdge(BaseModel):
    source: str
    target: str
    type: EdgeType


class ToolGraphAnswer(BaseModel):
    edges: list[GraphEdge]
    preconditions: dict[str, list[str]] = Field(default_factory=dict)


def build_graph(tools: list[str], edges: list[GraphEdge]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(tools)
    for e in edges:
        g.add_edge(e.source, e.target, type=e.type)
    return g


def check_graph(answer: ToolGraphAnswer, bp: Blueprint) -> list[str]:
    """Every violation of the graph rules (empty: accepted)."""
    tools = [t.name for t in bp.tools]
    known = set(tools)
    root = bp.authorize_tool().name
    errors: list[str] = []
    for e in answer.edges:
        for end in (e.source, e.target):
            if end not in known:
                errors.append(f"edge {e.source} -> {e.target}: {end} is not a tool of this domain")
        if e.source == e.target:
            errors.append(f"self-loop {e.source} -> {e.target}: remove it")
    if errors:
        return errors
    g = build_graph(tools, answer.edges)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        path = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
        errors.append(f"the graph has a cycle {path}; it must be a DAG: remove one of these edges")
    if g.in_degree(root):
        errors.append(
            f"the authorize tool {root} must be the root: remove its incoming edge(s) from "
            f"{sorted(g.predecessors(root))}"
        )
    roots = sorted(n for n in tools if n != root and g.in_degree(n) == 0)
    for n in roots:
        errors.append(
            f"tool {n} has no incoming edge; only {root} may be a root: add an edge into {n} (e.g. {root} -> {n})"
        )
    reach = nx.descendants(g, root) | {root}
    for n in tools:
        if n not in reach and n not in roots:
            errors.append(f"tool {n} is not reachable from {root}: add a path from {root} to it")
    for tool, pres in answer.preconditions.items():
        if tool not in known:
            errors.append(f"preconditions given for unknown tool {tool}")
            continue
        for p in pres:
            if p not in known:
                errors.append(f"precondition {p} of {tool} is not a tool of this domain")
            elif p == tool:
                errors.append(f"tool {tool} cannot be its own precondition")
            elif not errors and p not in nx.ancestors(g, tool):
                errors.append(
                    f"precondition {p} of {tool} is not an ancestor of {tool} in the graph, so no "
                    f"trajectory could satisfy it: add a path {p} -> ... -> {tool} or drop it"
                )
    return errors


def enumerate_paths(
    g: nx.DiGraph, root: str, min_len: int, max_len: int, limit: int = MAX_ENUMERATED
) -> tuple[list[tuple[str, ...]], bool]:
    """All paths from ``root`` with ``min_len..max_len`` nodes (depth-first, successors in
    name order, so the order is stable). Returns (paths, truncated)."""
    out: list[tuple[str, ...]] = []
    stack: list[tuple[str, ...]] = [(root,)]
    while stack:
        path = stack.pop()
        if len(path) >= min_len:
            out.append(path)
            if len(out) >= limit:
                return out, True
        if len(path) < max_len:
            for nxt in sorted(g.successors(path[-1]), reverse=True):
                if nxt not in path:
                    stack.append((*path, nxt))
    return out, False


def satisfies(path: tuple[str, ...], preconditions: dict[str, list[str]]) -> bool:
    seen: set[str] = set()
    for t in path:
        if any(p not in seen for p in preconditions.get(t, [])):
            return False
        seen.add(t)
    return True


def changes_created(path: tuple[str, ...], kinds: dict[str, str], tables: dict[str, str]) -> bool:
    """An update or delete of a table a create earlier in ``path`` wrote: the user would
    change what they just made (s15 keeps few of those)."""
    created: set[str] = set()
    for t in path:
        if kinds.get(t) in ("update", "delete") and tables.get(t) in created:
            return True
        if kinds.get(t) == "create":
            created.add(tables.get(t, ""))
    return False


def rank_trajectories(
    paths: list[tuple[str, ...]],
    kinds: dict[str, str],
    cap: int,
    read_only_share: float = 0.0,
    tables: dict[str, str] | None = None,
    core: str | None = None,
) -> list[list[str]]:
    """``cap`` trajectories: ``read_only_share`` of them (rounded, as far as there are any)
    read-only - s15 makes lookup tasks of those, picked by :func:`_rank_reads` - spread evenly
    through the list, so that every prefix ``tasks.max_templates`` takes has its share; the
    rest ranked by :func:`_rank` (writes first, paths that change a record they created last)."""
    tables = tables or {}
    reads = [p for p in paths if not any(kinds.get(t) in WRITE_KINDS for t in p)]
    writes = [p for p in paths if any(kinds.get(t) in WRITE_KINDS for t in p)]
    q = min(len(reads), round(read_only_share * cap)) if read_only_share > 0 else 0
    if read_only_share > 0 and q == 0 and reads:
        q = 1
    picked_r = _rank_reads(reads, kinds, q, tables, core) if q else []
    picked_w = _rank(writes, kinds, cap - len(picked_r), tables)
    total = len(picked_r) + len(picked_w)
    slots = {round((j + 1) * total / (len(picked_r) + 1)) - 1 for j in range(len(picked_r))}
    out: list[list[str]] = []
    ri, wi = iter(picked_r), iter(picked_w)
    for pos in range(total):
        nxt = next(ri, None) if pos in slots else next(wi, None)
        if nxt is None:
            nxt = next(wi, None) or next(ri)
        out.append(nxt)
    return out


#: what a read-only trajectory's last call answers, in the order lookups are picked: an
#: aggregate (count, total), the user's profile, a record, a list
ANSWER_KINDS = ("compute", "profile", "read", "search")


def _answer_kind(tool: str, kinds: dict[str, str], tables: dict[str, str], core: str | None) -> str:
    kind = kinds.get(tool, "")
    if kind == "read" and core is not None and tables.get(tool) == core:
        return "profile"
    return kind


def _rank_reads(
    paths: list[tuple[str, ...]], kinds: dict[str, str], cap: int, tables: dict[str, str], core: str | None
) -> list[list[str]]:
    """``cap`` read-only trajectories that ask different things: pick ``i`` prefers a path
    whose last tool answers :data:`ANSWER_KINDS` ``[i % 4]`` (an aggregate, the profile, a
    record, a list), then a last tool not picked yet, more tools not yet covered, the name."""
    remaining = sorted(set(paths))
    chosen: list[list[str]] = []
    finals: set[str] = set()
    covered: set[str] = set()
    while remaining and len(chosen) < cap:
        want = ANSWER_KINDS[len(chosen) % len(ANSWER_KINDS)]

        def key(p: tuple[str, ...], want: str = want):
            return (
                _answer_kind(p[-1], kinds, tables, core) != want,
                p[-1] in finals,
                -len(set(p) - covered),
                p,
            )

        best = min(remaining, key=key)
        remaining.remove(best)
        chosen.append(list(best))
        finals.add(best[-1])
        covered.update(best)
    return chosen


def _rank(paths: list[tuple[str, ...]], kinds: dict[str, str], cap: int, tables: dict[str, str]) -> list[list[str]]:
    """Greedy, deterministic pick of ``cap`` trajectories (see the module docstring).

    Turns go round-robin over the path lengths present, longest first (4, 3, 2, 4, ...), so
    the kept set - and every prefix of it, which is what ``tasks.max_templates`` takes - mixes
    short and long tasks instead of filling up with the longest ones (a longer path always
    covers more tools, so a plain greedy pick never chose a shorter one). Within a turn the
    pick prefers paths that write, then uncovered tools, more kinds, less-used tools; a
    length with nothing left drops out of the rotation."""
    remaining = sorted(set(paths))
    chosen: list[list[str]] = []
    used: Counter = Counter()
    lengths = sorted({len(p) for p in remaining}, reverse=True)
    turn = 0
    while remaining and len(chosen) < cap:
        left = {len(p) for p in remaining}
        while lengths[turn % len(lengths)] not in left:  # an exhausted length is skipped
            turn += 1
        want = lengths[turn % len(lengths)]
        turn += 1

        def key(p: tuple[str, ...]):
            writes = sum(1 for t in p if kinds.get(t) in WRITE_KINDS)
            return (
                -(writes > 0),
                changes_created(p, kinds, tables),
                -len({t for t in p if used[t] == 0}),
                -len({kinds.get(t) for t in p}),
                sum(used[t] for t in p),
                p,
            )

        best = min((p for p in remaining if len(p) == want), key=key)
        remaining.remove(best)
        chosen.append(list(best))
        used.update(best)
    return chosen


def graph_context(bp: Blueprint, policy: str) -> dict:
    return {
        "domain": bp.domain,
        "core_entity": bp.core_entity,
        "authorize_tool": bp.authorize_tool().name,
        "tools": [
            {
                "name": t.name,
                "kind": t.kind,
                "table": t.table,
                "reads": t.reads,
                "writes": t.writes,
                "requires_auth": t.requires_auth,
                "description": t.description,
                "parameters": [{"name": p.name, "column": p.column} for p in t.parameters],
                "preconditions": [c.model_dump() for c in t.preconditions],
                "effects": t.effects,
            }
            for t in bp.tools
        ],
        "foreign_keys": {r.name: r.foreign_keys() for r in bp.relationships},
        "policy": policy,
    }


def _failed(ctx: StepContext, domain: str, reason: str, rounds: list[dict] | None = None) -> None:
    ctx.log.warning("tool graph for %s quarantined: %s", domain, reason)
    ctx.write_json(
        "graph",
        {
            "domain": domain,
            "status": "failed",
            "reason": reason,
            "nodes": [],
            "edges": [],
            "preconditions": {},
            "trajectories": [],
            "enumerated": 0,
            "kept": 0,
            "rounds": rounds or [],
        },
        "tool_graph",
    )


def run(ctx: StepContext) -> None:
    domain = ctx.wildcards.get("domain", "")
    bp, failed = blueprint_or_reason(ctx.inputs["blueprint"])
    if bp is None:
        return _failed(ctx, domain, failed or "s04: blueprint failed")
    report = artifacts.read(ctx.inputs["policy_report"])
    if report.get("status") == "failed":
        return _failed(ctx, domain, upstream_reason("s07", report))
    policy = artifacts.read_text(ctx.inputs["policy"])
    cfg = ctx.cfg.tool_graph
    min_len, max_len, cap = cfg.min_length, cfg.max_length, cfg.max_trajectories
    context = graph_context(bp, policy)
    rounds: list[dict] = []

    def check(ans: ToolGraphAnswer) -> list[str]:
        errors = check_graph(ans, bp)
        rounds.append({"round": len(rounds), "errors": errors})
        return errors

    messages = render("s08", "tool_graph", context, domain=bp.domain, authorize_tool=bp.authorize_tool().name)
    try:
        ans: ToolGraphAnswer = ctx.llm.generate(
            "s08.tool_graph",
            messages,
            schema=ToolGraphAnswer,
            role="text",
            context=context,
            check=check,
            max_rounds=ctx.cfg.llm.max_repair_rounds,
        )
    except LLMError as exc:
        return _failed(ctx, domain, checks_failed("s08", "the tool graph failed its checks", rounds, exc), rounds)
    ctx.write_json("graph", assemble(bp, ans, min_len, max_len, cap, rounds, ctx.cfg.tasks.kinds.lookup), "tool_graph")


def assemble(
    bp: Blueprint,
    ans: ToolGraphAnswer,
    min_len: int,
    max_len: int,
    cap: int,
    rounds: list[dict] | None = None,
    read_only_share: float = 0.0,
) -> dict:
    """The tool_graph artifact (without meta) for an accepted answer."""
    tools = [t.name for t in bp.tools]
    root = bp.authorize_tool().name
    edges = sorted({(e.source, e.target): e.type for e in ans.edges}.items())
    g = build_graph(tools, [GraphEdge(source=s, target=t, type=ty) for (s, t), ty in edges])
    pre = {t: sorted(set(ans.preconditions.get(t, []))) for t in tools}
    paths, truncated = enumerate_paths(g, root, min_len, max_len)
    valid = [p for p in paths if satisfies(p, pre)]
    kinds = {t.name: t.kind for t in bp.tools}
    kept = rank_trajectories(valid, kinds, cap, read_only_share, {t.name: t.table for t in bp.tools}, bp.core_entity)
    return {
        "domain": bp.domain,
        "status": "ok",
        "root": root,
        "nodes": tools,
        "edges": [{"source": s, "target": t, "type": ty} for (s, t), ty in edges],
        "preconditions": pre,
        "trajectories": kept,
        "enumerated": len(paths),
        "valid": len(valid),
        "kept": len(kept),
        "rounds": rounds or [],
        "limits": {"min_length": min_len, "max_length": max_len, "max_trajectories": cap, "truncated": truncated},
    }
