"""The offline provider's writer of relationship-table generator scripts (s06).

Size: over 400 lines because the script it writes is one program: the column expressions, the status and time lifecycle and the rows ready to check in are emitted together.

It shares the preamble and the column expressions of :mod:`.codegen_data` and writes the
script a careful engineer would write: seeded, clock-free, reading the entity tables it
references (``Entity=path`` arguments) and sampling their real primary keys. The rows it
makes are consistent:

* **Bounds.** A column with ``at_most: "Entity.attribute"`` takes a referenced record with
  room for the column's minimum and never exceeds its attribute (``guests`` at most the room
  type's ``max_occupancy``).
* **The scheduled column** (the request's ``scheduled``, else the first future-format or event
  column): half the rows are history, with a status that has moved on (completed, cancelled
  ...), half are still to come, in the initial or an active status. A datetime falls Monday to
  Saturday between 07:00 and 19:45 on a quarter hour; a date needs no hour.
* **The check-in window** (the request's ``window``, when a check-in tool acts on the table and
  its column is the scheduled column): a seeded sample of ``share`` of the rows is ready to
  check in now, in one of the window's ``statuses`` with the time inside the window (after NOW,
  at most ``within_hours`` later, in business hours on a quarter hour; a date: a day from today
  through the window's last day). When the window holds no business hour (NOW between Saturday
  evening and Sunday 07:00) those rows stay ordinary: nobody can check in then.
* **Time order.** Past-format columns lie before NOW; a row is created before its scheduled
  time and never after NOW; action stamps (``paid_at``) lie between creation and NOW, and only
  where the status says the action happened; follow-up dates come after the event.
* **Arithmetic.** ``total = unit_price * quantity``.
* **Names** from the catalogue's vocabulary, as in entity scripts.

Name vocabulary (kept here, independent of the step's checker, on purpose: the checker must
not trust the generator's own idea of what the names mean). The request's status windows
(``scheduled.past_statuses``/``future_statuses``) are the contract when given.
"""

from __future__ import annotations

import builtins
import json
import keyword
from datetime import datetime
from typing import Any

from ...models.blueprint import Column, Relationship
from ...models.catalog import snake_case
from .codegen_data import (
    MAIN,
    column_expr,
    id_prefix,
    names_block,
    nullable,
    number_literal,
    numeric_range,
    parse_now,
    script_header,
    usable_vocabulary,
)

_CREATED = {
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
_EVENT_HINTS = (
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
_EVENT_EXACT = {"date", "datetime", "time", "slot", "when"}
#: statuses of something still to come (used when the request gives no status windows)
_WAITING = {"scheduled", "upcoming", "booked", "planned", "confirmed", "reserved", "requested", "pending", "waiting"}
_TOTAL = {"total", "total_amount", "total_price", "total_cost", "total_due", "total_fare"}
_QTY = {"quantity", "qty", "units", "nights", "num_units", "seats", "tickets", "num_nights", "num_tickets", "sessions"}
_UNIT = {
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
#: names the generated make_record() already uses; a column variable never shadows them
_TAKEN = {
    "pk", "pools", "rows", "status", "created", "acted", "quantity", "unit", "names", "first", "last",
    "event", "iso", "moment", "day", "slot", "amount", "make_ids", "load_table", "fits", "capped",
    "next_names", "json", "random", "sys", "uuid", "date", "datetime", "timedelta", "timezone", "rng",
    "fake", "main", "make_record", "soon", "when", "ready", "soon_rows",
}  # fmt: skip

_LOAD = '''

def load_table(path):
    """An entity table file (a table object or a plain list) -> its records by primary key."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    records = data["records"] if isinstance(data, dict) else data
    if not records:
        sys.exit("entity table %s has no records" % path)
    pk = data.get("primary_key") if isinstance(data, dict) else None
    pk = pk or next(iter(records[0]))
    return {rec[pk]: rec for rec in records}
'''
_SLOT = '''

def slot(lo_days, hi_days):
    """A bookable start between NOW+lo_days and NOW+hi_days: Monday to Saturday, 07:00-19:45,
    on a quarter hour (appointments and bookings keep business hours)."""
    days = [NOW.date() + timedelta(days=d) for d in range(lo_days, hi_days + 1)]
    when = rng.choice([d for d in days if d.weekday() < 6])  # 6 is Sunday
    hour, minute = rng.randint(7, 19), 15 * rng.randint(0, 3)
    return iso(datetime(when.year, when.month, when.day, hour, minute, tzinfo=timezone.utc))
'''
_SOON = '''

def soon(hours):
    """A start inside the check-in window: after NOW and at most hours later, Monday to
    Saturday 07:00-19:45 on a quarter hour; None when the window holds no business hour."""
    first = NOW.replace(minute=0, second=0, microsecond=0)
    times = [first + timedelta(minutes=15 * k) for k in range(int(hours * 4) + 5)]
    times = [t for t in times if NOW < t <= NOW + timedelta(hours=hours) and t.weekday() < 6 and 7 <= t.hour <= 19]
    return iso(rng.choice(times)) if times else None
'''
_SOON_DAY = '''

def soon(hours):
    """A day inside the check-in window (the whole day counts): today through the day hours from NOW."""
    last = (NOW + timedelta(hours=hours)).date()
    return (NOW.date() + timedelta(days=rng.randint(0, (last - NOW.date()).days))).isoformat()
'''
_BOUNDS = '''

def fits(keys, table, minimums):
    """The keys of table whose bounding attributes leave room for the given minimums
    (every key when none does: the checks then say so)."""
    ok = [k for k in keys if all(table[k].get(a) is not None and table[k][a] >= lo for a, lo in minimums.items())]
    return ok or keys


def capped(lo, hi, bound):
    """The top of a column's range [lo, hi] under an at_most bound (never below lo)."""
    return max(lo, min(hi, bound))
'''


def _is_created(n: str) -> bool:
    return n in _CREATED or n.endswith("_created_at")


def _is_event(n: str) -> bool:
    return not _is_created(n) and (n in _EVENT_EXACT or any(h in n for h in _EVENT_HINTS))


def _is_past(c: Column) -> bool:
    return (c.format or "").lower().startswith("past")


def _var(name: str, taken: set[str]) -> str:
    """A local variable for a column: its own name unless that shadows something."""
    var = name
    while var in taken or keyword.iskeyword(var) or hasattr(builtins, var):
        var += "_value"
    taken.add(var)
    return var


def _scheduled(r: Relationship, given: dict | None) -> Column | None:
    temporal = [c for c in r.columns if c.type in ("date", "datetime")]
    if given and r.column(given.get("column", "")) is not None:
        return r.column(given["column"])
    for c in temporal:
        if not _is_created(c.name) and not _is_past(c):
            if (c.format or "").lower().startswith("future") or _is_event(c.name):
                return c
    return None


def _windows(status: Column, given: dict | None, lifecycle: dict | None) -> tuple[list[str], list[str]]:
    """(statuses for a passed scheduled time, statuses for one still to come): the request's,
    else the waiting statuses to come and the others past. The future list prefers the
    initial and the waiting statuses (an order to come is "placed", not already "active")."""
    enum = list(status.enum or [])
    if given and "past_statuses" in given:
        past, future = list(given["past_statuses"]), list(given["future_statuses"])
    else:
        past = [v for v in enum if v not in _WAITING]
        future = [v for v in enum if v in _WAITING]
    initial = set((lifecycle or {}).get("initial", []))
    preferred = [v for v in future if v in initial or v in _WAITING]
    return past, preferred or future


def _bounded(c: Column, fk_var: str, ent: str, attr: str, entity_defs: dict, now: datetime) -> str:
    """The expression of a column under its at_most bound; ``fk_var`` holds the referenced key."""
    lo, hi = numeric_range(c, now)
    ref = f'rows["{ent}"][{fk_var}]["{attr}"]'
    attr_def = next((a for a in entity_defs.get(ent, {}).get("attributes", []) if a.get("name") == attr), {})
    if c.type == "integer":
        top = f"capped({lo}, {hi}, {ref})"
        return f"rng.randint({lo}, {top if attr_def.get('type') == 'integer' else f'int({top})'})"
    return f"amount({number_literal(lo)}, capped({number_literal(lo)}, {number_literal(hi)}, {ref}))"


def relationship_script(
    rel: Relationship | dict,
    entities: dict[str, Any],
    count: int,
    seed: int,
    simulation_time: str,
    scheduled: dict | None = None,
    lifecycle: dict | None = None,
    vocabulary: list[dict] | None = None,
    window: dict | None = None,
) -> str:
    """The generator script for one relationship table; FK values come from the entity
    tables named on the command line (``Entity=path``). ``scheduled``/``lifecycle``/``window``:
    the request's data conventions (see :mod:`agentskiller.steps.domains.data_rules`)."""
    r = rel if isinstance(rel, Relationship) else Relationship.model_validate(rel)
    now = parse_now(simulation_time)
    fks = r.foreign_keys()
    refs = sorted(set(fks.values()))
    cols = {c.name: c for c in r.columns}
    temporal = [c for c in r.columns if c.type in ("date", "datetime")]
    sched = _scheduled(r, scheduled)
    event = sched or next((c for c in temporal if _is_past(c)), None)
    if event is None:  # an issue or order date rather than an appointment: it lies in the past
        event = next((c for c in temporal if not _is_created(c.name) and not c.name.endswith("_at")), None)
    status_name = (scheduled or {}).get("status_column", "status")
    status = cols.get(status_name) if cols.get(status_name) is not None and cols[status_name].enum else None
    qty = next((cols[n] for n in cols if n in _QTY and cols[n].type in ("integer", "number")), None)
    unit = next((cols[n] for n in cols if n in _UNIT and cols[n].type in ("integer", "number")), None)
    total = next((cols[n] for n in cols if n in _TOTAL and cols[n].type == "number"), None)
    arithmetic = qty is not None and unit is not None and total is not None
    names = usable_vocabulary(vocabulary, r.columns, skip=(r.primary_key,))
    named = set(names[0]) if names else set()
    fk_of = {e: next(n for n, x in fks.items() if x == e) for e in refs}
    bounds = {
        c.name: c.at_most.partition(".")
        for c in r.columns
        if c.at_most and c.type in ("integer", "number") and c.at_most.partition(".")[0] in fk_of
    }
    taken = set(_TAKEN) | set(cols)
    ev = _var(event.name, taken - {event.name}) if event is not None else "event"
    # the foreign keys a bound reads through: drawn first, into a variable of their own name
    fk_vars = {fk_of[ent]: _var(fk_of[ent], taken - {fk_of[ent]}) for ent, _, _ in bounds.values()}

    blocks: list[str] = [_LOAD]
    past, future = _windows(status, scheduled, lifecycle) if status is not None and sched is not None else ([], [])
    # the check-in window: only on the scheduled column (its status is tied to its time), and only
    # where a status may go with a time still to come
    soon = window if window and sched is not None and window.get("column") == sched.name else None
    ready = [v for v in (soon or {}).get("statuses") or [] if v in future] or future
    if soon is not None and status is not None and not ready:
        soon = None
    if sched is not None and sched.type == "datetime":
        blocks.append(_SLOT)
    if soon is not None:
        blocks.append(_SOON if sched.type == "datetime" else _SOON_DAY)
    if bounds:
        blocks.append(_BOUNDS)
    if names:
        blocks.append(names_block(names))
    if past or future:
        blocks.append(
            f"PAST_STATUSES = {json.dumps(past)}  # {sched.name} has passed\n"
            f"FUTURE_STATUSES = {json.dumps(future)}  # {sched.name} is still to come"
        )
    if soon is not None:
        hours = number_literal(float(soon.get("within_hours") or 24))
        blocks.append(
            f"WINDOW_HOURS = {hours}  # check-in opens this many hours before {sched.name}\n"
            f"WINDOW_SHARE = {number_literal(float(soon.get('share', 0.2)))}  # of the rows, ready to check in now"
            + (f"\nWINDOW_STATUSES = {json.dumps(ready)}  # the statuses a check-in accepts" if ready else "")
        )
    L: list[str] = []
    params = "pk, pools, rows" if bounds else "pk, pools"
    if soon is not None:
        params += ", ready"
    L += [f"def make_record({params}):", f'    """One {r.name} record with real foreign keys."""']
    if names:
        L.append("    names = next_names()")
    for fk, var in fk_vars.items():
        ent = fks[fk]
        minimums = {attr: numeric_range(cols[n], now)[0] for n, (e, _, attr) in bounds.items() if e == ent}
        mins = ", ".join(f'"{a}": {number_literal(v)}' for a, v in minimums.items())
        L += [
            f"    # a {snake_case(ent).replace('_', ' ')} with room for the smallest values its at_most bounds allow",
            f'    {var} = rng.choice(fits(pools["{ent}"], rows["{ent}"], {{{mins}}}))',
        ]
    pick = "slot" if sched is not None and sched.type == "datetime" else "day"
    if soon is not None:
        L.append("    when = soon(WINDOW_HOURS) if ready else None")
    if sched is not None and (past or future):
        history = ["        status = rng.choice(PAST_STATUSES)", f"        {ev} = {pick}(-180, -1)"]
        to_come = ["        status = rng.choice(FUTURE_STATUSES)", f"        {ev} = {pick}(1, 120)"]
        branches = []
        if soon is not None:
            now_ready = ["        status = rng.choice(WINDOW_STATUSES)", f"        {ev} = when"]
            branches.append(("when is not None", "ready to check in now", now_ready))
        if past and future:
            branches.append(("rng.random() < 0.5", "a record from the history", history))
        rest, note = (to_come, "one still to come") if future else (history, "a record from the history")
        for i, (cond, why, body) in enumerate(branches):
            L += [f"    {'if' if i == 0 else 'elif'} {cond}:  # {why}", *body]
        if branches:
            L += [f"    else:  # {note}", *rest]
        else:
            L += [line[4:] for line in rest]
    elif soon is not None:  # no status to keep: only the time goes inside the window
        L.append(f"    {ev} = when if when is not None else {pick}(-120, 120)")
    else:
        if status is not None:
            L.append(f"    status = {column_expr(status, r.name, False, now)}")
        if sched is not None:
            L.append(f"    {ev} = {pick}(-120, 120)")
        elif event is not None:
            L.append(f"    {ev} = {'day' if event.type == 'date' else 'moment'}(-180, -1)")
    if any(c is not event for c in temporal):
        # creation happens before the event and never after NOW
        anchor = ev if event is not None else "iso(NOW)"
        conv = (
            f"datetime.fromisoformat({anchor} + 'T00:00:00+00:00')"
            if event is not None and event.type == "date"
            else f"datetime.fromisoformat({anchor}.replace('Z', '+00:00'))"
        )
        L += [f"    created = min(NOW, {conv}) - timedelta(days=rng.randint(1, 60), minutes=15 * rng.randint(0, 95))"]
        # follow-up actions (paid_at, cancelled_at ...) happen after the event when it is past
        L += [f"    acted = max(created, min(NOW, {conv}))" if event is not None else "    acted = created"]
    if arithmetic:
        for var, c in (("quantity", qty), ("unit", unit)):
            e_bound = bounds.get(c.name)
            expr = (
                _bounded(c, fk_vars[fk_of[e_bound[0]]], e_bound[0], e_bound[2], entities, now)
                if e_bound
                else column_expr(c, r.name, False, now)
            )
            L.append(f"    {var} = {expr}")
        if total.maximum is not None:
            L += [
                f"    while quantity > 1 and unit * quantity > {number_literal(total.maximum)}:",
                "        quantity -= 1  # keep the total inside its range",
            ]
    L.append("    return {")
    for c in r.columns:
        n = c.name
        expr = _value_expr(c, r, status, event, ev, named, bounds, fk_vars, fk_of, entities, now)
        if arithmetic and c is qty:
            expr = "quantity"
        elif arithmetic and c is unit:
            expr = "unit"
        elif arithmetic and c is total:
            expr = "round(unit * quantity, 2)"
        keep = n == r.primary_key or c is status or c is event or (arithmetic and c in (qty, unit, total))
        if c.nullable and not keep and "else None" not in expr and n not in fk_vars:
            expr = nullable(c, expr)
        L.append(f'        "{n}": {expr},')
    L.append("    }")
    blocks.append("\n".join(L))
    body_lines = [
        "    rows = {name: load_table(table_path) for name, table_path in tables.items()}",
        "    pools = {name: sorted(by_key) for name, by_key in rows.items()}",
    ]
    for e in refs:
        body_lines += [f'    if "{e}" not in pools:', f'        sys.exit("missing entity table argument {e}=PATH")']
    body_lines.append(f'    ids = make_ids("{id_prefix(r.name)}", N_RECORDS)')
    if soon is not None:
        body_lines += [
            "    # a seeded sample of the rows can be checked in now",
            "    soon_rows = set(rng.sample(range(N_RECORDS), round(N_RECORDS * WINDOW_SHARE)))",
            f"    records = [make_record({params.replace(', ready', ', i in soon_rows')}) for i, pk in enumerate(ids)]",
        ]
    else:
        body_lines.append(f"    records = [make_record({params}) for pk in ids]")
    argv = (
        "    if len(sys.argv) < 2:\n"
        f'        sys.exit("usage: python {r.name}.py OUTPUT_JSON ENTITY=TABLE_JSON ...")\n'
        '    tables = dict(arg.split("=", 1) for arg in sys.argv[2:])\n'
        "    main(sys.argv[1], tables)"
    )
    doc = f"Generate {count} {r.name} records: {r.description}".strip()
    usage = " " + " ".join(f"{e}=TABLE_JSON" for e in refs) if refs else ""
    header = script_header(doc, f"{r.name}.py", seed, count, simulation_time, usage)
    code = "\n\n\n".join([header.rstrip("\n"), *(b.strip("\n") for b in blocks)])
    return code + "\n" + MAIN.format(extra_params=", tables", body="\n".join(body_lines), argv=argv)


def _value_expr(
    c: Column,
    r: Relationship,
    status: Column | None,
    event: Column | None,
    ev: str,
    named: set[str],
    bounds: dict,
    fk_vars: dict[str, str],
    fk_of: dict[str, str],
    entities: dict,
    now: datetime,
) -> str:
    """The expression of one column inside the record literal."""
    n = c.name
    if n == r.primary_key:
        return "pk"
    if n in fk_vars:
        return fk_vars[n]
    if c.references:
        return f'rng.choice(pools["{c.references}"])'
    if status is not None and c is status:
        return "status"
    if event is not None and c is event:
        return ev
    if n in named:
        return f"names[{json.dumps(n)}]"
    if n in bounds:
        ent, _, attr = bounds[n]
        return _bounded(c, fk_vars[fk_of[ent]], ent, attr, entities, now)
    if _is_created(n):
        return "iso(created)" if c.type == "datetime" else "created.date().isoformat()"
    between = "(acted + (NOW - acted) * rng.random())"
    if c.type in ("date", "datetime") and (n.endswith("_at") or _is_past(c)):
        # an action timestamp (updated_at, paid_at ...) or another past date: between creation and NOW
        stamp = f"iso{between}" if c.type == "datetime" else f"{between}.date().isoformat()"
        stem = n[: -len("_at")]
        if c.nullable and status is not None and stem in (status.enum or []):
            return f'({stamp} if status == "{stem}" else None)'
        return stamp
    if c.type in ("date", "datetime") and event is not None:
        # a follow-up date (end, due, return): after the event
        if event.type == "date" and c.type == "date":
            return f"(date.fromisoformat({ev}) + timedelta(days=rng.randint(1, 30))).isoformat()"
        if event.type == "datetime" and c.type == "datetime":
            return (
                f"iso(datetime.fromisoformat({ev}.replace('Z', '+00:00')) + timedelta(minutes=15 * rng.randint(2, 16)))"
            )
        if c.type == "datetime":
            return "iso(created + timedelta(days=rng.randint(1, 30)))"
        return "(created + timedelta(days=rng.randint(1, 30))).date().isoformat()"
    return column_expr(c, r.name, False, now)
