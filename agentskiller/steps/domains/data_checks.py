"""Checks on generated table data (s06) and the data summary computed from it.

Size: over 400 lines because every data rule (types, ranges, keys, foreign keys, time order, arithmetic) and its repair message, side by side.

A generator script is written by the code model; nothing it says about its output is
trusted. :func:`check_records` looks at the records themselves: exact record count, column
types, enums, numeric ranges, unique non-empty primary keys, required (non-nullable)
columns present, no unknown columns, foreign-key integrity against the entity tables, and
for relationship tables the temporal and arithmetic rules that the column names imply
(``created_at`` never after the event or the simulation time, a ``completed`` visit lies in
the past, ``total = unit_price * quantity``). Errors are short, aggregated per column and
defect kind (at most a few examples each), because they go back to the code model as the
repair request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from agentskiller.models.blueprint import Relationship
from agentskiller.models.catalog import Entity

#: examples shown per defect kind; the model needs a hint, not the whole table
MAX_EXAMPLES = 3

# Column-name vocabulary for the implied rules. Deliberately conservative: a rule fires only
# when the names leave no doubt, so a sensible table never fails on a heuristic.
CREATED_NAMES = {
    "created_at",
    "booked_at",
    "requested_at",
    "submitted_at",
    "ordered_at",
    "placed_at",
    "opened_at",
    "filed_at",
    "registered_at",
    "enrolled_at",
}
EVENT_HINTS = (
    "scheduled",
    "start",
    "appointment",
    "visit",
    "departure",
    "check_in",
    "event",
    "session",
    "pickup",
    "service_date",
    "travel_date",
    "class_date",
)
EVENT_EXACT = {"date", "datetime", "time", "slot", "when"}
PAST_STATUSES = {
    "completed",
    "no_show",
    "attended",
    "delivered",
    "fulfilled",
    "finished",
    "checked_out",
    "departed",
    "arrived",
    "done",
    "performed",
    "administered",
}
FUTURE_STATUSES = {"scheduled", "upcoming", "booked", "planned", "confirmed", "reserved"}
TOTAL_NAMES = {"total", "total_amount", "total_price", "total_cost", "total_due", "total_fare"}
QUANTITY_NAMES = {
    "quantity",
    "qty",
    "units",
    "nights",
    "num_units",
    "seats",
    "tickets",
    "num_nights",
    "num_tickets",
    "sessions",
}
UNIT_NAMES = {
    "unit_price",
    "price",
    "price_per_unit",
    "rate",
    "nightly_rate",
    "unit_cost",
    "price_per_night",
    "fare",
    "price_per_ticket",
    "price_per_session",
}


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


@dataclass
class TableSpec:
    """What a table must look like: built from an entity or a relationship definition."""

    name: str
    kind: str  # entity | relationship
    primary_key: str
    columns: list[ColumnSpec] = field(default_factory=list)

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
    )


def spec_for_entity(entity: Entity) -> TableSpec:
    return TableSpec(entity.name, "entity", entity.primary_key, [_col(a) for a in entity.attributes])


def spec_for_relationship(rel: Relationship) -> TableSpec:
    return TableSpec(rel.name, "relationship", rel.primary_key, [_col(c, c.references) for c in rel.columns])


# ------------------------------------------------------------------ value parsing
def parse_date(v: Any) -> date | None:
    """``YYYY-MM-DD`` only (a datetime in a date column is a type error)."""
    if not isinstance(v, str) or len(v) != 10:
        return None
    try:
        return date.fromisoformat(v)
    except ValueError:
        return None


def parse_datetime(v: Any) -> datetime | None:
    """ISO 8601 with a time part (``2025-06-02T09:00:00Z``); naive values count as UTC."""
    if not isinstance(v, str) or "T" not in v:
        return None
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


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


def _temporal_key(ctype: str, v: Any) -> date | datetime | None:
    return parse_date(v) if ctype == "date" else parse_datetime(v)


def _before(a: date | datetime, b: date | datetime) -> bool:
    """a <= b, at day granularity when either side is a plain date."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a <= b
    da = a.date() if isinstance(a, datetime) else a
    db = b.date() if isinstance(b, datetime) else b
    return da <= db


def is_created_column(name: str) -> bool:
    return name in CREATED_NAMES or name.endswith("_created_at")


def is_event_column(name: str) -> bool:
    return not is_created_column(name) and (name in EVENT_EXACT or any(h in name for h in EVENT_HINTS))


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
) -> list[str]:
    """Every defect found in ``records`` against ``spec`` (empty list: the table is good).

    ``fk_values`` maps a foreign-key column to the primary keys of the referenced table;
    columns without an entry are not FK-checked (the caller reports missing tables).
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

    pk_seen: Counter = Counter()
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
                pk_seen[v] += 1
            if fk_values is not None and c.references and c.name in fk_values and v not in fk_values[c.name]:
                err.add(f"whose foreign key is not a {c.references} primary key", c.name, f"record {i}: {v!r}")
    dups = sorted((k for k, n in pk_seen.items() if n > 1), key=str)
    if dups:
        err.plain.append(
            f"primary key {spec.primary_key!r} is not unique: {len(dups)} duplicated value(s), "
            f"e.g. {dups[:MAX_EXAMPLES]}"
        )
    if spec.kind == "relationship":
        _implied_rules(records, spec, simulation_time, err)
    return err.lines()


def _implied_rules(records: list[dict], spec: TableSpec, simulation_time: str | None, err: _Errors) -> None:
    """Temporal and arithmetic consistency that the column names make unambiguous."""
    now = parse_datetime(simulation_time) if simulation_time else None
    temporal = [c for c in spec.columns if c.type in ("date", "datetime")]
    created = [c for c in temporal if is_created_column(c.name)]
    events = [c for c in temporal if is_event_column(c.name)]
    status = spec.column("status")
    cols = {c.name: c for c in spec.columns if c.type in ("integer", "number")}
    total = next((cols[n] for n in cols if n in TOTAL_NAMES), None)
    qty = next((cols[n] for n in cols if n in QUANTITY_NAMES), None)
    unit = next((cols[n] for n in cols if n in UNIT_NAMES), None)
    for i, rec in enumerate(records):

        def tval(c: ColumnSpec, rec: dict = rec):
            v = rec.get(c.name)
            return _temporal_key(c.type, v) if v is not None else None

        for cc in created:
            cv = tval(cc)
            if cv is None:
                continue
            if now is not None and not _before(cv, now):
                err.add(
                    f"with {cc.name} after the simulation time {simulation_time}",
                    cc.name,
                    f"record {i}: {rec[cc.name]!r}",
                )
            for oc in temporal:
                ov = tval(oc)
                if oc is not cc and ov is not None and not is_created_column(oc.name) and not _before(cv, ov):
                    err.add(
                        f"with {cc.name} later than {oc.name}",
                        cc.name,
                        f"record {i}: {rec[cc.name]!r} > {rec[oc.name]!r}",
                    )
        if now is not None and status is not None and events and isinstance(rec.get("status"), str):
            ev, st = tval(events[0]), rec["status"]
            if ev is not None and st in PAST_STATUSES and not _before(ev, now):
                err.add(
                    f"with status {st!r} but {events[0].name} in the future (after {simulation_time})",
                    events[0].name,
                    f"record {i}: {rec[events[0].name]!r}",
                )
            if ev is not None and st in FUTURE_STATUSES and not _before(now, ev):
                err.add(
                    f"with status {st!r} but {events[0].name} in the past (before {simulation_time})",
                    events[0].name,
                    f"record {i}: {rec[events[0].name]!r}",
                )
        if total and qty and unit:
            t, q, u = rec.get(total.name), rec.get(qty.name), rec.get(unit.name)
            if all(_type_ok("number", x) for x in (t, q, u)) and abs(t - u * q) > 0.011 + 1e-9 * abs(t):
                err.add(
                    f"where {total.name} != {unit.name} * {qty.name}", total.name, f"record {i}: {t!r} vs {u!r}*{q!r}"
                )


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
