"""Typed links of a fused trajectory: a value one service returns that the other's call needs.

A link ``{from: {call, field}, to: {call, param}, relation}`` says: the argument ``param``
of call ``to.call`` (a tool of one member) is the field ``field`` of the result of the
earlier call ``from.call`` (a tool of the *other* member). In ``cross/{pair}/tool_graph.json``
``call`` is the namespaced tool name (a tool occurs at most once per fused trajectory); in
templates, tasks and dataset rows it is the index of the call in the trajectory / the golden
calls.

Checked in code against the blueprints (:func:`check_links`):

* the source call is a ``read`` / ``create`` / ``update`` of the other member (its result is
  one record; a search's list or a count would not say which value) on a table that is not
  the shared core person (the same person's profile is no hand-over), and ``field`` is a
  column of that record;
* the target is a user-supplied value parameter of a ``create`` / ``update`` call (no primary
  key, no foreign key: those name records, not values);
* the types are compatible (:func:`category`): date -> date, date-time -> date-time, amount
  -> amount (numbers named like money), address -> address, name -> name, reference ->
  reference; and the relation is meaningful for them: ``equal`` for every category,
  ``after`` / ``before`` for dates and date-times, ``within`` (at most) for amounts.

Only ``equal`` links are carried as execution-time ``resolve`` rules downstream (s15): the
argument is the source field's value, which the user does not state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RELATIONS = ("equal", "after", "before", "within")
#: relation -> categories it is meaningful for
RELATION_CATEGORIES = {
    "equal": ("date", "datetime", "amount", "address", "name", "reference"),
    "after": ("date", "datetime"),
    "before": ("date", "datetime"),
    "within": ("amount",),
}
SOURCE_KINDS = ("read", "create", "update")
TARGET_KINDS = ("create", "update")
_AMOUNT_WORDS = ("amount", "balance", "fare", "price", "paid", "cost", "fee", "spend", "total", "budget", "payment")
_REFERENCE_WORDS = ("number", "code", "reference", "plate")
NS = "__"


class LinkFrom(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call: str | int
    field: str


class LinkTo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call: str | int
    param: str


class Link(BaseModel):
    """One hand-over (``from`` is a Python keyword: the attribute is ``source``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: LinkFrom = Field(alias="from")
    to: LinkTo
    relation: str = "equal"

    def dump(self) -> dict:
        return self.model_dump(by_alias=True)


def category(name: str, typ: str | None) -> str | None:
    """The kind of value a column / parameter holds, from its type and name (None: not
    linkable: a count, a flag, an enum-like status)."""
    n = name.lower()
    if typ in ("date", "datetime"):
        return typ
    if typ in ("number", "integer"):
        return "amount" if any(w in n for w in _AMOUNT_WORDS) else None
    if typ != "string" or n.endswith("_id") or n in ("status",):
        return None
    if "address" in n:
        return "address"
    if n.endswith("name"):
        return "name"
    if any(n.endswith(w) for w in _REFERENCE_WORDS):
        return "reference"
    return None


@dataclass
class Endpoint:
    """A linkable field of a tool's result, or a linkable parameter of a tool."""

    tool: str  # namespaced
    name: str
    type: str
    category: str


def _columns(bp: Any, table: str, entity_columns: dict[str, dict[str, str]]) -> dict[str, str]:
    rel = bp.relationship(table)
    if rel is not None:
        return {c.name: c.type for c in rel.columns if not c.references and c.name != rel.primary_key}
    pk = f"{_snake(table)}_id"
    return {k: v for k, v in (entity_columns.get(table) or {}).items() if k != pk and not k.endswith("_id")}


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def result_fields(domain: str, bp: Any, entity_columns: dict[str, dict[str, str]]) -> list[Endpoint]:
    """Linkable fields of the member's tool results (one record: read / create / update)."""
    out = []
    for t in bp.tools:
        if t.kind not in SOURCE_KINDS or t.table == bp.core_entity:
            continue
        for col, typ in sorted(_columns(bp, t.table, entity_columns).items()):
            cat = category(col, typ)
            if cat:
                out.append(Endpoint(f"{domain}{NS}{t.name}", col, typ, cat))
    return out


def target_params(domain: str, bp: Any) -> list[Endpoint]:
    """Linkable value parameters of the member's writes."""
    out = []
    for t in bp.tools:
        if t.kind not in TARGET_KINDS or t.table == bp.core_entity:
            continue
        rel = bp.relationship(t.table)
        fks = set(rel.foreign_keys()) if rel is not None else set()
        pk = rel.primary_key if rel is not None else ""
        for p in t.parameters:
            col = p.column or p.name
            if col in fks or col == pk or p.enum:
                continue
            cat = category(p.name, p.type)
            if cat:
                out.append(Endpoint(f"{domain}{NS}{t.name}", p.name, p.type, cat))
    return out


def compatible(src: Endpoint, dst: Endpoint, relation: str) -> bool:
    return (
        src.category == dst.category
        and src.type == dst.type
        or (src.category == dst.category == "amount" and {src.type, dst.type} <= {"number", "integer"})
    ) and src.category in RELATION_CATEGORIES.get(relation, ())


def entity_columns_of(entities: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Entity name -> attribute -> type, from ``entities.json`` models."""
    return {name: {a.name: a.type for a in ent.attributes} for name, ent in (entities or {}).items()}


def link_index(members: list[tuple[str, Any]], entity_columns: dict[str, dict[str, str]]) -> dict:
    """Per member: linkable result fields and parameters (what the prompt and the checks use)."""
    return {
        dom: {
            "fields": result_fields(dom, bp, entity_columns),
            "params": target_params(dom, bp),
            "tool_params": {f"{dom}{NS}{t.name}": [p.name for p in t.parameters] for t in bp.tools},
            "tool_tables": {f"{dom}{NS}{t.name}": t.table for t in bp.tools},
            "writes": {f"{dom}{NS}{t.name}" for t in bp.tools if t.kind in TARGET_KINDS},
        }
        for dom, bp in members
    }


def possible_links(index: dict) -> list[tuple[Endpoint, Endpoint]]:
    """Every type-compatible (field, param) hand-over between the two members (equal)."""
    out = []
    doms = sorted(index)
    for a in doms:
        for b in doms:
            if a == b:
                continue
            for f in index[a]["fields"]:
                if f.name in _param_names(index, a, f.tool):
                    continue  # the user states it to that call
                for p in index[b]["params"]:
                    if compatible(f, p, "equal"):
                        out.append((f, p))
    return out


def _param_names(index: dict, domain: str, tool: str) -> set[str]:
    return set((index.get(domain, {}).get("tool_params") or {}).get(tool, []))


def stated_upstream(index: dict, domain: str, tools: list[str], src: str, field: str) -> bool:
    """Whether the user gives ``field`` of the source record themselves: it is an argument of
    the source call, or of another write of that record's table before the target (``tools``:
    the calls up to it) - a booking made with the user's date, then looked up; or a meeting
    looked up and then moved, whose "time" would no longer be the one read."""
    if field in _param_names(index, domain, src):
        return True
    info = index.get(domain, {})
    table = (info.get("tool_tables") or {}).get(src)
    for t in tools:
        if t in (info.get("writes") or set()) and (info.get("tool_tables") or {}).get(t) == table:
            if field in _param_names(index, domain, t):
                return True
    return False


def check_links(links: list[Link], tools: list[str], index: dict) -> list[str]:
    """Problems of the links of one fused trajectory (``call`` = namespaced tool names)."""
    errs: list[str] = []
    if not links:
        return [
            "declares no link: name at least one value that one service returns and the other "
            "service's call needs (links: [{from: {call, field}, to: {call, param}, relation}])"
        ]
    seen: set[tuple[str, str]] = set()
    for lk in links:
        src, dst = str(lk.source.call), str(lk.to.call)
        label = f"link {src}.{lk.source.field} -> {dst}.{lk.to.param}"
        if src not in tools or dst not in tools:
            errs.append(f"{label}: both calls must be tools of this trajectory")
            continue
        if tools.index(src) >= tools.index(dst):
            errs.append(f"{label}: the source call must come before the call it feeds")
            continue
        ds, dd = src.split(NS, 1)[0], dst.split(NS, 1)[0]
        if ds == dd:
            errs.append(f"{label}: a link hands a value from one service to the other; both calls are {ds}")
            continue
        f = next((e for e in index.get(ds, {}).get("fields", []) if e.tool == src and e.name == lk.source.field), None)
        p = next((e for e in index.get(dd, {}).get("params", []) if e.tool == dst and e.name == lk.to.param), None)
        if f is not None and stated_upstream(index, ds, tools[: tools.index(dst)], src, lk.source.field):
            errs.append(
                f"{label}: {lk.source.field!r} is an argument of {src}: the user states it there, so nothing "
                f"is carried across; link a field the user does not give (of a record looked up, say)"
            )
            continue
        if f is None:
            errs.append(
                f"{label}: {lk.source.field!r} is no linkable field of {src}'s result (a read, create or "
                f"update of a record other than the shared person; a date, amount, address, name or reference)"
            )
            continue
        if p is None:
            errs.append(f"{label}: {lk.to.param!r} is no value parameter of the write {dst}")
            continue
        if lk.relation not in RELATIONS:
            errs.append(f"{label}: relation {lk.relation!r} is none of {', '.join(RELATIONS)}")
            continue
        if not compatible(f, p, lk.relation):
            errs.append(
                f"{label}: incompatible: {f.category} ({f.type}) -> {p.category} ({p.type}) with relation {lk.relation!r}"
            )
            continue
        if (dst, lk.to.param) in seen:
            errs.append(f"{label}: {dst}.{lk.to.param} is fed twice")
        seen.add((dst, lk.to.param))
    return errs


__all__ = [
    "Link",
    "LinkFrom",
    "LinkTo",
    "RELATIONS",
    "category",
    "check_links",
    "compatible",
    "entity_columns_of",
    "link_index",
    "possible_links",
    "result_fields",
    "target_params",
]
