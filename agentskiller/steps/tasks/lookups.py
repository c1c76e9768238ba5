"""s15 grounding repair: the lookup a user's words call for, before a call needs an ID they lack.

A golden call may take a record's ID that the user does not hold (an appointment they name
by its date, a dentist they name by name). An agent can only get it from an earlier result,
so s15 puts a lookup there: a search tool over the record's table (a ``list_my_*`` tool
first), with only the filters the user states, and makes sure the user's words pick the
record out of what it returns - when the template's descriptors do not, a descriptor that
does (a date first) is added to what the user states.

The prediction works on the initial tables; s16 proves it on the executed results (every
argument sourced, every list call non-empty).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentskiller.models.tasks import GoldenCall, Slot
from agentskiller.steps.tasks.task_env import EnvView, ToolRef

#: descriptor column types in the order a person names a record by them
IDENTIFY_ORDER = ("datetime", "date", "string", "integer", "number")


@dataclass
class Need:
    """A record ID call ``call`` takes that the user does not hold."""

    call: int
    slot: Slot
    record: dict


def search_tools(view: EnvView, table: str) -> list[ToolRef]:
    """Search tools over physical ``table``: ``list_my_*`` first, then by fewest required
    parameters and name."""
    refs = [view.tool(n) for n in view.tool_names()]
    found = [r for r in refs if r.tool.kind == "search" and r.table == table]
    return sorted(
        found,
        key=lambda r: ("my" not in r.tool.name.split("_"), sum(p.required for p in r.tool.parameters), r.name),
    )


def lookup_call(ref: ToolRef, record: dict, stated_columns: set[str]) -> GoldenCall | None:
    """``ref`` called with the filters the user states (their values from ``record``); None
    when a required filter is not one of them."""
    args: dict[str, Any] = {}
    for p in ref.tool.parameters:
        col = p.column or p.name
        if col in stated_columns and record.get(col) is not None:
            args[p.name] = record[col]
        elif p.required:
            return None
    return GoldenCall(name=ref.name, arguments=args)


def returned(records: list[dict], owner: str | None, user_id: Any, call: GoldenCall, ref: ToolRef) -> list[dict]:
    """What the search returns on the initial tables: the user's records (a relationship
    table is scoped to the authorized user) matching every filter."""
    cols = {p.name: p.column or p.name for p in ref.tool.parameters}
    out = [r for r in records if owner is None or r.get(owner) == user_id]
    for name, v in call.arguments.items():
        out = [r for r in out if r.get(cols.get(name, name)) == v]
    return out


def identifying_column(
    target: dict, others: list[dict], columns: list[tuple[str, str]], stated: set[str]
) -> tuple[bool, str | None]:
    """(already identified, column to add): the target is picked out by the ``stated``
    columns, or by one more column (``columns``: (name, type), in :data:`IDENTIFY_ORDER`)."""
    rest = [o for o in others if o is not target and o != target]

    def unique(cols: set[str]) -> bool:
        return all(any(o.get(c) != target.get(c) for c in cols) for o in rest)

    if not rest or (stated and unique(stated)):
        return True, None
    ranked = sorted(columns, key=lambda c: IDENTIFY_ORDER.index(c[1]) if c[1] in IDENTIFY_ORDER else 99)
    for col, _ in ranked:
        if target.get(col) is not None and unique(stated | {col}):
            return False, col
    return False, None


def insert_calls(calls: list[GoldenCall], inserts: dict[int, list[GoldenCall]]) -> list[GoldenCall]:
    """``calls`` with ``inserts[i]`` placed before call ``i``; ``resolve`` indices follow."""
    new_index: dict[int, int] = {}
    out: list[GoldenCall] = []
    for i, c in enumerate(calls):
        out += inserts.get(i, [])
        new_index[i] = len(out)
        out.append(c)
    return [
        c.model_copy(
            update={"resolve": {p: r.model_copy(update={"call": new_index[r.call]}) for p, r in c.resolve.items()}}
        )
        if c.resolve
        else c
        for c in out
    ]


def add_lookups(
    view: EnvView,
    calls: list[GoldenCall],
    needs: list[Need],
    stated_columns: Callable[[str], set[str]],
    table_records: Callable[[str], list[dict]],
    owner_of: Callable[[str], str | None],
    descriptor_columns: Callable[[str], list[tuple[str, str]]],
    user_id: Any,
) -> tuple[list[GoldenCall], dict[str, str]]:
    """The calls with a lookup before each need that no earlier call serves, and the
    descriptors added so the user identifies the record (slot table -> column). Raises
    ``LookupError`` when no search tool can serve a need or the record cannot be told apart."""
    inserts: dict[int, list[GoldenCall]] = {}
    listed: dict[str, tuple[ToolRef, GoldenCall]] = {}  # table -> the search that lists it
    checked: set[str] = set()
    added: dict[str, str] = {}
    for i, c in enumerate(calls):
        ref = view.tool(c.name)
        for need in [n for n in needs if n.call == i]:
            table = need.slot.table
            if table in checked:
                continue
            stated = stated_columns(table)
            if table not in listed:
                for sref in search_tools(view, table):
                    call = lookup_call(sref, need.record, stated)
                    if call is not None:
                        listed[table] = (sref, call)
                        inserts.setdefault(i, []).append(call)
                        break
                else:
                    raise LookupError(f"ungrounded_argument: no search tool lists {table} for {c.name}")
            sref, call = listed[table]
            got = returned(table_records(table), owner_of(table), user_id, call, sref)
            if not any(r == need.record for r in got):
                raise LookupError(f"ungrounded_argument: {sref.name} would not return the {table} {c.name} needs")
            ok, col = identifying_column(need.record, got, descriptor_columns(table), stated)
            if not ok and col is None:
                raise LookupError(f"ungrounded_argument: the user cannot tell their {table} apart for {c.name}")
            if col is not None:
                added[table] = col
            checked.add(table)
        if ref.tool.kind == "search" and ref.table not in listed:
            listed[ref.table] = (ref, c)
    return insert_calls(calls, inserts), added
