"""Repairs of a blueprint's tools, one per feedback code (see :mod:`.blueprint_repair`): the tool set,
each tool against its (repaired) table, names and the minimum count."""

from __future__ import annotations

from agentskiller.models.catalog import primary_key_for

from ..phrasing import spoken
from .blueprint_draft import WRITE_KINDS, Draft
from .blueprint_tools import param_for
from .tool_names import fit_name, unique


# ------------------------------------------------------------------ tool set
def fix_unknown_table(d: Draft) -> None:
    """Tools on tables the blueprint lacks go; writes only to relationship tables."""
    if d.has("unknown_table"):
        d.tools = [
            t
            for t in d.tools
            if t.get("table") in d.tables and not (t.get("kind") in WRITE_KINDS and t["table"] not in d.rel_names)
        ]


def fix_authorize(d: Draft) -> None:
    """``authorize_count`` / ``authorize_shape``: exactly one authorize tool, first, rebuilt."""
    if d.has("authorize_count", "authorize_shape"):
        others = [t for t in d.tools if t.get("kind") != "authorize"]
        auth = d.builder.authorize()
        auth["name"] = unique(auth["name"], {t["name"] for t in others}, d.domain)
        d.tools = [auth, *others]


def fix_aggregate(d: Draft) -> None:
    """Compute tools on relationship tables only, aggregating a numeric column (else counting)."""
    if not d.has("aggregate"):
        return
    kept = []
    for t in d.tools:
        if t.get("kind") == "compute":
            cols = d.columns(t)
            if t.get("table") not in d.rel_names:
                continue
            col = cols.get(t.get("aggregate_column") or "")
            if t.get("aggregate") is None or (
                t["aggregate"] != "count" and (col is None or col["type"] not in ("integer", "number"))
            ):
                t["aggregate"], t["aggregate_column"] = "count", None
        kept.append(t)
    d.tools = kept


# ------------------------------------------------------------------ each tool
def fix_reads_writes(d: Draft, t: dict) -> None:
    """A tool reads its table (and known others), writes only its own table, only when it is a write."""
    if not d.has("reads_writes"):
        return
    kind = t.get("kind")
    t["reads"] = [t["table"]] + [x for x in t.get("reads", []) if x in d.tables and x != t["table"]]
    t["writes"] = [t["table"]] if kind in WRITE_KINDS else []
    if kind not in ("update", "delete"):
        t["preconditions"] = []
    if kind not in ("create", "update"):
        t["effects"] = {}


def fix_unbound_param(d: Draft, t: dict) -> None:
    """Parameters, preconditions and effects only on columns of the tool's table."""
    if not d.has("unbound_param"):
        return
    cols = d.columns(t)
    params = []
    for p in t.get("parameters", []):
        if p.get("column") is None and p.get("name") in cols:
            p["column"] = p["name"]
        if p.get("column") in cols:
            params.append(p)
    t["parameters"] = params
    t["preconditions"] = [c for c in t.get("preconditions", []) if c.get("column") in cols]
    t["effects"] = {k: v for k, v in (t.get("effects") or {}).items() if k in cols}


def fix_param_type(d: Draft, t: dict) -> None:
    if not d.has("param_type"):
        return
    cols = d.columns(t)
    for p in t.get("parameters", []):
        col = cols.get(p.get("column"))
        if col is not None and p.get("type") != col["type"]:
            p["type"], p["items"] = col["type"], None


def fix_enum_value(d: Draft, t: dict) -> None:
    """Parameter enums as their column's; preconditions and effects only with values the enum has."""
    if not d.has("enum_value"):
        return
    cols = d.columns(t)
    for p in t.get("parameters", []):
        col = cols.get(p.get("column"))
        if col is not None and p.get("type") != "array":
            if col.get("enum"):
                p["enum"] = list(col["enum"])
            else:
                p.pop("enum", None)
    conds = []
    for c in t.get("preconditions", []):
        enum = (cols.get(c.get("column")) or {}).get("enum")
        vals = [v for v in c.get("values", []) if enum is None or v in enum]
        if vals:
            conds.append({**c, "values": vals})
    t["preconditions"] = conds
    t["effects"] = {
        k: v for k, v in (t.get("effects") or {}).items() if not (cols.get(k) or {}).get("enum") or v in cols[k]["enum"]
    }


def fix_missing_pk_param(d: Draft, t: dict) -> None:
    """A read, update or delete takes its table's primary key, required, first."""
    if not (d.has("missing_pk_param") and t.get("kind") in ("read", "update", "delete")):
        return
    cols = d.columns(t)
    pk = primary_key_for(t["table"])
    if pk in cols and not any(p.get("column") == pk and p.get("required", True) for p in t["parameters"]):
        t["parameters"] = [p for p in t["parameters"] if p.get("column") != pk]
        t["parameters"].insert(0, param_for(cols[pk], description=f"ID of the {spoken(t['table'])}"))


def fix_create_incomplete(d: Draft, t: dict) -> None:
    """A create sets every required column: a parameter each, the initial status as an effect;
    never its own key or the user's (the server fills those)."""
    if not (d.has("create_incomplete") and t.get("kind") == "create" and t["table"] in d.rel_names):
        return
    pk, core_fk = primary_key_for(t["table"]), primary_key_for(d.core)
    t["parameters"] = [p for p in t["parameters"] if p.get("column") not in (pk, core_fk)]
    given = {p.get("column") for p in t["parameters"]} | set(t.get("effects") or {})
    for c in next(r for r in d.bp["relationships"] if r["name"] == t["table"])["columns"]:
        if c["name"] not in given and c["name"] not in (pk, core_fk) and not c.get("nullable"):
            if c.get("enum") and c["name"] == "status":
                t.setdefault("effects", {})[c["name"]] = c["enum"][0]
            else:
                t["parameters"].append(param_for(c))


# ---------------------------------------------------------------- names, count
def fix_tool_names(d: Draft) -> None:
    """``tool_name`` / ``duplicate_tool``: every name fitted and unique."""
    if d.has("tool_name", "duplicate_tool"):
        taken: set[str] = set()
        for t in d.tools:
            t["name"] = unique(fit_name(t.get("name", "tool"), d.domain), taken, d.domain)


def fix_too_few_tools(d: Draft) -> None:
    """Top up to the minimum from the builder's tools; also when other fixes dropped tools."""
    min_tools = int(d.limits.get("min_tools", 8))
    if d.has("too_few_tools") or len(d.tools) < min_tools:
        have = {t["name"] for t in d.tools}
        for cand in d.builder.all_tools(extras=True):
            if len(d.tools) >= min_tools:
                break
            if cand["name"] not in have:
                cand["name"] = unique(cand["name"], have, d.domain)
                d.tools.append(cand)
