"""The offline provider's data-generator writer (answers to s06 code requests): entity tables,
and the preamble and column expressions that :mod:`.codegen_relations` shares.

Size: over 400 lines because one expression writer per column kind, kept together so every generated script reads alike.

It writes the script a code model would write: plain, readable Python that imports Faker
and the standard library only, is seeded (``random.Random(SEED)`` + ``Faker.seed_instance``),
never reads the wall clock (``NOW`` is the simulation time), and writes a JSON list of
records to the path on its command line. Each column gets its own expression, chosen from
the column's type, enum, range and format hint and, failing those, its name. Product,
service and place names come from the catalogue's vocabulary (``NAMES``: rows of real names
and the values that go with them, each row used once before any repeats), never from random
word combinations; a name column the catalogue has no vocabulary for gets a plain
"<qualifier> <table>" name ("Premium Room Type").

The writer is deterministic: the same definition, count, seed and time give the same
script, byte for byte. The data checks in s06 treat its scripts exactly like a model's.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from ...models.catalog import Attribute, Entity, snake_case

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


#: qualifiers of a generated name where the catalogue has no vocabulary ("Premium Room Type")
_QUALIFIERS = ["Standard", "Premium", "Classic", "Select", "Essential", "Signature"]


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


def numeric_range(a: Attribute, now: datetime) -> tuple[float, float]:
    """The range a generated value of numeric column ``a`` is drawn from: its minimum and
    maximum, else a plausible default for its name (integers rounded inwards)."""
    if a.type == "integer":
        lo, hi = _bounds(a, _int_default(a.name, now.year))
        return math.ceil(lo), math.floor(hi)
    return _bounds(a, _num_default(a.name))


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
        # no catalogue vocabulary for this name: a plain qualified name, never a random word
        return f'f"{{rng.choice({_QUALIFIERS!r})}} {word}"'
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
        lo, hi = numeric_range(a, now)
        return f"rng.randint({lo}, {hi})"
    if a.type == "number":
        lo, hi = numeric_range(a, now)
        return f"amount({number_literal(lo)}, {number_literal(hi)})"
    if a.type == "boolean":
        p = 0.8 if any(k in a.name for k in ("active", "verified", "enabled", "available")) else 0.5
        return f"rng.random() < {p}"
    lo, hi = _date_window(a.name, (a.format or "").lower())
    return f"{'day' if a.type == 'date' else 'moment'}({lo}, {hi})"


def nullable(a: Attribute, expr: str) -> str:
    return f"(None if rng.random() < 0.1 else {expr})" if a.nullable else expr


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float)}


def _fits(a: Attribute, v: Any) -> bool:
    """Whether ``v`` is a valid value of column ``a`` (type, enum, range)."""
    if not isinstance(v, _TYPES.get(a.type, ())) or (isinstance(v, bool) and a.type != "boolean"):
        return False
    if a.enum is not None and v not in a.enum:
        return False
    if a.type in ("integer", "number"):
        return (a.minimum is None or v >= a.minimum) and (a.maximum is None or v <= a.maximum)
    return True


def usable_vocabulary(rows: list[dict] | None, columns: list[Attribute], skip: tuple[str, ...] = ()) -> list[dict]:
    """The vocabulary rows cut to the table's columns whose values they all fit (the definition
    may lack a column or bound it differently); ``[]`` when the name (the first key) is lost."""
    if not rows:
        return []
    by_name = {c.name: c for c in columns if c.name not in skip and not getattr(c, "references", None)}
    keys = [k for k in rows[0] if k in by_name and all(k in r and _fits(by_name[k], r[k]) for r in rows)]
    if not keys or keys[0] != next(iter(rows[0])):
        return []
    return [{k: r[k] for k in keys} for r in rows]


def _literal(v: Any) -> str:
    """A JSON scalar as a Python literal in generated code."""
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, (int, float)):
        return number_literal(v)
    return json.dumps(v)


def names_block(rows: list[dict]) -> str:
    """The ``NAMES`` table and ``next_names()`` of a script that draws from a vocabulary."""
    body = "\n".join("    {" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in r.items()) + "}," for r in rows)
    return f'''

NAMES = [  # real names from the catalogue; a record takes one whole row, so its columns agree
{body}
]
_unused_names = []


def next_names():
    """The next row of NAMES: every row is used once, in a seeded order, before any repeats."""
    if not _unused_names:
        _unused_names.extend(rng.sample(NAMES, len(NAMES)))
    return _unused_names.pop()
'''


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


def script_header(doc: str, fname: str, seed: int, count: int, simulation_time: str, usage_extra: str = "") -> str:
    now = parse_now(simulation_time)
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


def parse_now(simulation_time: str) -> datetime:
    dt = datetime.fromisoformat(str(simulation_time).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


MAIN = """

def main(path{extra_params}):
{body}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1, ensure_ascii=False)
    print("wrote %d records to %s" % (len(records), path))


if __name__ == "__main__":
{argv}
"""


def entity_script(
    entity: Entity | dict, count: int, seed: int, simulation_time: str, vocabulary: list[dict] | None = None
) -> str:
    """The generator script for one entity table; ``vocabulary``: the catalogue's rows of real
    names for it (see :func:`usable_vocabulary`)."""
    ent = entity if isinstance(entity, Entity) else Entity.model_validate(entity)
    now = parse_now(simulation_time)
    names = usable_vocabulary(vocabulary, ent.attributes, skip=(ent.primary_key,))
    named = set(names[0]) if names else set()
    needs_person = ent.is_person or any(
        a.name in ("first_name", "last_name") or (a.format or "") in ("person_name", "first_name")
        for a in ent.attributes
    )
    lines = ["def make_record(pk):", f'    """One {ent.name} record."""']
    if needs_person:
        lines.append("    first, last = fake.first_name(), fake.last_name()")
    if names:
        lines.append("    names = next_names()")
    lines.append("    return {")
    for a in ent.attributes:
        if a.name == ent.primary_key:
            lines.append(f'        "{a.name}": pk,')
        elif a.name in named:
            lines.append(f'        "{a.name}": {nullable(a, f"names[{json.dumps(a.name)}]")},')
        else:
            lines.append(f'        "{a.name}": {nullable(a, column_expr(a, ent.name, needs_person, now))},')
    lines.append("    }")
    body = f'    ids = make_ids("{id_prefix(ent.name)}", N_RECORDS)\n    records = [make_record(pk) for pk in ids]'
    argv = (
        "    if len(sys.argv) != 2:\n"
        f'        sys.exit("usage: python {ent.name}.py OUTPUT_JSON")\n'
        "    main(sys.argv[1])"
    )
    doc = f"Generate {count} {ent.name} records: {ent.description}".strip()
    return (
        script_header(doc, f"{ent.name}.py", seed, count, simulation_time)
        + (names_block(names) if names else "")
        + "\n\n"
        + "\n".join(lines)
        + "\n"
        + MAIN.format(extra_params="", body=body, argv=argv)
    )


def fenced(code: str) -> str:
    """The code as a model answer: one fenced python block."""
    return f"```python\n{code.rstrip()}\n```\n"


_FENCE_RE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def strip_fence(text: str) -> str:
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text
