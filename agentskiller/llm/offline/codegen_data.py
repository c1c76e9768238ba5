"""The offline provider's data-generator writer (answers to s06 code requests).

Size: over 400 lines because one expression writer per column kind, kept together so every generated script reads alike.

It writes the script a code model would write: plain, readable Python that imports Faker
and the standard library only, is seeded (``random.Random(SEED)`` + ``Faker.seed_instance``),
never reads the wall clock (``NOW`` is the simulation time), and writes a JSON list of
records to the path on its command line. Each column gets its own expression, chosen from
the column's type, enum, range and format hint and, failing those, its name. Relationship
scripts load the entity tables they reference (``Entity=path`` arguments) and sample real
primary keys; they order timestamps (created before the event, a ``completed`` visit in the
past, a ``scheduled`` one in the future) and keep ``total = unit_price * quantity``.

The writer is deterministic: the same definition, count, seed and time give the same
script, byte for byte. The data checks in s06 treat its scripts exactly like a model's.

One module past 400 lines: the column-expression choosers and the script preamble whose helpers
they call (``moment``, ``day``, ``amount``, ``make_ids``) must change together.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from ...models.blueprint import Relationship
from ...models.catalog import Attribute, Entity, snake_case

# Name vocabulary (kept here, independent of the step's checker, on purpose: the checker
# must not trust the generator's own idea of what the names mean).
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
_PAST = {
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
    "closed",
    "resolved",
    "paid",
    "refunded",
    "returned",
    "expired",
}
_FUTURE = {"scheduled", "upcoming", "booked", "planned", "confirmed", "reserved"}
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
_MONEY = (
    "price",
    "amount",
    "cost",
    "fee",
    "balance",
    "total",
    "salary",
    "fare",
    "charge",
    "payment",
    "premium",
    "deductible",
    "limit",
    "budget",
    "rate",
    "tuition",
    "deposit",
    "rent",
)


def id_prefix(table: str) -> str:
    """Readable ID prefix: ``Patient`` -> ``PAT``, ``InsurancePolicy`` -> ``INP``."""
    parts = snake_case(table).split("_")
    if len(parts) == 1:
        return parts[0][:3].upper().ljust(3, "X")
    return (parts[0][:2] + "".join(p[0] for p in parts[1:]))[:4].upper()


def number_literal(v: float) -> str:
    """A number as a Python literal in generated code: ``3.0`` -> ``3``, ``2.5`` -> ``2.5``."""
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


def _bounds(a: Attribute, default: tuple[float, float]) -> tuple[float, float]:
    lo = (
        a.minimum
        if a.minimum is not None
        else (default[0] if a.maximum is None or default[0] <= a.maximum else a.maximum - abs(default[1] - default[0]))
    )
    hi = a.maximum if a.maximum is not None else max(default[1], lo + abs(default[1] - default[0]))
    return lo, hi


def _int_default(name: str, now_year: int) -> tuple[int, int]:
    if "age" == name or name.endswith("_age"):
        return 18, 90
    if "year" in name:
        return now_year - 30, now_year
    if "minute" in name or "duration" in name:
        return 15, 120
    if "rating" in name or "star" in name or "score" in name:
        return 1, 5
    if "capacity" in name or "seats" in name:
        return 10, 200
    if any(k in name for k in ("count", "quantity", "qty", "units", "nights", "tickets", "sessions")):
        return 1, 10
    if any(k in name for k in _MONEY):
        return 10, 2000
    return 1, 100


def _num_default(name: str) -> tuple[float, float]:
    if "rating" in name or "score" in name:
        return 1.0, 5.0
    if "percent" in name or "pct" in name or "discount" in name:
        return 0.0, 50.0
    if any(k in name for k in _MONEY):
        return 10.0, 2000.0
    if "weight" in name:
        return 1.0, 150.0
    if "distance" in name or "km" in name or "miles" in name:
        return 1.0, 500.0
    return 0.0, 1000.0


def _date_window(name: str, fmt: str = "") -> tuple[int, int]:
    """Days relative to NOW for a date/datetime column of an entity (by format, then name)."""
    if fmt.startswith("future"):
        return 1, 180
    if fmt.startswith("past"):
        return -5 * 365, -1
    if "birth" in name or "birth" in fmt or name in ("dob", "date_of_birth"):
        return -90 * 365, -18 * 365
    if any(k in name for k in ("expir", "valid_until", "due", "end", "renewal", "next_")):
        return 1, 730
    return -5 * 365, -1


def _string_expr(a: Attribute, table: str, is_person: bool) -> str:
    fmt = (a.format or "").lower()
    n = a.name
    word = " ".join(w.capitalize() for w in snake_case(table).split("_"))
    if fmt == "uuid" or n.endswith("uuid"):
        return "str(uuid.UUID(int=rng.getrandbits(128), version=4))"
    if n == "first_name" or fmt == "first_name":
        return "first"
    if n == "last_name":
        return "last"
    if fmt == "person_name" or (is_person and n in ("name", "full_name", "display_name")):
        return 'f"{first} {last}"'
    if fmt == "email" or "email" in n:
        return (
            'f"{first}.{last}{rng.randint(1, 99)}@{fake.free_email_domain()}".lower()'
            if is_person
            else "fake.company_email()"
        )
    if fmt == "phone" or "phone" in n or n in ("mobile", "telephone"):
        return 'fake.numerify("+1-###-###-####")'
    if fmt == "address" or "address" in n or n == "street":
        return "fake.street_address()"
    if fmt == "city" or n == "city" or n.endswith("_city"):
        return "fake.city()"
    if n in ("state", "region", "province"):
        return "fake.state_abbr()"
    if fmt == "country" or "country" in n:
        return "fake.country()"
    if "zip" in n or "postal" in n or "postcode" in n:
        return "fake.postcode()"
    if fmt == "url" or "url" in n or "website" in n:
        return "fake.url()"
    if fmt == "company" or "company" in n or "employer" in n or "provider" in n or "insurer" in n:
        return "fake.company()"
    if fmt == "airport_code":
        return 'rng.choice(["ATL", "BOS", "DEN", "DFW", "JFK", "LAX", "MIA", "ORD", "SEA", "SFO"])'
    if fmt == "flight_number":
        return 'fake.bothify("??###").upper()'
    if fmt == "license_plate" or "plate" in n:
        return "fake.license_plate()"
    if fmt == "car_model":
        return 'rng.choice(["Toyota Corolla", "Honda Civic", "Ford Focus", "VW Golf", "Tesla Model 3", "Kia Niro"])'
    if fmt == "isbn" or "isbn" in n:
        return "fake.isbn13()"
    if fmt == "opening_hours" or "hours" in n:
        return 'rng.choice(["08:00-17:00", "09:00-18:00", "07:30-16:30", "10:00-20:00"])'
    if fmt == "course_code":
        return 'fake.bothify("???-###").upper()'
    if fmt == "postal_code":
        return "fake.postcode()"
    if fmt == "title" or n in ("name", "title", "display_name") or n.endswith("_name"):
        return f'f"{{fake.word().title()}} {word}"'
    if fmt == "code" or any(k in n for k in ("code", "number", "sku", "license", "licence", "serial", "plate")):
        return 'fake.bothify("??-####").upper()'
    if fmt == "text" or any(
        k in n
        for k in (
            "description",
            "notes",
            "note",
            "comment",
            "bio",
            "summary",
            "reason",
            "details",
            "message",
            "instructions",
        )
    ):
        return "fake.sentence(nb_words=10)"
    if fmt == "color" or "colou" in n:
        return "fake.color_name()"
    if "language" in n:
        return "fake.language_name()"
    if "job" in n or "occupation" in n or "position" in n:
        return "fake.job()"
    return "fake.word().capitalize()"


def column_expr(a: Attribute, table: str, is_person: bool, now: datetime) -> str:
    """A Python expression that yields one valid value for column ``a``."""
    if a.enum:
        return f"rng.choice({json.dumps(list(a.enum))})"
    if a.type == "string":
        return _string_expr(a, table, is_person)
    if a.type == "integer":
        lo, hi = _bounds(a, _int_default(a.name, now.year))
        return f"rng.randint({math.ceil(lo)}, {math.floor(hi)})"
    if a.type == "number":
        lo, hi = _bounds(a, _num_default(a.name))
        return f"amount({number_literal(lo)}, {number_literal(hi)})"
    if a.type == "boolean":
        p = 0.8 if any(k in a.name for k in ("active", "verified", "enabled", "available")) else 0.5
        return f"rng.random() < {p}"
    lo, hi = _date_window(a.name, (a.format or "").lower())
    return f"{'day' if a.type == 'date' else 'moment'}({lo}, {hi})"


def _nullable(a: Attribute, expr: str) -> str:
    return f"(None if rng.random() < 0.1 else {expr})" if a.nullable else expr


_HEADER = '''\
"""{doc}

Usage: python {fname} OUTPUT_JSON{usage_extra}
Seeded and clock-free: the same seed gives the same records; NOW is the simulation time.
"""
import json
import random
import sys
import uuid
from datetime import date, datetime, timedelta, timezone

from faker import Faker

SEED = {seed}
N_RECORDS = {count}
NOW = datetime({y}, {mo}, {d}, {h}, {mi}, {s}, tzinfo=timezone.utc)  # simulation time, never the wall clock

rng = random.Random(SEED)
fake = Faker("en_US")
fake.seed_instance(SEED)


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(lo_days, hi_days):
    """A datetime between NOW+lo_days and NOW+hi_days, on a quarter hour, as ISO 8601."""
    minutes = rng.randint(lo_days * 24 * 4, hi_days * 24 * 4) * 15
    return iso(NOW.replace(minute=0, second=0) + timedelta(minutes=minutes))


def day(lo_days, hi_days):
    """A date between NOW+lo_days and NOW+hi_days as YYYY-MM-DD."""
    return (NOW.date() + timedelta(days=rng.randint(lo_days, hi_days))).isoformat()


def amount(lo, hi):
    """A number in [lo, hi] with two decimals (clamped, so rounding never leaves the range)."""
    return min(hi, max(lo, round(rng.uniform(lo, hi), 2)))


def make_ids(prefix, n):
    """Unique, readable, seeded primary keys such as PAT-10023."""
    return ["%s-%d" % (prefix, k) for k in sorted(rng.sample(range(10000, 100000), n))]
'''


def _header(doc: str, fname: str, seed: int, count: int, simulation_time: str, usage_extra: str = "") -> str:
    now = _parse_now(simulation_time)
    doc = doc.replace("\\", "/").replace('"""', "'")
    return _HEADER.format(
        doc=doc,
        fname=fname,
        usage_extra=usage_extra,
        seed=int(seed),
        count=int(count),
        y=now.year,
        mo=now.month,
        d=now.day,
        h=now.hour,
        mi=now.minute,
        s=now.second,
    )


def _parse_now(simulation_time: str) -> datetime:
    dt = datetime.fromisoformat(str(simulation_time).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


_MAIN = """

def main(path{extra_params}):
{body}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1, ensure_ascii=False)
    print("wrote %d records to %s" % (len(records), path))


if __name__ == "__main__":
{argv}
"""


def entity_script(entity: Entity | dict, count: int, seed: int, simulation_time: str) -> str:
    """The generator script for one entity table."""
    ent = entity if isinstance(entity, Entity) else Entity.model_validate(entity)
    now = _parse_now(simulation_time)
    needs_person = ent.is_person or any(
        a.name in ("first_name", "last_name") or (a.format or "") in ("person_name", "first_name")
        for a in ent.attributes
    )
    lines = ["def make_record(pk):", f'    """One {ent.name} record."""']
    if needs_person:
        lines.append("    first, last = fake.first_name(), fake.last_name()")
    lines.append("    return {")
    for a in ent.attributes:
        if a.name == ent.primary_key:
            lines.append(f'        "{a.name}": pk,')
        else:
            lines.append(f'        "{a.name}": {_nullable(a, column_expr(a, ent.name, needs_person, now))},')
    lines.append("    }")
    body = f'    ids = make_ids("{id_prefix(ent.name)}", N_RECORDS)\n    records = [make_record(pk) for pk in ids]'
    argv = (
        "    if len(sys.argv) != 2:\n"
        f'        sys.exit("usage: python {ent.name}.py OUTPUT_JSON")\n'
        "    main(sys.argv[1])"
    )
    doc = f"Generate {count} {ent.name} records: {ent.description}".strip()
    return (
        _header(doc, f"{ent.name}.py", seed, count, simulation_time)
        + "\n\n"
        + "\n".join(lines)
        + "\n"
        + _MAIN.format(extra_params="", body=body, argv=argv)
    )


def _is_created(n: str) -> bool:
    return n in _CREATED or n.endswith("_created_at")


def _is_event(n: str) -> bool:
    return not _is_created(n) and (n in _EVENT_EXACT or any(h in n for h in _EVENT_HINTS))


def relationship_script(
    rel: Relationship | dict, entities: dict[str, Any], count: int, seed: int, simulation_time: str
) -> str:
    """The generator script for one relationship table; FK values come from the entity
    tables named on the command line (``Entity=path``)."""
    r = rel if isinstance(rel, Relationship) else Relationship.model_validate(rel)
    now = _parse_now(simulation_time)
    fks = r.foreign_keys()
    refs = sorted(set(fks.values()))
    cols = {c.name: c for c in r.columns}
    temporal = [c for c in r.columns if c.type in ("date", "datetime")]
    event = next((c for c in temporal if _is_event(c.name)), None)
    if event is None:
        event = next((c for c in temporal if not _is_created(c.name) and not c.name.endswith("_at")), None)
    status = cols.get("status") if cols.get("status") is not None and cols["status"].enum else None
    qty = next((cols[n] for n in cols if n in _QTY and cols[n].type in ("integer", "number")), None)
    unit = next((cols[n] for n in cols if n in _UNIT and cols[n].type in ("integer", "number")), None)
    total = next((cols[n] for n in cols if n in _TOTAL and cols[n].type == "number"), None)
    arithmetic = qty is not None and unit is not None and total is not None
    is_person = False

    L: list[str] = [
        "",
        "",
        "def load_ids(path):",
        '    """Primary keys of an entity table file (a table object or a plain list)."""',
        '    with open(path, encoding="utf-8") as fh:',
        "        data = json.load(fh)",
        '    records = data["records"] if isinstance(data, dict) else data',
        "    if not records:",
        '        sys.exit("entity table %s has no records" % path)',
        '    pk = data.get("primary_key") if isinstance(data, dict) else None',
        "    pk = pk or next(iter(records[0]))",
        "    return sorted(rec[pk] for rec in records)",
        "",
        "",
    ]
    if status is not None:
        past = [v for v in status.enum if v in _PAST]
        future = [v for v in status.enum if v in _FUTURE]
        L += [
            f"PAST_STATUSES = {json.dumps(past)}  # these records describe what already happened",
            f"FUTURE_STATUSES = {json.dumps(future)}  # these describe what is still to come",
            "",
            "",
        ]
    L += ["def make_record(pk, pools):", f'    """One {r.name} record with real foreign keys."""']
    if status is not None:
        L.append(f"    status = {column_expr(status, r.name, is_person, now)}")
    fallback_event = event is not None and not _is_event(event.name)
    if fallback_event:
        # an issue/order date rather than an appointment: it lies in the past
        L.append(f"    event = {'day' if event.type == 'date' else 'moment'}(-180, -1)")
    elif event is not None:
        if status is not None:
            L += [
                "    if status in PAST_STATUSES:",
                f"        event = {'day' if event.type == 'date' else 'moment'}(-180, -1)",
                "    elif status in FUTURE_STATUSES:",
                f"        event = {'day' if event.type == 'date' else 'moment'}(1, 120)",
                "    else:",
                f"        event = {'day' if event.type == 'date' else 'moment'}(-120, 120)",
            ]
        else:
            L.append(f"    event = {'day' if event.type == 'date' else 'moment'}(-120, 120)")
    if any(c is not event for c in temporal):
        # creation happens before the event and never after NOW
        anchor = "event" if event is not None else "iso(NOW)"
        conv = (
            f"datetime.fromisoformat({anchor} + 'T00:00:00+00:00')"
            if event is not None and event.type == "date"
            else f"datetime.fromisoformat({anchor}.replace('Z', '+00:00'))"
        )
        L += [f"    created = min(NOW, {conv}) - timedelta(days=rng.randint(1, 60), minutes=15 * rng.randint(0, 95))"]
        if event is not None:
            # follow-up actions (paid_at, cancelled_at ...) happen after the event when it is past
            L += [f"    acted = max(created, min(NOW, {conv}))"]
        else:
            L += ["    acted = created"]
    if arithmetic:
        L += [
            f"    quantity = {column_expr(qty, r.name, is_person, now)}",
            f"    unit = {column_expr(unit, r.name, is_person, now)}",
        ]
        if total.maximum is not None:
            L += [
                f"    while quantity > 1 and unit * quantity > {number_literal(total.maximum)}:",
                "        quantity -= 1  # keep the total inside its range",
            ]
    L.append("    return {")
    for c in r.columns:
        n = c.name
        if n == r.primary_key:
            expr = "pk"
        elif c.references:
            expr = f'rng.choice(pools["{c.references}"])'
        elif status is not None and c is status:
            expr = "status"
        elif event is not None and c is event:
            expr = "event"
        elif _is_created(n) and c.type == "datetime":
            expr = "iso(created)"
        elif _is_created(n):
            expr = "created.date().isoformat()"
        elif c.type in ("date", "datetime") and n.endswith("_at"):
            # an action timestamp (updated_at, paid_at ...): between creation and NOW
            stamp = "iso(acted + (NOW - acted) * rng.random())"
            stem = n[: -len("_at")]
            if c.nullable and status is not None and stem in status.enum:
                expr = f'({stamp} if status == "{stem}" else None)'
            else:
                expr = stamp if c.type == "datetime" else "(acted + (NOW - acted) * rng.random()).date().isoformat()"
        elif c.type in ("date", "datetime") and event is not None:
            # a follow-up date (end, due, return): after the event
            expr = (
                "(date.fromisoformat(event) + timedelta(days=rng.randint(1, 30))).isoformat()"
                if event.type == "date" and c.type == "date"
                else "iso(datetime.fromisoformat(event.replace('Z', '+00:00')) + timedelta(minutes=15 * rng.randint(2, 16)))"
                if event.type == "datetime" and c.type == "datetime"
                else "iso(created + timedelta(days=rng.randint(1, 30)))"
                if c.type == "datetime"
                else "(created + timedelta(days=rng.randint(1, 30))).date().isoformat()"
            )
        elif arithmetic and c is qty:
            expr = "quantity"
        elif arithmetic and c is unit:
            expr = "unit"
        elif arithmetic and c is total:
            expr = "round(unit * quantity, 2)"
        else:
            expr = column_expr(c, r.name, is_person, now)
        if (
            c.nullable
            and n != r.primary_key
            and "else None" not in expr
            and c is not status
            and c is not event
            and not (arithmetic and c in (qty, unit, total))
        ):
            expr = _nullable(c, expr)
        L.append(f'        "{n}": {expr},')
    L.append("    }")
    body_lines = [
        "    pools = {}",
        "    for name, table_path in tables.items():",
        "        pools[name] = load_ids(table_path)",
    ]
    for e in refs:
        body_lines += [f'    if "{e}" not in pools:', f'        sys.exit("missing entity table argument {e}=PATH")']
    body_lines += [
        f'    ids = make_ids("{id_prefix(r.name)}", N_RECORDS)',
        "    records = [make_record(pk, pools) for pk in ids]",
    ]
    argv = (
        "    if len(sys.argv) < 2:\n"
        f'        sys.exit("usage: python {r.name}.py OUTPUT_JSON ENTITY=TABLE_JSON ...")\n'
        '    tables = dict(arg.split("=", 1) for arg in sys.argv[2:])\n'
        "    main(sys.argv[1], tables)"
    )
    doc = f"Generate {count} {r.name} records: {r.description}".strip()
    usage = " " + " ".join(f"{e}=TABLE_JSON" for e in refs) if refs else ""
    return (
        _header(doc, f"{r.name}.py", seed, count, simulation_time, usage)
        + "\n".join(L)
        + "\n"
        + _MAIN.format(extra_params=", tables", body="\n".join(body_lines), argv=argv)
    )


def fenced(code: str) -> str:
    """The code as a model answer: one fenced python block."""
    return f"```python\n{code.rstrip()}\n```\n"


_FENCE_RE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def strip_fence(text: str) -> str:
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text
