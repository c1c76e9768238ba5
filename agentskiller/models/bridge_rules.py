"""The Bridge Rules of a pair, as data: what the pair server enforces and its contract tests prove.

Like :mod:`.policy_rules` for a domain, every Bridge Rule is derived mechanically from the
members' blueprints and, for ordering, the links the fused trajectories declare; nothing
here is a model's choice. s13 gives the rules to the policy writer, which states each one on
a bullet that ends with its marker ``<!-- RULE: bridge.<id> -->`` (a bullet without such a
marker is a text-only rule nobody enforces, and s13 refuses it); the pair server writes the
rules into its manifest, the runtime enforces them, and :mod:`agentskiller.steps.cross.bridge_tests`
derives a violating call the server refuses and a conforming one it accepts for each.

Kinds and ids:

* ``bridge.identity`` (identity): one person per conversation: the same core key authorizes
  both members; once one member is authorized, authorizing the other as a different person
  is refused (the runtime's ``Context.authorize``).
* ``bridge.authorization.<Domain>`` (authorization), one per member: that member's tools
  refuse until the member's own authorization tool succeeded; the other member's
  authorization does not count (``state.auth[domain]``).
* ``bridge.separation.<Domain>`` (separation), per member that has a tool reading one record
  of its own relationship table by key: its tools see only its own tables and the shared
  entity tables, so a record ID of the other member's tables is unknown to them (the
  namespace). A member without such a tool gets no separation rule: no call could show it.
* ``bridge.ordering.<tool>.<after>`` (ordering): ``tool`` (a member's step) only after
  ``after`` (the other member's step) succeeded in the conversation. Derived from the links
  of the fused trajectories (``cross/{pair}/tool_graph.json``: ``links: [{from: {call,
  field}, to: {call, param}, relation}]`` on a storyline or trajectory entry, ``call`` the
  namespaced tool name or an index into its trajectory), and only where every fused trajectory that calls ``tool``
  calls ``after`` before it (otherwise the rule would refuse a storyline the pair offers).
  No links, no ordering rules.

Consent or data-sharing rules are not derived: no member declares one, and a rule the
merged policy merely states would be text only.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from .blueprint import Blueprint
from .catalog import Strict, primary_key_for

BridgeKind = Literal["identity", "authorization", "separation", "ordering"]
BRIDGE_KINDS: tuple[str, ...] = ("identity", "authorization", "separation", "ordering")
NS = "__"
READ_KINDS = ("read", "search", "compute")


class BridgeRule(Strict):
    id: str = Field(pattern=r"^bridge\.[A-Za-z0-9_.\-]+$")
    kind: BridgeKind
    #: the member the rule is about (authorization, separation)
    domain: str | None = None
    #: ordering: the step that waits; separation: the member's read tool the tests call
    tool: str | None = None
    #: ordering: the other member's step that must have succeeded first
    after: str | None = None
    #: the names (backticked in the policy) a bullet stating the rule must mention
    names: list[str] = Field(default_factory=list)
    #: what the rule says, in one sentence (for the policy writer)
    statement: str

    def runtime(self) -> dict[str, Any]:
        """The entry of the pair's runtime manifest (``bridge``)."""
        return {"id": self.id, "kind": self.kind, "domain": self.domain, "tool": self.tool, "after": self.after}


def ns_tool(domain: str, tool: str) -> str:
    return f"{domain}{NS}{tool}"


def _words(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def separation_tool(bp: Blueprint) -> tuple[str, str, str] | None:
    """(tool, parameter, relationship) of ``bp``'s first read tool whose only required
    parameter is the key of one of its relationship tables, or None."""
    for t in bp.tools:
        rel = bp.relationship(t.table)
        req = [p for p in t.parameters if p.required]
        if (
            t.kind in READ_KINDS
            and rel is not None
            and len(req) == 1
            and (req[0].column or req[0].name) == rel.primary_key
        ):
            return t.name, req[0].name, rel.name
    return None


def declared_links(graph: dict | None) -> list[tuple[list[str], dict]]:
    """``(trajectory, link)`` for every link a fused tool graph declares (on its storylines
    or on trajectory entries given as objects)."""
    out: list[tuple[list[str], dict]] = []
    if not isinstance(graph, dict):
        return out
    entries = [e for e in (graph.get("storylines") or []) if isinstance(e, dict)]
    entries += [e for e in (graph.get("trajectories") or []) if isinstance(e, dict)]
    for e in entries:
        tools = e.get("trajectory") or e.get("tools") or []
        for link in e.get("links") or []:
            if isinstance(link, dict) and isinstance(tools, list):
                out.append(([str(t) for t in tools], link))
    return out


def _trajectories(graph: dict) -> list[list[str]]:
    out = []
    for t in graph.get("trajectories") or []:
        tools = t if isinstance(t, list) else (t.get("trajectory") or t.get("tools") or [])
        out.append([str(x) for x in tools])
    out += [[str(x) for x in s.get("trajectory") or []] for s in graph.get("storylines") or [] if isinstance(s, dict)]
    return out


def _position(traj: list[str], call: Any) -> int | None:
    """A link end's call: the namespaced tool name (its first place in the trajectory) or
    an index into the trajectory."""
    if isinstance(call, str) and not call.isdigit():
        return traj.index(call) if call in traj else None
    return int(call)


def ordering_pairs(graph: dict | None, tools: set[str]) -> list[tuple[str, str]]:
    """``(tool, after)``: a link hands a value of ``after`` (one member) to ``tool`` (the
    other), and every fused trajectory that calls ``tool`` calls ``after`` earlier."""
    found: set[tuple[str, str]] = set()
    for traj, link in declared_links(graph):
        try:
            i, j = _position(traj, link["from"]["call"]), _position(traj, link["to"]["call"])
        except (KeyError, TypeError, ValueError):
            continue
        if i is None or j is None or not (0 <= i < j < len(traj)):
            continue
        a, b = traj[i], traj[j]
        if a in tools and b in tools and a.split(NS, 1)[0] != b.split(NS, 1)[0]:
            found.add((b, a))
    trajs = _trajectories(graph or {})
    kept = []
    for tool, after in sorted(found):
        ok = all(after in t[: t.index(tool)] for t in trajs if tool in t)
        if ok:
            kept.append((tool, after))
    return kept


def derive_bridge_rules(bps: list[Blueprint], graph: dict | None = None) -> list[BridgeRule]:
    """Every Bridge Rule of the pair ``bps`` (sorted by domain), in a stable order."""
    bps = sorted(bps, key=lambda b: b.domain)
    core = bps[0].core_entity
    key = primary_key_for(core)
    person = _words(core)
    auth = {bp.domain: ns_tool(bp.domain, bp.authorize_tool().name) for bp in bps}
    a, b = (bp.domain for bp in bps)
    rules = [
        BridgeRule(
            id="bridge.identity",
            kind="identity",
            names=[auth[a], auth[b], key],
            statement=(
                f"One {person} per conversation: the same `{key}` authorizes `{auth[a]}` and `{auth[b]}`; once one "
                f"service is authorized, authorizing the other with a different `{key}` is refused."
            ),
        )
    ]
    for bp in bps:
        d = bp.domain
        rules.append(
            BridgeRule(
                id=f"bridge.authorization.{d}",
                kind="authorization",
                domain=d,
                names=[auth[d]],
                statement=(
                    f"{d} tools are refused until `{auth[d]}` succeeded in this conversation; the other "
                    f"service's authorization does not count for {d}."
                ),
            )
        )
    entities = set().union(*(set(bp.entities) for bp in bps))
    for bp in bps:
        found = separation_tool(bp)
        if found is None:
            continue
        tool, _param, rel = found
        other = next(o.domain for o in bps if o.domain != bp.domain)
        own = sorted(f"{bp.domain}_{r.name}" for r in bp.relationships if r.name not in entities)
        rules.append(
            BridgeRule(
                id=f"bridge.separation.{bp.domain}",
                kind="separation",
                domain=bp.domain,
                tool=ns_tool(bp.domain, tool),
                names=[ns_tool(bp.domain, tool)],
                statement=(
                    f"{bp.domain} tools (such as `{ns_tool(bp.domain, tool)}`) see only {bp.domain}'s own tables "
                    f"({', '.join(f'`{t}`' for t in own)}) and the shared records: a record ID from {other} is "
                    f"unknown to them, and neither service changes the other's records."
                ),
            )
        )
    tools = {ns_tool(bp.domain, t.name) for bp in bps for t in bp.tools}
    for tool, after in ordering_pairs(graph, tools):
        rules.append(
            BridgeRule(
                id=f"bridge.ordering.{tool}.{after}",
                kind="ordering",
                domain=tool.split(NS, 1)[0],
                tool=tool,
                after=after,
                names=[tool, after],
                statement=(
                    f"`{tool}` only after `{after}` succeeded in this conversation: it takes a value that "
                    f"`{after}` gives."
                ),
            )
        )
    return rules


__all__ = [
    "BRIDGE_KINDS",
    "BridgeKind",
    "BridgeRule",
    "declared_links",
    "derive_bridge_rules",
    "ordering_pairs",
    "separation_tool",
]
