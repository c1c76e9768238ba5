"""The values that prove a policy rule (s09): the calls a tool must refuse and the edge calls
it must accept, per rule kind, and the rule table of a server report.

:mod:`.contract_tests` builds the episodes: it takes a call the tool accepts (its *base*),
changes the one argument a rule is about to each value here, and expects a refusal or a
success. What the values are follows from the rule and the simulation's current time only,
so the code model cannot bend them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agentskiller.models.policy_rules import TOOL_RULE_KINDS, PolicyRule

ACCEPTS, REFUSES = "accepts", "refuses"
#: a value no enum holds; refused by the signature's Literal or by the tool
INVALID_ENUM = "__not_a_valid_value__"


def _now(now: str) -> dt.datetime:
    return dt.datetime.fromisoformat(now.replace("Z", "+00:00"))


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(now: str, kind: str, days: float = 0, hours: float = 0) -> str:
    """A date (``kind == "date"``) or date-time this far from the current time."""
    t = _now(now) + dt.timedelta(days=days, hours=hours)
    return t.date().isoformat() if kind == "date" else _stamp(t)


def valid_moment(rule: PolicyRule, kind: str, now: str) -> str:
    """A comfortable value for a time rule: a week ahead (10:00) or a week back."""
    if rule.when == "future":
        t = (_now(now) + dt.timedelta(days=7)).replace(hour=10, minute=0, second=0)
    else:
        t = (_now(now) - dt.timedelta(days=7)).replace(hour=10, minute=0, second=0)
    return t.date().isoformat() if kind == "date" else _stamp(t)


def time_cases(rule: PolicyRule, kind: str, now: str) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(refused, accepted) values of a time rule, each with a label. A date lies after the
    current time when it is a later day; a date-time when it is later, so the current time
    itself is refused."""
    if rule.when == "future":
        if kind == "date":
            return [("today", moment(now, "date")), ("past", moment(now, "date", days=-1))], [
                ("tomorrow", moment(now, "date", days=1))
            ]
        return [("now", moment(now, kind)), ("past", moment(now, kind, days=-1))], [
            ("in_an_hour", moment(now, kind, hours=1))
        ]
    if kind == "date":
        return [("today", moment(now, "date")), ("future", moment(now, "date", days=1))], [
            ("yesterday", moment(now, "date", days=-1))
        ]
    return [("now", moment(now, kind)), ("future", moment(now, kind, days=1))], [
        ("an_hour_ago", moment(now, kind, hours=-1))
    ]


def window_side(rule: PolicyRule, kind: str, value: Any, now: str) -> str | None:
    """Where a record's time (``value``, a date when ``kind == "date"``) lies against a window
    rule's check-in window: None inside it (``0 <= value - now <= within_hours`` hours; a
    date counts as its whole day, so the current day through the day ``within_hours`` from
    now), ``"too_early"`` after it, ``"passed"`` before it, ``"no_time"`` for a missing or
    malformed value (the tool refuses those too)."""
    start, hours = _now(now), dt.timedelta(hours=rule.within_hours or 0)
    try:
        if kind == "date":
            day = dt.date.fromisoformat(str(value)) if isinstance(value, str) and len(value) == 10 else None
            if day is None:
                return "no_time"
            return "passed" if day < start.date() else ("too_early" if day > (start + hours).date() else None)
        if not isinstance(value, str) or "T" not in value:
            return "no_time"
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "no_time"
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return "passed" if when < start else ("too_early" if when > start + hours else None)


def format_cases(rule: PolicyRule, valid: Any) -> list[tuple[str, Any]]:
    """Malformed values (refused); the base value is the well-formed one."""
    if rule.format == "datetime":
        day = str(valid)[:10]
        return [("date_only", day), ("no_separator", str(valid).replace("T", " ", 1).replace("-", "/"))]
    if rule.format == "date":
        day = str(valid)[:10]
        y, m, d = day[:4], day[5:7], day[8:10]
        return [("slashes", f"{m}/{d}/{y}"), ("words", "next tuesday")]
    if rule.format == "email":
        return [("no_at", "name.example.com"), ("spaces", "name @example.com")]
    return [("letters", "call me maybe"), ("too_short", "12")]


def range_cases(rule: PolicyRule, integer: bool) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(refused, accepted): one step outside each bound, and each bound itself."""
    cast = int if integer else float
    step = 1 if integer else 0.01
    refused, accepted = [], []
    if rule.minimum is not None:
        refused.append(("below_min", cast(rule.minimum - step)))
        accepted.append(("at_min", cast(rule.minimum)))
    if rule.maximum is not None:
        refused.append(("above_max", cast(rule.maximum + step)))
        accepted.append(("at_max", cast(rule.maximum)))
    return refused, accepted


def expect_same_refusal(known_id: Any, unknown_id: Any):
    """A check over [login, call on another person's record, call on a missing record]: both
    refused with a ToolError whose texts differ only in the ID."""

    def check(results: list[dict]) -> str | None:
        if len(results) != 3:
            return f"expected 3 calls, got {len(results)}"
        if not results[0].get("ok"):
            return f"setup call 0 failed: {results[0].get('error_type')}: {results[0].get('error')}"
        a, b = results[1], results[2]
        for what, res in (("another person's record", a), ("a missing record", b)):
            if res.get("ok") or res.get("error_type") != "tool_error":
                return f"expected a ToolError for {what}, got {res.get('error_type') or 'success'}"
        ta = str(a.get("error")).replace(str(known_id), "<ID>")
        tb = str(b.get("error")).replace(str(unknown_id), "<ID>")
        if ta != tb:
            return f"the refusals tell the records apart: {ta[:160]!r} vs {tb[:160]!r}"
        return None

    return check


def rule_table(rules: list[PolicyRule], tests: list[Any], results: list[dict] | None = None) -> list[dict]:
    """Each rule, its kind and the tests that prove it (refusing and accepting), and whether
    they passed. A global summary stands for the rules of the kinds it covers."""
    passed = {r["id"]: r["passed"] for r in results or []}
    direct: dict[str, dict[str, list[str]]] = {r.id: {REFUSES: [], ACCEPTS: []} for r in rules}
    for t in tests:
        for rid, role in t.proves.items():
            direct.setdefault(rid, {REFUSES: [], ACCEPTS: []})[role].append(t.id)
    rows = []
    for r in rules:
        refusing, accepting = list(direct[r.id][REFUSES]), list(direct[r.id][ACCEPTS])
        for other in rules:
            if other.kind in r.covers and other.kind in TOOL_RULE_KINDS:
                accepting += direct[other.id][ACCEPTS]
                if r.kind != "privacy":
                    refusing += direct[other.id][REFUSES]
        row = {
            "id": r.id,
            "kind": r.kind,
            "tool": r.tool,
            "refusing_tests": sorted(set(refusing)),
            "accepting_tests": sorted(set(accepting)),
        }
        if results is not None:
            ids = row["refusing_tests"] + row["accepting_tests"]
            row["proven"] = bool(ids) and all(passed.get(i, False) for i in ids)
        rows.append(row)
    return rows


def untested_rules(rules: list[PolicyRule], tests: list[Any], skipped: list[dict]) -> list[str]:
    """One line per rule without a refusing or an accepting test (with the skip reasons)."""
    reasons = {s["tool"]: s["reason"] for s in skipped}
    out = []
    for row in rule_table(rules, tests):
        missing = [
            what for what, key in (("refusing", "refusing_tests"), ("accepting", "accepting_tests")) if not row[key]
        ]
        if missing:
            why = f" ({reasons[row['tool']]})" if row["tool"] in reasons else ""
            out.append(f"rule {row['id']} has no {' and no '.join(missing)} test{why}")
    return out


__all__ = [
    "ACCEPTS",
    "INVALID_ENUM",
    "REFUSES",
    "expect_same_refusal",
    "format_cases",
    "moment",
    "range_cases",
    "rule_table",
    "time_cases",
    "untested_rules",
    "valid_moment",
    "window_side",
]
