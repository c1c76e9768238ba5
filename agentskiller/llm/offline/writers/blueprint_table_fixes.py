"""Repairs of a blueprint's domain, entities and tables, one per feedback code (see :mod:`.blueprint_repair`)."""

from __future__ import annotations

import re

from agentskiller.models.catalog import pascal_case, primary_key_for

from ..phrasing import spoken
from .blueprint import setup_builder
from .blueprint_draft import Draft


# ------------------------------------------------------------- blueprint level
def fix_outline_mismatch(d: Draft) -> None:
    if d.has("outline_mismatch"):
        d.bp["domain"] = d.outline["domain"]
        d.bp["core_entity"] = d.core = d.outline["core_entity"]


def fix_server_name(d: Draft) -> None:
    if d.has("server_name") and not d.has("outline_mismatch"):
        name = pascal_case(re.sub(r"[^A-Za-z0-9]+", " ", d.bp.get("domain", ""))) or d.outline["domain"]
        d.bp["domain"] = name[:40]


def fix_unknown_entity(d: Draft) -> None:
    if d.has("unknown_entity"):
        d.bp["peripheral_entities"] = [
            p for p in d.bp.get("peripheral_entities", []) if p in d.entities and p != d.core
        ]
        if d.core not in d.entities:
            d.bp["core_entity"] = d.core = d.outline["core_entity"]


def fix_too_many_peripherals(d: Draft) -> None:
    if d.has("too_many_peripherals"):
        limit = int(d.limits.get("max_peripheral", 3))
        keep = [p for p in d.bp.get("peripheral_entities", []) if p in d.entities][:limit]
        d.bp["peripheral_entities"] = keep or list(d.outline["peripheral_entities"])[:1]


def fix_too_many_relationships(d: Draft) -> None:
    if d.has("too_many_relationships"):
        d.bp["relationships"] = d.bp["relationships"][: int(d.limits.get("max_relationships", 3))]
        if not d.bp["relationships"]:
            b, _ = setup_builder(d.req, d.outline)
            d.bp["relationships"] = b.relationships[:1]


def fix_duplicate_table(d: Draft) -> None:
    if d.has("duplicate_table"):
        seen = {d.core, *d.bp.get("peripheral_entities", [])}
        rels = []
        for r in d.bp["relationships"]:
            if r["name"] not in seen:
                seen.add(r["name"])
                rels.append(r)
        d.bp["relationships"] = rels


# ------------------------------------------------------------ relationship level
def fix_unknown_reference(d: Draft, rel: dict) -> None:
    if d.has("unknown_reference"):
        rel["columns"] = [c for c in rel["columns"] if not c.get("references") or c["references"] in d.ents]


def fix_fk_name(d: Draft, rel: dict) -> None:
    """Foreign keys named ``<entity>_id``; the tools' parameters bound to them follow."""
    if not d.has("fk_name"):
        return
    for c in rel["columns"]:
        ref = c.get("references")
        if ref and c["name"] != primary_key_for(ref):
            old, c["name"] = c["name"], primary_key_for(ref)
            for t in d.bp["tools"]:
                if t.get("table") == rel["name"]:
                    for p in t.get("parameters", []):
                        if p.get("column") == old:
                            p["column"] = c["name"]
                            if p.get("name") == old:
                                p["name"] = c["name"]


def fix_relationship_pk(d: Draft, rel: dict) -> None:
    """One uuid primary key ``<table>_id``, first; duplicate columns dropped."""
    if not d.has("relationship_pk"):
        return
    pk = primary_key_for(rel["name"])
    seen_cols: set[str] = set()
    cols = [c for c in rel["columns"] if not (c["name"] in seen_cols or seen_cols.add(c["name"]))]
    pkcol = next((c for c in cols if c["name"] in (pk, rel.get("primary_key"))), None)
    if pkcol is not None:
        cols.remove(pkcol)
    pkcol = {
        "name": pk,
        "type": "string",
        "format": "uuid",
        "description": (pkcol or {}).get("description", f"Unique identifier of the {spoken(rel['name'])}"),
    }
    rel["columns"] = [pkcol, *cols]
    rel["primary_key"] = pk


def fix_core_not_in_relationship(d: Draft, rel: dict) -> None:
    cols = rel["columns"]
    if d.has("core_not_in_relationship") and not any(c.get("references") == d.core for c in cols):
        cols.insert(
            1,
            {
                "name": primary_key_for(d.core),
                "type": "string",
                "references": d.core,
                "description": f"The {spoken(d.core)} this record belongs to",
            },
        )


def fix_enum_columns(d: Draft, rel: dict) -> None:
    """``enum_value`` on a table: an empty enum is no enum (those columns move last)."""
    if d.has("enum_value"):
        cols = rel["columns"]
        rel["columns"] = [c for c in cols if c.get("enum") != []] + [
            {**c, "enum": None} for c in cols if c.get("enum") == []
        ]
        for c in rel["columns"]:
            if c.get("enum") is None:
                c.pop("enum", None)


def fix_column_bound(d: Draft, rel: dict) -> None:
    """``column_bound``: an ``at_most`` that does not name a numeric attribute of an entity the
    row references, on a numeric column, is dropped (the feedback says which)."""
    if not d.has("column_bound"):
        return
    refs = {c.get("references") for c in rel["columns"] if c.get("references")}
    for c in rel["columns"]:
        ent, _, attr = (c.get("at_most") or "").partition(".")
        target = {a["name"]: a for a in d.entities.get(ent, {}).get("attributes", [])}.get(attr)
        numeric = ("integer", "number")
        if c.get("at_most") and (
            ent not in refs or c.get("type") not in numeric or not target or target.get("type") not in numeric
        ):
            del c["at_most"]
