"""The rules a domain's policy states, as data: what the tools must enforce and the tests prove.

Every rule is derived, mechanically, from the blueprint and the entity catalogue; nothing
here is a model's choice. s07 gives the rules to the policy writer, which must state each one
on a line that ends with its marker ``<!-- RULE: <id> -->``; s07 checks that text and
markers say the same thing. s09 derives a refusing and an accepting contract test from each
rule, and the code writer keeps every rule. Rule ids are stable: ``<tool>.<kind>`` or
``<tool>.<parameter>.<kind>``, and ``global.<name>`` for the global rules.

Tool rules (one per tool and, where a parameter carries it, per parameter):

* ``authorization``: the tool needs an authorized user.
* ``exists``: an ID parameter (the record's key, a foreign key, a filter that names a record)
  must name an existing record of ``table``.
* ``ownership``: the record must be the authorized user's (``table``, through ``column``).
* ``enum``: the value is one of ``values``.
* ``range``: a number within ``minimum`` / ``maximum``.
* ``format``: a ``date`` (YYYY-MM-DD), ``datetime`` (YYYY-MM-DDTHH:MM:SSZ), ``email`` or
  ``phone`` value.
* ``not_empty``: free text that must not be empty or blank.
* ``time``: a date or date-time that must lie after (``when: future``) or before
  (``when: past``) the simulation's current time; from the column's format
  (``future_date``, ``future_datetime``, ``past_date``, ``past_datetime``).
* ``bound``: a number at most ``limit`` (``Entity.attribute``) of the record the row
  references through its foreign key ``via`` (a column's ``at_most``).
* ``precondition``: the record's columns must hold the listed ``values``
  (``conditions``) before the tool may act: a status transition.
* ``at_least_one``: an update whose values are all optional needs at least one of them.
* ``window``: a check-in (an update tool whose name says ``check`` ``in``:
  :func:`is_check_in`) is allowed only from ``within_hours`` before the time the record's
  ``column`` says the thing happens until that time: ``0 <= record[column] - now <=
  within_hours`` hours, ``now`` the simulation clock (``ctx.now``). The column
  (:func:`window_column`) is the relationship table's first date or date-time with a future
  format (``scheduled_at``: ``future_datetime``), else its first one named like an event
  start (``check_in_date``). A date-only column counts as its whole day: the check-in is
  allowed when that day overlaps the window, i.e. from the current day through the day
  ``within_hours`` from now (a hotel check-in on the arrival day itself is allowed).

Global rules: ``global.authorization`` (every tool rule of kind authorization),
``global.privacy`` (another person's record is refused exactly like a missing one: the
ownership rules' indistinguishability tests), ``global.values`` (the enum, range and exists
rules), and ``conduct`` lines: how the assistant talks (confirmation, one call at a time),
which no tool can enforce and the evaluator scores instead.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import Field

from .blueprint import Blueprint, Tool, ToolParam
from .catalog import Attribute, Entity, Strict, primary_key_for

#: kinds a tool's code enforces and contract tests prove
ToolRuleKind = Literal[
    "authorization",
    "exists",
    "ownership",
    "enum",
    "range",
    "format",
    "not_empty",
    "time",
    "bound",
    "precondition",
    "at_least_one",
    "window",
]
#: ... and the global lines: privacy, summaries of tool rules (covers), conduct
RuleKind = Literal[ToolRuleKind, "privacy", "covers", "conduct"]
TOOL_RULE_KINDS: tuple[str, ...] = get_args(ToolRuleKind)
#: column formats that carry a time rule, and the direction
TIME_FORMATS = {"future_date": "future", "future_datetime": "future", "past_date": "past", "past_datetime": "past"}
#: column formats that carry a format rule of their own (dates and date-times get one by type)
TEXT_FORMATS = ("email", "phone")
#: how long before the record's time a check-in opens (the window rule's ``within_hours``)
CHECK_IN_HOURS = 24.0
#: column names that say when a booked thing starts, for a table without a future-format column
WHEN_HINTS = ("scheduled", "start", "check_in", "arrival", "appointment")
#: column names that say when a record was made, never when the thing happens
CREATED_HINTS = ("created", "booked_at", "requested_at", "submitted_at", "ordered_at", "placed_at")

RULE_MARKER_RE = re.compile(r"<!--\s*RULE:\s*([A-Za-z0-9_.\-]+)\s*-->")


def rule_marker(rule_id: str) -> str:
    return f"<!-- RULE: {rule_id} -->"


class PolicyRule(Strict):
    id: str
    kind: RuleKind
    #: the tool whose section states it (None for a global rule)
    tool: str | None = None
    param: str | None = None
    #: the table the rule is about (exists, ownership, precondition)
    table: str | None = None
    #: the owner column (ownership), or the time column whose window a check-in keeps (window)
    column: str | None = None
    values: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    format: Literal["date", "datetime", "email", "phone"] | None = None
    when: Literal["future", "past"] | None = None
    #: ``Entity.attribute`` that bounds the value (bound)
    limit: str | None = None
    #: the foreign-key column that leads to the bounding record (bound)
    via: str | None = None
    conditions: list[dict[str, Any]] | None = None
    #: how many hours before ``column``'s time the tool opens (window)
    within_hours: float | None = None
    #: the tool-rule kinds a global summary rule stands for (covers)
    covers: list[str] = Field(default_factory=list)


class _Schema:
    """Column facts of every table: relationship columns and entity attributes."""

    def __init__(self, bp: Blueprint, entities: dict[str, Entity]) -> None:
        self.bp = bp
        self.keys = {e: (entities[e].primary_key if e in entities else primary_key_for(e)) for e in bp.entities}
        self.keys.update({r.name: r.primary_key for r in bp.relationships})
        self.columns: dict[str, dict[str, Attribute]] = {
            e: {a.name: a for a in entities[e].attributes} for e in bp.entities if e in entities
        }
        for r in bp.relationships:
            self.columns[r.name] = {c.name: c for c in r.columns}

    def column(self, table: str, name: str | None) -> Attribute | None:
        return self.columns.get(table, {}).get(name or "")

    def owner_column(self, table: str) -> str | None:
        if table == self.bp.core_entity:
            return self.keys[table]
        rel = self.bp.relationship(table)
        return next((c.name for c in rel.columns if c.references == self.bp.core_entity), None) if rel else None

    def id_table(self, tool: Tool, p: ToolParam) -> str | None:
        """The table whose records ``p`` names, if it carries an ID (never the core foreign key
        of a relationship: the session supplies that)."""
        col = p.column or p.name
        if p.type == "array":
            return None
        if col == self.keys.get(tool.table) and (tool.kind != "create"):
            return tool.table
        rel = self.bp.relationship(tool.table)
        ref = rel.foreign_keys().get(col) if rel else None
        if ref and ref != self.bp.core_entity:
            return ref
        if not ref and col != self.keys.get(tool.table):
            return next((e for e in self.bp.entities if self.keys[e] == col and e != self.bp.core_entity), None)
        return None


def _bounds(p: ToolParam, col: Attribute | None) -> tuple[float | None, float | None]:
    lo = p.minimum if p.minimum is not None else (col.minimum if col is not None else None)
    hi = p.maximum if p.maximum is not None else (col.maximum if col is not None else None)
    return lo, hi


def param_rules(schema: _Schema, tool: Tool, p: ToolParam) -> list[PolicyRule]:
    col = schema.column(tool.table, p.column)
    base = {"tool": tool.name, "param": p.name}
    out: list[PolicyRule] = []
    target = schema.id_table(tool, p)
    if target:
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.exists", kind="exists", table=target, **base))
    enum = p.enum or (col.enum if col is not None else None)
    if enum:
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.enum", kind="enum", values=list(enum), **base))
    lo, hi = _bounds(p, col)
    if p.type in ("integer", "number") and (lo is not None or hi is not None):
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.range", kind="range", minimum=lo, maximum=hi, **base))
    fmt = p.type if p.type in ("date", "datetime") else (col.format if col is not None else None)
    if fmt in ("date", "datetime", *TEXT_FORMATS) and p.type != "array":
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.format", kind="format", format=fmt, **base))
    if (
        p.type == "string"
        and not enum
        and not target
        and fmt not in TEXT_FORMATS
        and p.column != schema.owner_column(tool.table)
    ):
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.not_empty", kind="not_empty", **base))
    when = TIME_FORMATS.get((col.format or "") if col is not None else "")
    if when and tool.kind in ("create", "update") and p.type in ("date", "datetime"):
        out.append(PolicyRule(id=f"{tool.name}.{p.name}.{when}", kind="time", when=when, **base))
    limit = getattr(col, "at_most", None)
    if limit and tool.kind in ("create", "update") and p.type in ("integer", "number"):
        rel = schema.bp.relationship(tool.table)
        entity = limit.split(".")[0]
        via = next((c.name for c in rel.columns if c.references == entity), None) if rel else None
        if via:
            out.append(PolicyRule(id=f"{tool.name}.{p.name}.bound", kind="bound", limit=limit, via=via, **base))
    return out


def is_check_in(name: str) -> bool:
    """A tool name that says it checks someone in: the words ``check`` ``in`` in a row, or
    ``checkin`` (``check_in_for_appointment``, ``check_in_to_reservation``, ``checkin_guest``;
    not ``check_insurance`` nor ``checkout``). Words are the name's ``_``-separated parts."""
    words = name.lower().split("_")
    return "checkin" in words or any(a == "check" and b == "in" for a, b in zip(words, words[1:], strict=False))


def window_column(schema: _Schema, table: str) -> str | None:
    """The column of a relationship ``table`` that says when its thing happens: the first
    date / date-time with a future format, else the first named like an event start (see
    ``WHEN_HINTS``); never a creation stamp or a past-format column. None for an entity table."""
    rel = schema.bp.relationship(table)
    if rel is None:
        return None
    temporal = [
        c
        for c in rel.columns
        if c.type in ("date", "datetime")
        and not (c.format or "").startswith("past")
        and not any(h in c.name for h in CREATED_HINTS)
    ]
    future = next((c for c in temporal if (c.format or "").startswith("future")), None)
    named = next((c for c in temporal if any(h in c.name for h in WHEN_HINTS)), None)
    found = future or named
    return found.name if found is not None else None


def tool_rules(schema: _Schema, tool: Tool) -> list[PolicyRule]:
    out: list[PolicyRule] = []
    if tool.kind == "authorize":
        key = tool.parameters[0] if tool.parameters else None
        if key is not None:
            out.append(
                PolicyRule(
                    id=f"{tool.name}.{key.name}.exists",
                    kind="exists",
                    tool=tool.name,
                    param=key.name,
                    table=schema.bp.core_entity,
                )
            )
        return out
    if tool.requires_auth:
        out.append(PolicyRule(id=f"{tool.name}.authorization", kind="authorization", tool=tool.name))
    owner = schema.owner_column(tool.table)
    if tool.kind in ("read", "update", "delete") and tool.requires_auth and owner:
        out.append(
            PolicyRule(id=f"{tool.name}.ownership", kind="ownership", tool=tool.name, table=tool.table, column=owner)
        )
    if tool.preconditions:
        out.append(
            PolicyRule(
                id=f"{tool.name}.precondition",
                kind="precondition",
                tool=tool.name,
                table=tool.table,
                conditions=[c.model_dump() for c in tool.preconditions],
            )
        )
    when = window_column(schema, tool.table) if tool.kind == "update" and is_check_in(tool.name) else None
    if when:
        out.append(
            PolicyRule(
                id=f"{tool.name}.window",
                kind="window",
                tool=tool.name,
                table=tool.table,
                column=when,
                within_hours=CHECK_IN_HOURS,
            )
        )
    for p in tool.parameters:
        out += param_rules(schema, tool, p)
    key = schema.keys.get(tool.table)
    values = [p for p in tool.parameters if (p.column or p.name) != key]
    if tool.kind == "update" and values and not tool.effects and all(not p.required for p in values):
        out.append(PolicyRule(id=f"{tool.name}.at_least_one", kind="at_least_one", tool=tool.name))
    return out


def derive_rules(bp: Blueprint, entities: dict[str, Entity]) -> list[PolicyRule]:
    """Every rule the domain's policy must state: the tools' rules in blueprint order, then
    the global summaries that apply (conduct lines are the writer's and carry no id here)."""
    schema = _Schema(bp, entities)
    rules: list[PolicyRule] = []
    for t in bp.tools:
        rules += tool_rules(schema, t)
    kinds = {r.kind for r in rules}
    rules.append(PolicyRule(id="global.authorization", kind="covers", covers=["authorization"]))
    if "ownership" in kinds:
        rules.append(PolicyRule(id="global.privacy", kind="privacy", covers=["ownership"]))
    covered = sorted(kinds & {"enum", "range", "exists"})
    if covered:
        rules.append(PolicyRule(id="global.values", kind="covers", covers=covered))
    return rules


def is_conduct(rule_id: str) -> bool:
    """``conduct.<name>``: a global line about how the assistant behaves in the conversation."""
    return rule_id.startswith("conduct.")


__all__ = [
    "CHECK_IN_HOURS",
    "PolicyRule",
    "RULE_MARKER_RE",
    "TIME_FORMATS",
    "TOOL_RULE_KINDS",
    "derive_rules",
    "is_check_in",
    "is_conduct",
    "rule_marker",
    "window_column",
]
