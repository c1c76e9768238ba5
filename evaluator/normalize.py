"""End-state normalization: when two replays count as ending in the same state.

An episode's end state and the golden end state both start from the env's fresh initial
state, so they are equal exactly when their *changes* are equal. A change set is
``{table: {primary key: final record, or None when the record was removed}}``: every record
that was added, removed or changed against the initial state. Two change sets are compared
after three normalizations, applied the same way to both sides:

1. **Created IDs** (``ctx.new_id``: values matching
   :data:`agentskiller.runtime.api.GENERATED_ID_RE` such as ``appointment_n00001``, which
   the initial data does not hold) depend on how many records were created before, so
   creating two records in the other order, or creating a draft and deleting it again,
   shifts them. Each created record gets a canonical key from its *content*: within its
   table, created records are sorted by their JSON (own key left out, references to other
   created records written as those records' current canonical keys) and numbered
   ``<prefix>_c00001``, ``<prefix>_c00002``, ... (``appointment_c00001``). This is repeated
   until the numbering is stable, so records that refer to each other are ordered by what
   they refer to. Then every occurrence of a created ID anywhere in the change set - the
   key, a foreign key in another record, an ID inside a list - is rewritten to its
   canonical key. A draft that was created and deleted again is in neither change set, so
   it does not matter at all. Records identical in everything but their created ID are
   interchangeable; their relative numbering is arbitrary but the rewritten change sets
   are equal.
2. **Numbers**: an integral float is the integer (``25.0`` == ``25``); booleans stay
   booleans (``true`` != ``1``).
3. **No-op writes**: a record whose normalized content equals its initial content is not a
   change (writing a value back, or ``25`` over ``25.0``).

Nothing else is normalized. Timestamps need nothing: tools read the clock only through
``ctx.now``, the env's fixed ``simulation_time``, so replays stamp identical times. Free
text, letter case and date formats are compared exactly: a tool that stores
``"2025-06-30T14:00:00Z"`` and one that stores ``"2025-06-30 14:00"`` made different
records.

The same rewriting makes tool-call arguments comparable (:func:`normalize_arguments`):
a created ID in an argument becomes the canonical key of the record it names in that
replay's final state (``<gone:ID>`` when that record was deleted again), numbers are
normalized, and an argument given as ``null`` equals an omitted one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from agentskiller.runtime.api import GENERATED_ID_RE

__all__ = [
    "ChangeSet",
    "change_set",
    "canonicalize",
    "canonical_changes",
    "compare_changes",
    "normalize_number",
    "normalize_arguments",
    "dumps",
]

#: {table: {primary key: record | None}}
ChangeSet = dict[str, dict[Any, dict | None]]
_GEN_SUFFIX = re.compile(r"_n\d{5,}$")


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def normalize_number(value: Any) -> Any:
    """Integral floats become ints, recursively; everything else is left alone."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalize_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_number(v) for v in value]
    return value


def _rewrite(value: Any, fn: Callable[[str], str | None]) -> Any:
    """``value`` with every string ``s`` for which ``fn(s)`` is not None replaced by it."""
    if isinstance(value, str):
        new = fn(value)
        return value if new is None else new
    if isinstance(value, dict):
        return {k: _rewrite(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, fn) for v in value]
    return value


def change_set(
    initial: Mapping[str, Mapping[Any, dict]],
    primary_keys: Mapping[str, str],
    final_tables: Mapping[str, list[dict]],
) -> ChangeSet:
    """What ``final_tables`` (changed tables as the worker returns them: ``{table:
    [records]}``) changed against ``initial`` (``State.tables``). Numbers are normalized."""
    out: ChangeSet = {}
    for table, records in final_tables.items():
        pk = primary_keys.get(table)
        before = initial.get(table, {})
        if pk is None:  # a table the initial state does not have: everything is new
            rows = {dumps(r): normalize_number(r) for r in records}
            out[table] = dict(rows)
            continue
        after = {r.get(pk): r for r in records}
        changes: dict[Any, dict | None] = {}
        for key, rec in after.items():
            new = normalize_number(rec)
            old = before.get(key)
            if old is None or dumps(normalize_number(old)) != dumps(new):
                changes[key] = new
        for key in before:
            if key not in after:
                changes[key] = None
        if changes:
            out[table] = changes
    return out


def _created(changes: ChangeSet, initial: Mapping[str, Mapping[Any, dict]]) -> dict[tuple[str, str], dict]:
    """(table, key) -> record, for records created with a generated ID."""
    found = {}
    for table, rows in changes.items():
        before = initial.get(table, {})
        for key, rec in rows.items():
            if rec is not None and isinstance(key, str) and GENERATED_ID_RE.match(key) and key not in before:
                found[(table, key)] = rec
    return found


def canonicalize(
    changes: ChangeSet,
    initial: Mapping[str, Mapping[Any, dict]],
    primary_keys: Mapping[str, str],
) -> dict[str, str]:
    """Created ID -> canonical key (see the module docstring). An ID created in two
    tables (two members of a pair with the same table name) maps to both keys joined by
    ``|``, so a reference to it stays ambiguous on both sides alike."""
    created = _created(changes, initial)
    if not created:
        return {}
    by_table: dict[str, list[str]] = {}
    for table, key in created:
        by_table.setdefault(table, []).append(key)
    labels: dict[tuple[str, str], str] = {tk: "" for tk in created}

    def value_map(lbl: dict[tuple[str, str], str]) -> dict[str, str]:
        vals: dict[str, list[str]] = {}
        for (_, key), name in lbl.items():
            vals.setdefault(key, []).append(name)
        return {k: "|".join(sorted(v)) for k, v in vals.items()}

    for _ in range(max(2, min(len(created) + 1, 8))):
        refs = value_map(labels)
        new: dict[tuple[str, str], str] = {}
        for table, keys in by_table.items():
            pk = primary_keys.get(table)

            def content(key: str, table: str = table, pk: str | None = pk, refs: dict[str, str] = refs) -> str:
                body = {k: v for k, v in created[(table, key)].items() if k != pk}
                return dumps(_rewrite(body, lambda s: f"<new:{refs[s]}>" if s in refs else None))

            ordered = sorted(keys, key=lambda k: (content(k), k))
            for rank, key in enumerate(ordered, 1):
                new[(table, key)] = f"{_GEN_SUFFIX.sub('', key)}_c{rank:05d}"
        if new == labels:
            break
        labels = new
    return value_map(labels)


def canonical_changes(changes: ChangeSet, id_map: Mapping[str, str]) -> dict[str, list[list[Any]]]:
    """The change set with created IDs rewritten, as sorted JSON-ready lists:
    ``{table: [[key, record or None], ...]}``."""

    def sub(s: str) -> str | None:
        return id_map.get(s)

    out = {}
    for table in sorted(changes):
        rows = []
        for key, rec in changes[table].items():
            k = id_map.get(key, key) if isinstance(key, str) else key
            rows.append([k, None if rec is None else _rewrite(rec, sub)])
        rows.sort(key=lambda r: dumps(r[0]))
        out[table] = rows
    return out


def compare_changes(
    expected: dict[str, list[list[Any]]], got: dict[str, list[list[Any]]], limit: int = 5
) -> list[dict]:
    """The differences between two canonical change sets (empty: equal end states), at
    most ``limit``: ``{"table", "key", "expected", "got"}`` (a missing side is ``"absent"``:
    not changed there; ``None``: removed)."""
    diffs: list[dict] = []
    for table in sorted(set(expected) | set(got)):
        exp = {dumps(k): (k, r) for k, r in expected.get(table, [])}
        act = {dumps(k): (k, r) for k, r in got.get(table, [])}
        for key in sorted(set(exp) | set(act)):
            e = exp.get(key, (None, "absent"))[1]
            a = act.get(key, (None, "absent"))[1]
            if dumps(e) != dumps(a):
                k = (exp.get(key) or act.get(key))[0]
                diffs.append({"table": table, "key": k, "expected": e, "got": a})
    return diffs[:limit] if limit else diffs


def normalize_arguments(args: Mapping[str, Any] | None, id_map: Mapping[str, str]) -> str:
    """A comparable text for one call's arguments: created IDs canonical (``<gone:ID>``
    for one whose record no longer exists), numbers normalized, ``null`` arguments dropped."""

    def sub(s: str) -> str | None:
        if s in id_map:
            return id_map[s]
        return f"<gone:{s}>" if GENERATED_ID_RE.match(s) else None

    clean = {k: v for k, v in (args or {}).items() if v is not None}
    return dumps(_rewrite(normalize_number(clean), sub))
