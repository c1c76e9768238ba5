"""Checks on generated table data (s06) and the data summary computed from it.

A generator script is written by the code model; nothing it says about its output is
trusted. :func:`check_records` looks at the records themselves: exact record count, column
types, enums, numeric ranges, unique non-empty primary keys, required (non-nullable)
columns present, no unknown columns, foreign-key integrity against the entity tables, and
for relationship tables the consistency rules of :mod:`.data_rules` (``at_most`` bounds
against the referenced records, creation before the scheduled time, business hours, a status
that agrees with a past or future scheduled time, ``total = unit_price * quantity``, enough
records inside a check-in window). Errors
are short, aggregated per column and defect kind (at most a few examples each), because they
go back to the code model as the repair request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentskiller.models.blueprint import Relationship
from agentskiller.models.catalog import Entity
from agentskiller.steps.domains import data_rules

#: examples shown per defect kind; the model needs a hint, not the whole table
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    enum: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    references: str | None = None
    format: str | None = None
    #: ``"Entity.attribute"``: at most that attribute of the referenced record
    at_most: str | None = None


@dataclass
class TableSpec:
    """What a table must look like: built from an entity or a relationship definition."""

    name: str
    kind: str  # entity | relationship
    primary_key: str
    columns: list[ColumnSpec] = field(default_factory=list)
    #: ``{"column", "initial", "active"}`` status values from the tools (:func:`.data_rules.lifecycle_of`)
    lifecycle: dict | None = None
    #: the check-in window the data must serve (:func:`.data_rules.window_of`)
    window: dict | None = None

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def foreign_keys(self) -> dict[str, str]:
        return {c.name: c.references for c in self.columns if c.references}


def _col(a: Any, references: str | None = None) -> ColumnSpec:
    return ColumnSpec(
        name=a.name,
        type=a.type,
        enum=tuple(a.enum) if a.enum else None,
        minimum=a.minimum,
        maximum=a.maximum,
        nullable=bool(a.nullable),
        references=references,
        format=a.format,
        at_most=getattr(a, "at_most", None),
    )


def spec_for_entity(entity: Entity) -> TableSpec:
    return TableSpec(entity.name, "entity", entity.primary_key, [_col(a) for a in entity.attributes])


def spec_for_relationship(rel: Relationship, lifecycle: dict | None = None, window: dict | None = None) -> TableSpec:
    """The spec of a relationship table; ``lifecycle`` (:func:`.data_rules.lifecycle_of` of the
    blueprint's tools) lets the status rules know the initial and active statuses, ``window``
    (:func:`.data_rules.window_of`) what a check-in tool needs in the data."""
    cols = [_col(c, c.references) for c in rel.columns]
    return TableSpec(rel.name, "relationship", rel.primary_key, cols, lifecycle, window)


# ------------------------------------------------------------------ value parsing
parse_date = data_rules.parse_date
parse_datetime = data_rules.parse_datetime


def _type_ok(ctype: str, v: Any) -> bool:
    if ctype == "string":
        return isinstance(v, str)
    if ctype == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if ctype == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ctype == "boolean":
        return isinstance(v, bool)
    if ctype == "date":
        return parse_date(v) is not None
    if ctype == "datetime":
        return parse_datetime(v) is not None
    return False


_TYPE_HINT = {
    "date": "an ISO date string YYYY-MM-DD",
    "datetime": "an ISO 8601 datetime string with time (…T…Z)",
    "integer": "a JSON integer",
    "number": "a JSON number",
    "boolean": "true/false",
    "string": "a string",
}


# --------------------------------------------------------------------- the checks
class _Errors:
    """Collects defects per (kind, column) and renders one line each with examples."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], list[str]] = {}
        self._order: list[tuple[str, str]] = []
        self.plain: list[str] = []

    def add(self, kind: str, column: str, example: str) -> None:
        key = (kind, column)
        if key not in self._items:
            self._items[key] = []
            self._order.append(key)
        self._items[key].append(example)

    def lines(self) -> list[str]:
        out = list(self.plain)
        for kind, column in self._order:
            ex = self._items[(kind, column)]
            shown = "; ".join(ex[:MAX_EXAMPLES]) + ("; ..." if len(ex) > MAX_EXAMPLES else "")
            out.append(f"column {column!r}: {len(ex)} record(s) {kind} (e.g. {shown})")
        return out


def load_records(data: Any) -> tuple[list[dict] | None, str | None]:
    """The records of a script's output: a JSON list, or an object with ``records``."""
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        return None, f"output must be a JSON list of record objects, got {type(data).__name__}"
    bad = [i for i, r in enumerate(data) if not isinstance(r, dict)]
    if bad:
        return None, f"output must be a list of JSON objects; items {bad[:MAX_EXAMPLES]} are not objects"
    return data, None


def check_records(
    records: list[dict],
    spec: TableSpec,
    expected_count: int | None = None,
    fk_values: dict[str, set] | None = None,
    simulation_time: str | None = None,
    ref_records: dict[str, dict[Any, dict]] | None = None,
) -> list[str]:
    """Every defect found in ``records`` against ``spec`` (empty list: the table is good).

    ``fk_values`` maps a foreign-key column to the primary keys of the referenced table;
    columns without an entry are not FK-checked (the caller reports missing tables).
    ``ref_records`` maps an entity to its records by primary key, for the ``at_most`` bounds.
    """
    err = _Errors()
    if expected_count is not None and len(records) != expected_count:
        err.plain.append(f"expected exactly {expected_count} records, got {len(records)}")
    if spec.column(spec.primary_key) is None:
        err.plain.append(f"table definition has no primary-key column {spec.primary_key!r}")
    known = {c.name for c in spec.columns}
    unknown = Counter(k for r in records for k in r if k not in known)
    for name, n in sorted(unknown.items()):
        err.plain.append(f"unknown column {name!r} in {n} record(s); allowed columns: {sorted(known)}")

    for i, rec in enumerate(records):
        for c in spec.columns:
            if c.name not in rec:
                err.add(
                    "missing (every record must have every column; use null only where nullable)", c.name, f"record {i}"
                )
                continue
            v = rec[c.name]
            if v is None:
                if not c.nullable or c.name == spec.primary_key:
                    err.add("null in a non-nullable column", c.name, f"record {i}")
                continue
            if not _type_ok(c.type, v):
                err.add(f"not {_TYPE_HINT[c.type]}", c.name, f"record {i}: {v!r}")
                continue
            if c.enum is not None and v not in c.enum:
                err.add(f"not in enum {list(c.enum)}", c.name, f"record {i}: {v!r}")
            if c.type in ("integer", "number"):
                if c.minimum is not None and v < c.minimum:
                    err.add(f"below minimum {c.minimum:g}", c.name, f"record {i}: {v!r}")
                if c.maximum is not None and v > c.maximum:
                    err.add(f"above maximum {c.maximum:g}", c.name, f"record {i}: {v!r}")
            if c.name == spec.primary_key:
                if isinstance(v, str) and not v.strip():
                    err.add("with an empty primary key", c.name, f"record {i}")
            if fk_values is not None and c.references and c.name in fk_values and v not in fk_values[c.name]:
                err.add(f"whose foreign key is not a {c.references} primary key", c.name, f"record {i}: {v!r}")
    dup = duplicate_keys(records, spec.primary_key)
    if dup:
        err.plain.append(f"table {spec.name}: primary key {spec.primary_key!r} is not unique: {dup}")
    if spec.kind == "relationship":
        now = parse_datetime(simulation_time) if simulation_time else None
        data_rules.check_row_rules(records, spec, now, err.add, ref_records)
        err.plain += data_rules.check_window(records, spec, now)
    return err.lines()


def duplicate_keys(records: list[dict], pk: str) -> str:
    """``""`` when the primary keys of ``records`` are unique, else which values repeat, with
    the records that hold them: ``2 duplicated value(s), e.g. 'PAT-1' (records 0, 3)``."""
    where: dict[Any, list[int]] = {}
    for i, rec in enumerate(records):
        v = rec.get(pk)
        if v is not None and not isinstance(v, (dict, list)):
            where.setdefault(v, []).append(i)
    dups = sorted((k for k, idx in where.items() if len(idx) > 1), key=str)
    if not dups:
        return ""
    shown = ", ".join(f"{k!r} (records {', '.join(map(str, where[k][:5]))})" for k in dups[:MAX_EXAMPLES])
    return f"{len(dups)} duplicated value(s), e.g. {shown}"


# -------------------------------------------------------------------- the summary
def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def summarize_columns(records: list[dict], spec: TableSpec) -> dict[str, dict]:
    """Per column, from the data: type, distinct count, null count, enum values (enum and
    boolean columns) or min/max (numbers, dates, identifiers), and 3 sample values."""
    out: dict[str, dict] = {}
    for c in spec.columns:
        values = [r.get(c.name) for r in records]
        present = [v for v in values if v is not None]
        distinct: list[Any] = []
        seen: set = set()
        for v in present:
            key = (type(v).__name__, v) if isinstance(v, (str, int, float, bool)) else repr(v)
            if key not in seen:
                seen.add(key)
                distinct.append(v)
        col: dict[str, Any] = {
            "type": c.type,
            "distinct": len(distinct),
            "nulls": len(values) - len(present),
            "samples": [_jsonable(v) for v in distinct[:3]],
        }
        if c.references:
            col["references"] = c.references
        if c.enum is not None or c.type == "boolean":
            col["values"] = sorted((_jsonable(v) for v in distinct), key=lambda x: (str(type(x)), x))
        elif present and (
            c.type in ("integer", "number", "date", "datetime") or c.name == spec.primary_key or c.references
        ):
            comparable = [v for v in present if _type_ok(c.type, v)]
            if comparable:
                col["min"], col["max"] = _jsonable(min(comparable)), _jsonable(max(comparable))
        out[c.name] = col
    return out


def primary_keys(records: Iterable[dict], pk: str) -> set:
    return {r.get(pk) for r in records if r.get(pk) is not None}


def table_summary(kind: str, file: str, spec: TableSpec, records: list[dict], sha: str) -> dict:
    """One table's entry in a database ``summary.json`` (s06, and s12 for a fused pair)."""
    entry: dict[str, Any] = {
        "kind": kind,
        "file": file,
        "primary_key": spec.primary_key,
        "count": len(records),
        "sha256": sha,
        "columns": summarize_columns(records, spec),
    }
    if spec.foreign_keys:
        entry["foreign_keys"] = dict(spec.foreign_keys)
    return entry
