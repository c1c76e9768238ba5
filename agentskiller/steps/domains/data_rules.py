"""Consistency rules of a relationship table's rows (s06), beyond types, enums and ranges.

Size: over 400 lines because the row rules (times, status lifecycle, bounds, the check-in window) share one walk over the records and one error list.

:func:`check_row_rules` applies them to every record and reports through ``add(kind, column,
example)`` (the aggregating error list of :mod:`.data_checks`). The rules are driven by the
blueprint (column formats, ``at_most`` bounds, status enums, the tools' lifecycle) and by
column names only where the name leaves no doubt, never by a domain's name:

* **Cross-table bounds.** A column with ``at_most: "Entity.attribute"`` is at most that
  attribute of the record its foreign key to ``Entity`` references (``guests`` at most the
  room type's ``max_occupancy``).
* **Created before scheduled.** A creation stamp (``created_at``, ``booked_at`` ...) is never
  after the simulation time nor after another date of its row.
* **Past columns** (format ``past_date``/``past_datetime``) are never after the simulation time.
* **The scheduled column** is the row's first date or datetime that books something: format
  ``future_date``/``future_datetime``, or an event name (``scheduled_at``, ``check_in_date``).
  As a datetime it lies in business hours: Monday to Saturday, 07:00-19:59 on the simulation's
  clock (UTC); a date needs no hour. Its status agrees with it: once the time has passed the
  row has moved on (it is in no initial or waiting status: completed, cancelled, checked in
  ...); while it is still to come the row is in its initial or an active status (one the tools
  still act on) that does not say the event began or ended.
* **Arithmetic.** ``total = unit_price * quantity`` where the three columns exist.
* **The check-in window** (a table whose check-in tool has a ``window`` policy rule,
  :func:`window_of`): at least ``WINDOW_MIN_SHARE`` of the records (the generator aims at
  ``WINDOW_SHARE``) are ready to check in now: in one of the check-in tool's precondition
  statuses, with the window column inside the window (``0 <= time - now <= within_hours``;
  a date counts as its whole day). The other rules still hold for them, so a datetime window
  row keeps business hours; when the window holds no business hour at all (a simulation time
  between Saturday evening and Sunday 07:00) nobody can check in, the data has no such rows
  and the check does not apply (s09 then reports the accepting test as skipped).

The lifecycle comes from the blueprint's tools (:func:`lifecycle_of`): a create tool's status
effect is the initial status; the statuses update and delete tools accept are active.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data_checks import ColumnSpec, TableSpec

#: ``add(kind, column, example)``: one defect of one record
Report = Callable[[str, str, str], None]

#: bookable times: weekdays Monday (0) to Saturday (5), start hours 07 to 19 (07:00-19:59)
BUSINESS_DAYS = range(0, 6)
BUSINESS_HOURS = range(7, 20)
#: the share of a check-in table's records the generator places inside the check-in window,
#: and the least share the check accepts
WINDOW_SHARE = 0.2
WINDOW_MIN_SHARE = 0.1

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
#: statuses that wait for the event: wrong once it has passed
WAITING_STATUSES = {
    "scheduled",
    "upcoming",
    "booked",
    "planned",
    "confirmed",
    "reserved",
    "requested",
    "pending",
    "waiting",
    "tentative",
}
#: statuses that say the event began or is over: wrong while it is still to come
STARTED_STATUSES = {
    "checked_in",
    "in_progress",
    "seated",
    "picked_up",
    "arrived",
    "boarded",
    "started",
    "attended",
    "completed",
    "no_show",
    "delivered",
    "fulfilled",
    "finished",
    "checked_out",
    "departed",
    "done",
    "performed",
    "administered",
    "returned",
    "overdue",
    "expired",
}
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


def _temporal(ctype: str, v: Any) -> date | datetime | None:
    if v is None:
        return None
    return parse_date(v) if ctype == "date" else parse_datetime(v)


def _before(a: date | datetime, b: date | datetime) -> bool:
    """a <= b, at day granularity when either side is a plain date."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a <= b
    da = a.date() if isinstance(a, datetime) else a
    db = b.date() if isinstance(b, datetime) else b
    return da <= db


# ------------------------------------------------------------------ column roles
def is_created_column(name: str) -> bool:
    return name in CREATED_NAMES or name.endswith("_created_at")


def is_event_column(name: str) -> bool:
    return not is_created_column(name) and (name in EVENT_EXACT or any(h in name for h in EVENT_HINTS))


def is_past_column(c: ColumnSpec) -> bool:
    return (c.format or "").lower().startswith("past")


def scheduled_column(columns: Iterable[ColumnSpec]) -> ColumnSpec | None:
    """The first date/datetime column that books something (see the module docstring)."""
    for c in columns:
        if c.type not in ("date", "datetime") or is_created_column(c.name) or is_past_column(c):
            continue
        if (c.format or "").lower().startswith("future") or is_event_column(c.name):
            return c
    return None


# ------------------------------------------------------------------ lifecycle
def lifecycle_of(tools: Iterable[Any], table: str, column: str = "status") -> dict | None:
    """``{"column", "initial", "active"}`` of ``table``'s status column from the blueprint's tools:
    the values its create tools set, and those its update/delete tools accept. None when no
    tool says anything about the column."""
    initial: set[str] = set()
    active: set[str] = set()
    for t in tools:
        if t.table != table:
            continue
        if t.kind == "create" and column in t.effects:
            initial.add(str(t.effects[column]))
        if t.kind in ("update", "delete"):
            for cond in t.preconditions:
                if cond.column == column:
                    active.update(str(v) for v in cond.values)
    if not initial and not active:
        return None
    return {"column": column, "initial": sorted(initial), "active": sorted(active)}


def status_windows(enum: Iterable[str], lifecycle: dict | None) -> tuple[list[str], list[str]]:
    """(statuses allowed once the scheduled time has passed, statuses allowed before it).

    Past: not the initial status and no waiting status. Future: the initial status, and the
    active (and waiting) statuses that do not say the event began or ended.
    """
    values = list(enum)
    initial = set((lifecycle or {}).get("initial", []))
    active = set((lifecycle or {}).get("active", []))
    waiting = {v for v in values if v in WAITING_STATUSES}
    past = [v for v in values if v not in initial and v not in waiting]
    # the initial status is what booking sets, so it always fits a time still to come (a
    # library loan starts "checked_out"); other statuses must not say the event began
    future = [v for v in values if v in initial or ((v in active or v in waiting) and v not in STARTED_STATUSES)]
    return past, future


# ------------------------------------------------------------------ the check-in window
def window_of(tools: Iterable[Any], rules: Iterable[Any], table: str, status_column: str = "status") -> dict | None:
    """``{"tool", "column", "within_hours", "status_column", "statuses", "share"}`` of the first
    ``window`` policy rule about ``table`` (None without one): what the data must hold so that
    someone can check in now. ``statuses``: the values the tool's preconditions accept in the
    status column (empty when they do not constrain it)."""
    rule = next((r for r in rules if r.kind == "window" and r.table == table and r.column), None)
    if rule is None:
        return None
    tool = next((t for t in tools if t.name == rule.tool), None)
    statuses = [
        str(v) for c in (tool.preconditions if tool is not None else []) if c.column == status_column for v in c.values
    ]
    return {
        "tool": rule.tool,
        "column": rule.column,
        "within_hours": rule.within_hours,
        "status_column": status_column,
        "statuses": statuses,
        "share": WINDOW_SHARE,
    }


def in_window(ctype: str, value: Any, now: datetime, hours: float) -> bool:
    """``0 <= value - now <= hours`` hours; a date (``ctype == "date"``) counts as its whole
    day: from the current day through the day ``hours`` from now."""
    when = _temporal(ctype, value)
    if when is None:
        return False
    end = now + timedelta(hours=hours)
    if isinstance(when, datetime):
        return now <= when <= end
    return now.date() <= when <= end.date()


def window_open(ctype: str, now: datetime, hours: float) -> bool:
    """Whether the window from ``now`` holds a time a record may have: any day for a date; for
    a datetime, a quarter hour after ``now`` in business hours."""
    if ctype == "date":
        return True
    t = now.replace(minute=0, second=0, microsecond=0)
    while t <= now + timedelta(hours=hours):
        if t > now and t.weekday() in BUSINESS_DAYS and t.hour in BUSINESS_HOURS:
            return True
        t += timedelta(minutes=15)
    return False


def check_window(records: list[dict], spec: TableSpec, now: datetime | None) -> list[str]:
    """The check-in window's share (see the module docstring): one problem line, or none."""
    w = spec.window
    col = spec.column((w or {}).get("column", ""))
    if w is None or col is None or now is None or not records:
        return []
    hours = float(w.get("within_hours") or 0)
    if not window_open(col.type, now, hours):
        return []
    statuses = list(w.get("statuses") or [])
    status = w.get("status_column", "status")
    ready = [
        r
        for r in records
        if in_window(col.type, r.get(col.name), now, hours) and (not statuses or r.get(status) in statuses)
    ]
    need = max(1, math.ceil(WINDOW_MIN_SHARE * len(records)))
    if len(ready) >= need:
        return []
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    where = (
        f"{col.name} a day from {now.date()} through {(now + timedelta(hours=hours)).date()}"
        if col.type == "date"
        else f"{col.name} after {stamp} and at most {hours:g} hours later, in business hours"
    )
    state = f" with {status} in {statuses}" if statuses else ""
    return [
        f"only {len(ready)} of {len(records)} records can be checked in now ({w.get('tool')}): at least {need} "
        f"(aim for about {WINDOW_SHARE:.0%}) must lie inside the check-in window{state}, {where}"
    ]


# ------------------------------------------------------------------ the rules
def check_row_rules(
    records: list[dict],
    spec: TableSpec,
    now: datetime | None,
    add: Report,
    ref_records: dict[str, dict[Any, dict]] | None = None,
) -> None:
    """Every consistency rule of the module docstring on every record of a relationship table."""
    temporal = [c for c in spec.columns if c.type in ("date", "datetime")]
    created = [c for c in temporal if is_created_column(c.name)]
    past_cols = [c for c in temporal if is_past_column(c)]
    sched = scheduled_column(spec.columns)
    status = spec.column((spec.lifecycle or {}).get("column", "status"))
    past_ok, future_ok = status_windows(status.enum or (), spec.lifecycle) if status is not None else ([], [])
    cols = {c.name: c for c in spec.columns if c.type in ("integer", "number")}
    total = next((cols[n] for n in cols if n in TOTAL_NAMES), None)
    qty = next((cols[n] for n in cols if n in QUANTITY_NAMES), None)
    unit = next((cols[n] for n in cols if n in UNIT_NAMES), None)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ") if now is not None else ""
    for i, rec in enumerate(records):
        for cc in created:
            cv = _temporal(cc.type, rec.get(cc.name))
            if cv is None:
                continue
            if now is not None and not _before(cv, now):
                add(f"with {cc.name} after the simulation time {stamp}", cc.name, f"record {i}: {rec[cc.name]!r}")
            for oc in temporal:
                ov = _temporal(oc.type, rec.get(oc.name))
                if oc is not cc and ov is not None and not is_created_column(oc.name) and not _before(cv, ov):
                    add(
                        f"with {cc.name} later than {oc.name}",
                        cc.name,
                        f"record {i}: {rec[cc.name]!r} > {rec[oc.name]!r}",
                    )
        for pc in past_cols:
            pv = _temporal(pc.type, rec.get(pc.name))
            if now is not None and pv is not None and not _before(pv, now):
                add(f"with {pc.name} (format {pc.format}) after the simulation time {stamp}", pc.name, f"record {i}")
        if sched is not None:
            _scheduled_rules(i, rec, sched, status, past_ok, future_ok, now, stamp, add)
        if total and qty and unit:
            t, q, u = rec.get(total.name), rec.get(qty.name), rec.get(unit.name)
            if all(_is_number(x) for x in (t, q, u)) and abs(t - u * q) > 0.011 + 1e-9 * abs(t):
                add(f"where {total.name} != {unit.name} * {qty.name}", total.name, f"record {i}: {t!r} vs {u!r}*{q!r}")
    if ref_records is not None:
        check_bounds(records, spec, ref_records, add)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scheduled_rules(
    i: int,
    rec: dict,
    sched: ColumnSpec,
    status: ColumnSpec | None,
    past_ok: list[str],
    future_ok: list[str],
    now: datetime | None,
    stamp: str,
    add: Report,
) -> None:
    raw = rec.get(sched.name)
    when = _temporal(sched.type, raw)
    if when is None:
        return
    if isinstance(when, datetime) and (when.weekday() not in BUSINESS_DAYS or when.hour not in BUSINESS_HOURS):
        add(
            "outside business hours (Monday-Saturday, 07:00-19:59 UTC)",
            sched.name,
            f"record {i}: {raw!r} ({when.strftime('%A %H:%M')})",
        )
    st = rec.get(status.name) if status is not None else None
    if now is None or not isinstance(st, str):
        return
    passed = not _before(now, when) if isinstance(when, datetime) else when < now.date()
    upcoming = not _before(when, now) if isinstance(when, datetime) else when > now.date()
    if passed and st not in past_ok:
        add(
            f"with status {st!r} but {sched.name} in the past (before {stamp}); "
            f"a past {sched.name} goes with one of {past_ok}",
            sched.name,
            f"record {i}: {raw!r}",
        )
    if upcoming and st not in future_ok:
        add(
            f"with status {st!r} but {sched.name} in the future (after {stamp}); "
            f"a future {sched.name} goes with one of {future_ok}",
            sched.name,
            f"record {i}: {raw!r}",
        )


def check_bounds(records: list[dict], spec: TableSpec, ref_records: dict[str, dict[Any, dict]], add: Report) -> None:
    """``at_most`` bounds on every record: the value is at most the referenced record's attribute.

    ``ref_records``: entity name -> {primary key: record}. A bound whose entity has no foreign
    key column or no table here is not checked (the blueprint checks reject the first).
    """
    fk_of = {}
    for c in spec.columns:
        if c.references and c.references not in fk_of:
            fk_of[c.references] = c.name
    for c in spec.columns:
        if not c.at_most:
            continue
        ent, _, attr = c.at_most.partition(".")
        fk, table = fk_of.get(ent), ref_records.get(ent)
        if fk is None or table is None:
            continue
        for i, rec in enumerate(records):
            v, ref = rec.get(c.name), table.get(rec.get(fk))
            bound = ref.get(attr) if ref is not None else None
            if _is_number(v) and _is_number(bound) and v > bound:
                add(
                    f"above {c.at_most} of the referenced {ent} (the at_most bound)",
                    c.name,
                    f"record {i}: {v!r} > {bound!r} of {fk}={rec.get(fk)!r}",
                )
