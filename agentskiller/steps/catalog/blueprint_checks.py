"""Deterministic blueprint rules (step s04), checked in code and fed back to the model.

Size: over 400 lines because every rule sits next to the feedback text that tells the model how to fix it.

Every problem is one string ``"[code] explanation"``. The code in brackets is stable (the
offline provider's repair and the tests key on it); the explanation says exactly what to
change, because a real model only sees the text. An empty list means the blueprint is
accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentskiller.config import BlueprintsConfig, default_config
from agentskiller.models.blueprint import (
    DOMAIN_NAME_RE,
    OPENAI_NAME_RE,
    READ_ONLY_KINDS,
    TOOL_NAME_RE,
    WRITE_KINDS,
    Blueprint,
    Column,
    Outline,
    Relationship,
    Tool,
)
from agentskiller.models.catalog import Attribute, Entity, primary_key_for

#: every problem code :func:`check_blueprint` can report
CODES = (
    "too_few_tools",
    "authorize_count",
    "authorize_shape",
    "core_not_in_relationship",
    "unknown_entity",
    "unknown_table",
    "unknown_reference",
    "fk_name",
    "relationship_pk",
    "tool_name",
    "duplicate_tool",
    "server_name",
    "reads_writes",
    "unbound_param",
    "param_type",
    "enum_value",
    "missing_pk_param",
    "create_incomplete",
    "aggregate",
    "too_many_peripherals",
    "too_many_relationships",
    "outline_mismatch",
    "duplicate_table",
    "column_bound",
)


_DEFAULT = default_config().blueprints


@dataclass(frozen=True)
class Limits:
    # defaults from the config schema (the only place a default lives)
    min_tools: int = _DEFAULT.min_tools
    max_peripheral: int = _DEFAULT.max_peripheral
    max_relationships: int = _DEFAULT.max_relationships

    @classmethod
    def from_config(cls, cfg: BlueprintsConfig) -> Limits:
        return cls(
            min_tools=cfg.min_tools,
            max_peripheral=cfg.max_peripheral,
            max_relationships=cfg.max_relationships,
        )

    def as_dict(self) -> dict:
        return {
            "min_tools": self.min_tools,
            "max_peripheral": self.max_peripheral,
            "max_relationships": self.max_relationships,
        }


def namespaced(domain: str, tool: str) -> str:
    """The tool's name once a cross-domain environment prefixes it with its domain."""
    return f"{domain}__{tool}"


def table_columns(bp: Blueprint, entities: dict[str, Entity], table: str) -> dict[str, Attribute] | None:
    """Column name -> definition for an entity or relationship table of ``bp``."""
    if table in bp.entities:
        ent = entities.get(table)
        return {a.name: a for a in ent.attributes} if ent else None
    rel = bp.relationship(table)
    return {c.name: c for c in rel.columns} if rel else None


def _p(code: str, msg: str) -> str:
    return f"[{code}] {msg}"


def check_blueprint(
    bp: Blueprint, entities: dict[str, Entity], limits: Limits, outline: Outline | None = None
) -> list[str]:
    """All rule violations of ``bp`` (empty = valid)."""
    out: list[str] = []
    # ---------------------------------------------------------------- shape
    if not DOMAIN_NAME_RE.fullmatch(bp.domain):
        out.append(
            _p(
                "server_name",
                f"server name {bp.domain!r} must be PascalCase letters and digits, "
                "2-40 characters, starting with a capital letter",
            )
        )
    if outline is not None:
        if bp.domain != outline.domain:
            out.append(
                _p("outline_mismatch", f"domain must be {outline.domain!r} as in the outline, not {bp.domain!r}")
            )
        if bp.core_entity != outline.core_entity:
            out.append(_p("outline_mismatch", f"core_entity must be {outline.core_entity!r} as in the outline"))
    for name in bp.entities:
        if name not in entities:
            out.append(
                _p("unknown_entity", f"entity {name!r} is not in the entity catalogue; use only catalogue entities")
            )
    if bp.core_entity in entities and not entities[bp.core_entity].is_person:
        out.append(_p("unknown_entity", f"core entity {bp.core_entity!r} must be a person entity"))
    if bp.core_entity in bp.peripheral_entities:
        out.append(_p("unknown_entity", f"the core entity {bp.core_entity!r} must not also be a peripheral entity"))
    if len(bp.peripheral_entities) > limits.max_peripheral:
        out.append(
            _p(
                "too_many_peripherals",
                f"{len(bp.peripheral_entities)} peripheral entities; at most "
                f"{limits.max_peripheral} are allowed: drop "
                f"{bp.peripheral_entities[limits.max_peripheral :]}",
            )
        )
    if not bp.peripheral_entities:
        out.append(_p("too_many_peripherals", "at least one peripheral entity is required"))
    if len(bp.relationships) > limits.max_relationships:
        out.append(
            _p(
                "too_many_relationships",
                f"{len(bp.relationships)} relationships; at most "
                f"{limits.max_relationships} are allowed: drop "
                f"{[r.name for r in bp.relationships[limits.max_relationships :]]}",
            )
        )
    if not bp.relationships:
        out.append(_p("too_many_relationships", "at least one relationship table is required"))
    seen_tables: set[str] = set()
    for t in bp.tables:
        if t in seen_tables:
            out.append(
                _p(
                    "duplicate_table",
                    f"table name {t!r} is used twice; relationship names must differ "
                    "from each other and from entity names",
                )
            )
        seen_tables.add(t)

    # -------------------------------------------------------- relationships
    for rel in bp.relationships:
        pk = primary_key_for(rel.name)
        if rel.primary_key != pk or not rel.columns or rel.columns[0].name != pk or rel.columns[0].type != "string":
            out.append(
                _p(
                    "relationship_pk",
                    f"relationship {rel.name}: primary key must be the first column, named {pk!r}, type string",
                )
            )
        names = [c.name for c in rel.columns]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            out.append(_p("relationship_pk", f"relationship {rel.name}: column {dup!r} appears twice"))
        fks = rel.foreign_keys()
        if bp.core_entity not in fks.values():
            out.append(
                _p(
                    "core_not_in_relationship",
                    f"relationship {rel.name} has no foreign key to the core entity {bp.core_entity}; add "
                    f"column {primary_key_for(bp.core_entity)!r} with references {bp.core_entity!r}",
                )
            )
        for col, ref in fks.items():
            if ref not in bp.entities or ref not in entities:
                out.append(
                    _p(
                        "unknown_reference",
                        f"relationship {rel.name}: column {col!r} references {ref!r}, "
                        "which is not an entity of this blueprint",
                    )
                )
            elif col != primary_key_for(ref):
                out.append(
                    _p(
                        "fk_name",
                        f"relationship {rel.name}: foreign key column {col!r} references {ref}; "
                        f"rename it to {primary_key_for(ref)!r}",
                    )
                )
        for c in rel.columns:
            if c.enum is not None and not c.enum:
                out.append(_p("enum_value", f"relationship {rel.name}: column {c.name!r} has an empty enum"))
            if c.at_most is not None:
                out += _check_bound(rel, c, entities)

    # ---------------------------------------------------------------- tools
    if len(bp.tools) < limits.min_tools:
        out.append(
            _p(
                "too_few_tools",
                f"{len(bp.tools)} tools; at least {limits.min_tools} are required "
                f"(add {limits.min_tools - len(bp.tools)} more useful tools)",
            )
        )
    auth = [t for t in bp.tools if t.kind == "authorize"]
    if len(auth) != 1:
        out.append(
            _p(
                "authorize_count",
                f"exactly one authorize tool is required, found {len(auth)}"
                + (
                    f": {[t.name for t in auth]}" if auth else f"; add authorize_{primary_key_for(bp.core_entity)[:-3]}"
                ),
            )
        )
    names = [t.name for t in bp.tools]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        out.append(_p("duplicate_tool", f"tool name {dup!r} is used more than once; tool names must be unique"))
    for tool in bp.tools:
        out += _check_tool(bp, entities, tool)
    return out


def _check_bound(rel: Relationship, col: Column, entities: dict[str, Entity]) -> list[str]:
    """``at_most: "Entity.attribute"``: a numeric column bounded by a numeric attribute of the
    record that one of the relationship's foreign keys references."""
    where = f"relationship {rel.name}: column {col.name!r} has at_most {col.at_most!r}"
    ent, _, attr = (col.at_most or "").partition(".")
    numeric = ("integer", "number")
    if col.type not in numeric:
        return [_p("column_bound", f"{where}, but only integer or number columns can be bounded; drop at_most")]
    if ent not in rel.foreign_keys().values():
        return [
            _p(
                "column_bound",
                f"{where}, but {rel.name} has no foreign key to {ent}; bound it by an entity the row "
                f"references ({sorted(set(rel.foreign_keys().values()))}) or drop at_most",
            )
        ]
    target = entities[ent].attribute(attr) if ent in entities else None
    choices = sorted(a.name for a in entities[ent].attributes if a.type in numeric) if ent in entities else []
    if target is None or target.type not in numeric:
        problem = "no such attribute" if target is None else f"{attr!r} is of type {target.type}"
        return [
            _p(
                "column_bound",
                f"{where}, but {ent} has {problem}; use a numeric attribute of {ent} {choices} or drop at_most",
            )
        ]
    return []


def _check_tool(bp: Blueprint, entities: dict[str, Entity], tool: Tool) -> list[str]:
    out: list[str] = []
    where = f"tool {tool.name}"
    full = namespaced(bp.domain, tool.name)
    if not TOOL_NAME_RE.fullmatch(tool.name) or not OPENAI_NAME_RE.fullmatch(full):
        out.append(
            _p(
                "tool_name",
                f"{where}: name must be snake_case and {full!r} must match "
                f"^[a-zA-Z0-9_-]{{1,64}}$ (shorten it to at most "
                f"{62 - len(bp.domain)} characters)",
            )
        )
    cols = table_columns(bp, entities, tool.table)
    if cols is None:
        out.append(
            _p(
                "unknown_table",
                f"{where}: table {tool.table!r} is neither an entity nor a relationship of this blueprint",
            )
        )
        return out
    # ------------------------------------------------------- reads / writes
    for t in [*tool.reads, *tool.writes]:
        if t not in bp.tables:
            out.append(_p("reads_writes", f"{where}: declares unknown table {t!r} in reads/writes"))
    if tool.table not in tool.reads:
        out.append(_p("reads_writes", f"{where}: reads must include its table {tool.table!r}"))
    if tool.kind in READ_ONLY_KINDS and tool.writes:
        out.append(_p("reads_writes", f"{where}: kind {tool.kind} is read-only; writes must be empty"))
    if tool.kind in WRITE_KINDS and tool.writes != [tool.table]:
        out.append(
            _p(
                "reads_writes",
                f"{where}: kind {tool.kind} writes exactly its own table: writes must be [{tool.table!r}]",
            )
        )
    is_rel = bp.relationship(tool.table) is not None
    pk = primary_key_for(tool.table)
    # ----------------------------------------------------------- kind shape
    if tool.kind == "authorize":
        core_pk = primary_key_for(bp.core_entity)
        if tool.table != bp.core_entity or [p.column for p in tool.parameters] != [core_pk] or tool.requires_auth:
            out.append(
                _p(
                    "authorize_shape",
                    f"{where}: the authorize tool acts on table {bp.core_entity!r}, takes "
                    f"exactly one parameter bound to column {core_pk!r} and has "
                    "requires_auth false",
                )
            )
    if tool.kind in ("create", "update", "delete") and not is_rel:
        out.append(
            _p("unknown_table", f"{where}: {tool.kind} tools act on relationship tables, not on entity {tool.table!r}")
        )
    if tool.kind in ("read", "update", "delete") and not any(p.column == pk and p.required for p in tool.parameters):
        out.append(
            _p(
                "missing_pk_param",
                f"{where}: a {tool.kind} tool needs a required parameter bound to the primary key {pk!r}",
            )
        )
    if tool.kind == "compute":
        agg_col = cols.get(tool.aggregate_column or "")
        if tool.aggregate is None:
            out.append(_p("aggregate", f"{where}: compute tools set aggregate (count, sum, avg, min, max)"))
        elif tool.aggregate != "count" and (agg_col is None or agg_col.type not in ("integer", "number")):
            out.append(
                _p(
                    "aggregate",
                    f"{where}: aggregate {tool.aggregate} needs aggregate_column naming a "
                    f"numeric column of {tool.table}",
                )
            )
        if not is_rel:
            out.append(_p("aggregate", f"{where}: compute tools aggregate the user's records of a relationship"))
    # ----------------------------------------------------------- parameters
    for p in tool.parameters:
        if p.column is None:
            out.append(
                _p(
                    "unbound_param",
                    f"{where}: parameter {p.name!r} must be bound to a column of {tool.table} (set 'column')",
                )
            )
            continue
        col = cols.get(p.column)
        if col is None:
            out.append(
                _p(
                    "unbound_param",
                    f"{where}: parameter {p.name!r} is bound to unknown column {p.column!r} of {tool.table}",
                )
            )
            continue
        if p.type != col.type and not (p.type == "array" and p.items == col.type):
            out.append(
                _p(
                    "param_type",
                    f"{where}: parameter {p.name!r} has type {p.type} but column {p.column!r} is {col.type}",
                )
            )
        if p.enum is not None and (col.enum is None or not set(p.enum) <= set(col.enum)):
            out.append(
                _p(
                    "enum_value",
                    f"{where}: parameter {p.name!r} enum {p.enum} must use values of column {p.column!r}: {col.enum}",
                )
            )
        if col.enum and p.enum is None and p.type != "array":
            out.append(_p("enum_value", f"{where}: parameter {p.name!r} must list the allowed values {col.enum}"))
    for cond in tool.preconditions:
        col = cols.get(cond.column)
        if col is None:
            out.append(_p("unbound_param", f"{where}: precondition on unknown column {cond.column!r}"))
        elif col.enum is not None and not set(map(str, cond.values)) <= set(col.enum):
            out.append(
                _p(
                    "enum_value",
                    f"{where}: precondition values {cond.values} must come from column {cond.column!r}: {col.enum}",
                )
            )
        elif not cond.values:
            out.append(_p("enum_value", f"{where}: precondition on {cond.column!r} lists no values"))
    if tool.preconditions and tool.kind not in ("update", "delete"):
        out.append(_p("reads_writes", f"{where}: only update and delete tools have preconditions"))
    for key, value in tool.effects.items():
        col = cols.get(key)
        if col is None:
            out.append(_p("unbound_param", f"{where}: effect sets unknown column {key!r}"))
        elif col.enum is not None and value not in col.enum:
            out.append(
                _p("enum_value", f"{where}: effect {key}={value!r} is not a value of column {key!r}: {col.enum}")
            )
    if tool.effects and tool.kind not in ("create", "update"):
        out.append(_p("reads_writes", f"{where}: only create and update tools have effects"))
    if tool.kind == "create" and is_rel:
        rel = bp.relationship(tool.table)
        given = {p.column for p in tool.parameters} | set(tool.effects)
        core_fk = primary_key_for(bp.core_entity)
        if core_fk in {p.column for p in tool.parameters} or pk in {p.column for p in tool.parameters}:
            out.append(
                _p(
                    "create_incomplete",
                    f"{where}: the primary key and {core_fk!r} come from the runtime "
                    "and the session; they are not parameters",
                )
            )
        missing = [
            c.name
            for c in rel.columns  # type: ignore[union-attr]
            if c.name not in given and c.name not in (pk, core_fk) and not c.nullable
        ]
        if missing:
            out.append(_p("create_incomplete", f"{where}: columns {missing} must be set by a parameter or an effect"))
    return out


def failure_artifact(domain: str, reason: str) -> dict[str, Any]:
    """The blueprint artifact of a quarantined domain (``meta`` added on write)."""
    return {"domain": domain, "status": "failed", "reason": reason}
