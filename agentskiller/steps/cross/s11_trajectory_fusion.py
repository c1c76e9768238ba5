"""s11 trajectory fusion: cross-domain storylines from feasible single-domain segments.

Size: over 400 lines because segment evidence, the storyline checks and the fusion loop share the pair's vocabulary.

A pair ``A+B`` shares its core person (s10). The text model gets both members' tools,
tool graphs and *feasible segments* and interlocks them into storylines in which one
person uses both services: e.g. book a dental appointment, then have the prescription
filled. Each fused trajectory is a list of namespaced tools ``<Domain>__<tool>``.

Feasibility (the original's intended but dead "single-domain feasibility filter", done for
real): a member's segment is *validated* when s16 executed it clean at least once
(``tasks/{domain}.json``: a valid task whose golden calls are exactly that trajectory),
*infeasible* when every task built on it failed, *untested* otherwise (a tool-graph
trajectory that never became a task, or any other valid path). Validated segments are
offered first and ranked first; infeasible ones are rejected by the check.

Checked in code, violations fed back to the model (LLM repair loop):

* every name is ``<Member>__<tool>`` for a tool of that member; no tool twice; no
  trajectory twice; length within ``cross.max_length`` (default
  ``tool_graph.max_length + 2``);
* both members take part, each with its authorization tool first (within its own
  calls) and at least one more tool;
* each member's calls, read on their own, form a path of that member's tool graph in which
  every tool's preconditions ran earlier (interleaving the two members is allowed: each
  member's order is what its server and its s16 evidence constrain);
* no member segment is one that s16 proved infeasible.

If repair rounds run out, the trajectories of the last answer that pass are kept (the
others are recorded with their reasons); with none left the pair is quarantined. The kept
set is ranked deterministically (both segments validated first, then one, then none;
within a tier s08's length round-robin and coverage ranking) and capped at
``tool_graph.max_trajectories``. Output ``cross/{pair}/tool_graph.json`` has the shape of a
single-domain tool graph (so s14 reads it unchanged) plus ``storylines``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from agentskiller import artifacts
from agentskiller.artifacts import as_paths, load_blueprint, load_entities, upstream_reason
from agentskiller.config import Config
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.blueprint import Blueprint
from agentskiller.prompts import render
from agentskiller.steps.cross import links as links_mod
from agentskiller.steps.cross.links import Link
from agentskiller.steps.domains.policy_markers import parse_policy
from agentskiller.steps.domains.s08_tool_graph import rank_trajectories

SCHEMA = "fused_trajectories"
NS = "__"
PAIR_SEP = "+"
#: at most this many global rules per member go into the prompt (context, not the task)
MAX_RULES = 12


# ------------------------------------------------------------------ the answer
class FusedTrajectory(BaseModel):
    tools: list[str] = Field(description="namespaced tools <Domain>__<tool>, in call order")
    storyline: str = Field(description="one or two sentences: why one person does this, in this order")
    links: list[Link] = Field(
        default_factory=list,
        description="values one service returns that the other's later call needs: "
        "[{from: {call, field}, to: {call, param}, relation}]",
    )


class FusionAnswer(BaseModel):
    trajectories: list[FusedTrajectory]


# ------------------------------------------------------------------ members
def ns(domain: str, tool: str) -> str:
    return f"{domain}{NS}{tool}"


def split_ns(name: str) -> tuple[str, str] | None:
    if NS not in name:
        return None
    d, t = name.split(NS, 1)
    return d, t


@dataclass
class Member:
    """What s11 knows of one member domain."""

    domain: str
    bp: Blueprint
    graph: dict
    policy: str = ""
    #: trajectory -> "validated" | "infeasible" | "untested"
    segments: dict[tuple[str, ...], str] = field(default_factory=dict)
    valid_counts: dict[tuple[str, ...], int] = field(default_factory=dict)

    @property
    def auth(self) -> str:
        return self.bp.authorize_tool().name

    @property
    def tools(self) -> list[str]:
        return [t.name for t in self.bp.tools]

    @property
    def edges(self) -> set[tuple[str, str]]:
        return {(e["source"], e["target"]) for e in self.graph.get("edges", [])}

    @property
    def preconditions(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in (self.graph.get("preconditions") or {}).items()}

    def status(self, seg: tuple[str, ...]) -> str:
        return self.segments.get(seg, "untested")


def segment_evidence(tasks_doc: dict) -> tuple[dict[tuple[str, ...], str], dict[tuple[str, ...], int]]:
    """Per golden trajectory of the member's s16 tasks: validated (>= 1 valid task) or
    infeasible (tasks exist, none valid), and the number of valid tasks."""
    valid: dict[tuple[str, ...], int] = {}
    seen: set[tuple[str, ...]] = set()
    for t in tasks_doc.get("tasks") or []:
        seg = tuple(c.get("name", "") for c in t.get("golden_calls") or [])
        if not seg:
            continue
        seen.add(seg)
        valid[seg] = valid.get(seg, 0) + (t.get("status") == "valid")
    status = {seg: ("validated" if valid.get(seg) else "infeasible") for seg in seen}
    return status, {s: n for s, n in valid.items() if n}


def load_members(
    blueprints: list[Path], graphs: list[Path], tasks: list[Path], policies: list[Path]
) -> tuple[list[Member], str | None]:
    """The two members (sorted by domain), or the quarantine reason of the first failed
    member artifact."""
    by = {
        kind: _by_domain(paths)
        for kind, paths in (("blueprint", blueprints), ("tool_graph", graphs), ("tasks", tasks), ("policy", policies))
    }
    members: list[Member] = []
    for p in sorted(blueprints, key=lambda x: Path(x).name):
        data = artifacts.read(p)
        domain = str(data.get("domain") or Path(p).stem)
        if data.get("status") == "failed":
            return [], f"{domain}: blueprint failed: {upstream_reason('s04', data)}"
        bp = load_blueprint(p)
        gpath, tpath = by["tool_graph"].get(domain), by["tasks"].get(domain)
        if gpath is None:
            return [], f"{domain}: no tool graph among the inputs"
        graph = artifacts.read(gpath)
        if graph.get("status") == "failed":
            return [], f"{domain}: tool graph failed: {upstream_reason('s08', graph)}"
        m = Member(domain=domain, bp=bp, graph=graph)
        if tpath is not None:
            tdoc = artifacts.read(tpath)
            if tdoc.get("status") == "failed":
                return [], f"{domain}: single-domain tasks failed: {upstream_reason('s16', tdoc)}"
            m.segments, m.valid_counts = segment_evidence(tdoc)
        ppath = by["policy"].get(domain)
        if ppath is not None and Path(ppath).is_file():
            m.policy = artifacts.read_text(ppath)
        members.append(m)
    if len(members) != 2:
        return members, f"a pair needs exactly two member blueprints, got {len(members)}"
    return members, None


def _by_domain(paths: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths or []:
        p = Path(p)
        out[p.parent.name if p.name in ("report.json", "tool_graph.json") else p.stem] = p
    return out


def pair_record(combos_path: Path | None, pair: str) -> dict:
    """The pair's entry in ``cross/combinations.json`` (read defensively: any list of dicts
    under ``pairs`` / ``kept`` / ``combinations`` with ``pair`` or ``domains``/``members``)."""
    if combos_path is None or not Path(combos_path).is_file():
        return {}
    data = artifacts.read(combos_path)
    items = (
        data
        if isinstance(data, list)
        else next((data[k] for k in ("pairs", "kept", "combinations") if isinstance(data.get(k), list)), [])
    )
    members = sorted(pair.split(PAIR_SEP))
    for e in items:
        if not isinstance(e, dict):
            continue
        doms = e.get("domains") or e.get("members") or []
        if e.get("pair") == pair or sorted(str(d) for d in doms) == members:
            return e
    return {}


# ------------------------------------------------------------------ checks
def check_trajectory(tools: list[str], members: list[Member], max_len: int) -> list[str]:
    """Every problem of one fused trajectory (empty: accepted)."""
    by = {m.domain: m for m in members}
    errs: list[str] = []
    label = " -> ".join(tools)
    if len(tools) > max_len:
        errs.append(f"has {len(tools)} tools; at most {max_len} are allowed")
    dup = sorted({t for t in tools if tools.count(t) > 1})
    if dup:
        errs.append(f"calls {', '.join(dup)} more than once; each tool at most once")
    per: dict[str, list[str]] = {m.domain: [] for m in members}
    for name in tools:
        parts = split_ns(name)
        if parts is None or parts[0] not in by:
            errs.append(f"{name!r} is not a namespaced tool <Domain>__<tool> of {' or '.join(by)}")
            continue
        d, t = parts
        if t not in by[d].tools:
            errs.append(f"{name!r}: {d} has no tool {t!r}")
            continue
        per[d].append(t)
    if errs:
        return [f"trajectory [{label}]: {e}" for e in errs]
    for m in members:
        seg = per[m.domain]
        if not seg:
            errs.append(f"{m.domain} takes no part; both services must be used")
            continue
        if seg[0] != m.auth:
            errs.append(
                f"{ns(m.domain, seg[0])} comes before {ns(m.domain, m.auth)}; each service's "
                f"authorization must come before its other tools"
            )
            continue
        if len(seg) < 2:
            errs.append(f"{m.domain} contributes only its authorization; add at least one {m.domain} action")
        edges, pre = m.edges, m.preconditions
        for a, b in zip(seg, seg[1:]):
            if (a, b) not in edges:
                errs.append(
                    f"{ns(m.domain, b)} cannot follow {ns(m.domain, a)}: no edge {a} -> {b} in "
                    f"{m.domain}'s tool graph (that member's calls must form a path of its graph)"
                )
        seen: set[str] = set()
        for t in seg:
            missing = [p for p in pre.get(t, []) if p not in seen]
            if missing:
                errs.append(
                    f"{ns(m.domain, t)} needs {', '.join(ns(m.domain, p) for p in missing)} earlier (its preconditions)"
                )
            seen.add(t)
        if m.status(tuple(seg)) == "infeasible":
            errs.append(
                f"the {m.domain} segment {seg} failed every single-domain execution (s16); use a validated segment"
            )
    return [f"trajectory [{label}]: {e}" for e in errs]


def check_answer(ans: FusionAnswer, members: list[Member], max_len: int, index: dict | None = None) -> list[str]:
    if not ans.trajectories:
        return ["no trajectories: propose at least one fused trajectory"]
    errs: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for i, ft in enumerate(ans.trajectories):
        key = tuple(ft.tools)
        if key in seen:
            errs.append(f"{i}: trajectory [{' -> '.join(ft.tools)}]: duplicate of an earlier trajectory; remove it")
            continue
        seen.add(key)
        errs += [f"{i}: {e}" for e in check_trajectory(ft.tools, members, max_len)]
        if index is not None:
            label = " -> ".join(ft.tools)
            errs += [f"{i}: trajectory [{label}]: {e}" for e in links_mod.check_links(ft.links, ft.tools, index)]
        if not ft.storyline.strip():
            errs.append(f"{i}: trajectory [{' -> '.join(ft.tools)}]: the storyline is empty")
    return errs


# ------------------------------------------------------------------ context
def member_context(m: Member) -> dict:
    segs = sorted(set(m.segments) | {tuple(t) for t in m.graph.get("trajectories", [])})
    feasible = [
        {"tools": [ns(m.domain, t) for t in s], "status": m.status(s), "valid_tasks": m.valid_counts.get(s, 0)}
        for s in segs
        if m.status(s) != "infeasible" and s and s[0] == m.auth
    ]
    feasible.sort(key=lambda x: (x["status"] != "validated", -x["valid_tasks"], x["tools"]))
    rules = parse_policy(m.policy).rules[:MAX_RULES] if m.policy else []
    return {
        "domain": m.domain,
        "description": m.bp.description,
        "authorize_tool": ns(m.domain, m.auth),
        "tools": [
            {
                "name": ns(m.domain, t.name),
                "kind": t.kind,
                "table": t.table,
                "owned": m.bp.relationship(t.table) is not None or t.table == m.bp.core_entity,
                "parameters": [p.name for p in t.parameters],
                "description": t.description,
            }
            for t in m.bp.tools
        ],
        "edges": sorted([ns(m.domain, a), ns(m.domain, b)] for a, b in m.edges),
        "preconditions": {
            ns(m.domain, k): [ns(m.domain, p) for p in v] for k, v in sorted(m.preconditions.items()) if v
        },
        "segments": feasible,
        "policy_rules": rules,
    }


def fusion_context(
    pair: str, core: str, members: list[Member], max_len: int, target: int, index: dict | None = None
) -> dict:
    out = {
        "pair": pair,
        "core_entity": core,
        "max_length": max_len,
        "target_count": target,
        "members": [member_context(m) for m in members],
    }
    if index is not None:
        # what may be handed over: linkable result fields and write parameters, typed
        out["linkable"] = [
            {
                "from": {"call": f.tool, "field": f.name, "type": f.type, "category": f.category},
                "to": {"call": p.tool, "param": p.name, "type": p.type, "category": p.category},
            }
            for f, p in links_mod.possible_links(index)
        ]
        out["relations"] = {r: list(c) for r, c in links_mod.RELATION_CATEGORIES.items()}
    return out


# ------------------------------------------------------------------ assembly
def rank(kept: list[list[str]], members: list[Member], cap: int) -> list[list[str]]:
    """Deterministic order and cap: tier by validated segments (2, 1, 0), then s08's ranking."""
    kinds = {ns(m.domain, t.name): t.kind for m in members for t in m.bp.tools}

    def tier(traj: list[str]) -> int:
        n = 0
        for m in members:
            seg = tuple(split_ns(x)[1] for x in traj if split_ns(x)[0] == m.domain)
            n += m.status(seg) == "validated"
        return n

    out: list[list[str]] = []
    for level in (2, 1, 0):
        group = [tuple(t) for t in kept if tier(t) == level]
        if group and len(out) < cap:
            out += rank_trajectories(group, kinds, cap - len(out))
    return out


def assemble(
    pair: str,
    core: str,
    members: list[Member],
    proposals: list[FusedTrajectory],
    max_len: int,
    cap: int,
    rounds: list[dict],
    index: dict | None = None,
) -> dict:
    accepted: dict[tuple[str, ...], str] = {}
    linked: dict[tuple[str, ...], list[dict]] = {}
    rejected: list[dict] = []
    for ft in proposals:
        key = tuple(ft.tools)
        errs = check_trajectory(ft.tools, members, max_len)
        if index is not None and not errs:
            errs = links_mod.check_links(ft.links, ft.tools, index)
        if key in accepted:
            errs = errs or ["duplicate of an earlier trajectory"]
        if errs:
            rejected.append({"tools": list(ft.tools), "reason": "; ".join(errs)[:500]})
        else:
            accepted[key] = ft.storyline.strip()
            linked[key] = [lk.dump() for lk in ft.links]
    kept = rank([list(k) for k in accepted], members, cap)
    over = [list(k) for k in accepted if list(k) not in kept]
    rejected += [{"tools": t, "reason": f"over the cap tool_graph.max_trajectories={cap}"} for t in over]
    nodes = [ns(m.domain, t) for m in members for t in m.tools]
    edges = {
        (ns(m.domain, e["source"]), ns(m.domain, e["target"])): e["type"]
        for m in members
        for e in m.graph.get("edges", [])
    }
    # bridge edges: where a kept storyline hands over from one service to the other
    for traj in kept:
        for a, b in zip(traj, traj[1:]):
            if split_ns(a)[0] != split_ns(b)[0]:
                edges.setdefault((a, b), "storyline flow")
    pre = {ns(m.domain, t): [ns(m.domain, p) for p in m.preconditions.get(t, [])] for m in members for t in m.tools}

    def seg_status(traj: list[str]) -> dict[str, str]:
        return {m.domain: m.status(tuple(split_ns(x)[1] for x in traj if split_ns(x)[0] == m.domain)) for m in members}

    return {
        "domain": pair,
        "status": "ok",
        "members": [m.domain for m in members],
        "core_entity": core,
        "roots": [ns(m.domain, m.auth) for m in members],
        "nodes": nodes,
        "edges": [{"source": s, "target": t, "type": ty} for (s, t), ty in sorted(edges.items())],
        "preconditions": pre,
        "trajectories": kept,
        "storylines": [
            {
                "trajectory": t,
                "storyline": accepted[tuple(t)],
                "segments": seg_status(t),
                "links": linked.get(tuple(t), []),
            }
            for t in kept
        ],
        "rejected": rejected,
        "enumerated": len(proposals),
        "valid": len(accepted),
        "kept": len(kept),
        "rounds": rounds,
        "limits": {"max_length": max_len, "max_trajectories": cap},
    }


def failed(ctx: StepContext, pair: str, reason: str, rounds: list[dict] | None = None) -> None:
    ctx.log.warning("trajectory fusion for %s quarantined: %s", pair, reason)
    ctx.write_json(
        output_name(ctx),
        {
            "domain": pair,
            "status": "failed",
            "reason": reason,
            "members": sorted(pair.split(PAIR_SEP)),
            "nodes": [],
            "edges": [],
            "preconditions": {},
            "trajectories": [],
            "storylines": [],
            "rejected": [],
            "enumerated": 0,
            "valid": 0,
            "kept": 0,
            "rounds": rounds or [],
        },
        SCHEMA,
    )


def output_name(ctx: StepContext) -> str:
    """The rule's named output (``graph``; ``tool_graph`` accepted too)."""
    return next((n for n in ("graph", "tool_graph", "trajectories") if n in ctx.outputs), "graph")


def limits(cfg: Config) -> tuple[int, int]:
    """(max fused length, cap): ``cross.max_length`` if set, else ``tool_graph.max_length + 2``."""
    max_len = cfg.cross.max_length or cfg.tool_graph.max_length + 2
    return max_len, cfg.tool_graph.max_trajectories


def run(ctx: StepContext) -> None:
    pair = ctx.wildcards.get("pair") or ctx.wildcards.get("env", "")
    members, reason = load_members(
        as_paths(ctx.inputs.get("blueprints")),
        as_paths(ctx.inputs.get("tool_graphs")),
        as_paths(ctx.inputs.get("tasks")),
        as_paths(ctx.inputs.get("policies")),
    )
    if reason:
        return failed(ctx, pair, f"s11: {reason}")
    record = pair_record(ctx.inputs.get("combos"), pair)
    core = str(record.get("core_entity") or members[0].bp.core_entity)
    if any(m.bp.core_entity != core for m in members):
        return failed(
            ctx,
            pair,
            f"s11: members do not share the core entity {core}: "
            + ", ".join(f"{m.domain}={m.bp.core_entity}" for m in members),
        )
    max_len, cap = limits(ctx.cfg)
    entity_path = ctx.inputs.get("entities")
    entities = load_entities(entity_path) if entity_path and Path(str(entity_path)).is_file() else {}
    index = links_mod.link_index([(m.domain, m.bp) for m in members], links_mod.entity_columns_of(entities))
    if not links_mod.possible_links(index):
        return failed(
            ctx,
            pair,
            "s11: no linkable value: no result field of one member (date, amount, address, name or "
            "reference) fits a write parameter of the other, so no storyline can carry a value across",
        )
    context = fusion_context(pair, core, members, max_len, cap, index)
    rounds: list[dict] = []
    last: list[FusionAnswer] = []

    def check(ans: FusionAnswer) -> list[str]:
        last[:] = [ans]
        errors = check_answer(ans, members, max_len, index)
        rounds.append({"round": len(rounds), "errors": errors})
        return errors

    messages = render(
        "s11",
        "fusion",
        context,
        pair=pair,
        core_entity=core,
        max_length=max_len,
        target_count=cap,
        domains=" and ".join(m.domain for m in members),
    )
    try:
        ans: FusionAnswer = ctx.llm.generate(
            "s11.fusion",
            messages,
            schema=FusionAnswer,
            role="text",
            context=context,
            check=check,
            max_rounds=ctx.cfg.llm.max_repair_rounds,
        )
    except LLMError as exc:
        if not last:
            return failed(ctx, pair, f"s11: no usable answer: {str(exc)[:300]}", rounds)
        ans = last[0]  # keep what passes; the rest is recorded with its reason
        ctx.log.warning("s11 %s: repair rounds exhausted; keeping the trajectories that pass", pair)
    doc = assemble(pair, core, members, ans.trajectories, max_len, cap, rounds, index)
    if not doc["trajectories"]:
        return failed(
            ctx,
            pair,
            "s11: no fused trajectory passed the checks: " + "; ".join(r["reason"] for r in doc["rejected"][:3])[:500],
            rounds,
        )
    ctx.log.info("s11 %s: %d proposed, %d valid, %d kept", pair, doc["enumerated"], doc["valid"], doc["kept"])
    ctx.write_json(output_name(ctx), doc, SCHEMA)


__all__ = [
    "run",
    "FusionAnswer",
    "FusedTrajectory",
    "Member",
    "check_trajectory",
    "check_answer",
    "load_members",
    "segment_evidence",
    "fusion_context",
    "assemble",
    "limits",
    "pair_record",
]
