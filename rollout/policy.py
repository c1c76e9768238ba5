"""The write rules a policy states, read from its text (the system message).

A generated policy has one section per tool (``<!-- TOOL: name --> ... <!-- TOOL_END: name
-->``) whose lines say what a write needs:

* a precondition on the record it changes: "`HotelReservation.status` is `reserved`.",
  "`Enrollment.status` is one of `enrolled`, `waitlisted`.";
* a date that "must lie after the current time (2025-06-02T09:00:00Z)";
* a number "between 1 and 6", which "may not exceed `RoomType.max_occupancy` of the
  chosen `RoomType`";
* a text that "must not be empty";
* a check-in window: "Check-in opens 24 hours before `Appointment.scheduled_at`: that time
  must lie between the current time (...) and 24 hours after it" (or "before the day in
  `...`", where a date counts as its whole day).

The offline assistant checks a write against these before it asks for the go-ahead, so it
refuses a forbidden request itself ("refuse requests that ... this policy forbids, and
explain which rule applies") instead of trying it. Nothing here is task data: the rules are
the policy's, the values those of the conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"<!-- TOOL: ([\w.-]+) -->(.*?)<!-- TOOL_END: \1 -->", re.S)
_PRECOND = re.compile(r"^-\s*`(?:\w+_)?([A-Z]\w*)\.(\w+)` is (one of )?(.+?)\.?\s*(?:<!--|$)")
_PARAM_LINE = re.compile(r"^-\s*`(\w+)` \(([^)]*)\):(.*)$")
_FUTURE = re.compile(r"must lie after the current time \(([^)]+)\)")
_BOUND = re.compile(r"may not exceed `(?:\w+_)?([A-Z]\w*)\.(\w+)` of the chosen `")
_BETWEEN = re.compile(r"between (-?[\d.]+) and (-?[\d.]+)")
_WINDOW = re.compile(
    r"check-in opens ([\d.]+) hours? before (the day in )?`(?:\w+_)?([A-Z]\w*)\.(\w+)`.*?current time \(([^)]+)\)",
    re.I,
)


def snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", camel).lower()


@dataclass
class ToolRules:
    #: (id field of the record, field, allowed values): "`Enrollment.status` is one of ..."
    preconditions: list[tuple[str, str, list[str]]] = field(default_factory=list)
    #: parameter -> the current time it must lie after
    future: dict[str, str] = field(default_factory=dict)
    #: (parameter, id field of the bounding record, its field)
    bounds: list[tuple[str, str, str]] = field(default_factory=list)
    #: parameter -> (low, high)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    not_empty: set[str] = field(default_factory=set)
    #: (id field of the record, its time column, hours, current time, the column is a date)
    windows: list[tuple[str, str, float, str, bool]] = field(default_factory=list)


def parse_policy(policy: str) -> dict[str, ToolRules]:
    """Tool name (as the section names it) -> its rules."""
    out: dict[str, ToolRules] = {}
    for m in _SECTION.finditer(policy or ""):
        rules = ToolRules()
        for raw in m.group(2).splitlines():
            line = raw.strip()
            w = _WINDOW.search(line)
            if w:
                hours, day, entity, column, now = w.groups()
                rules.windows.append((snake(entity) + "_id", column, float(hours), now, bool(day)))
                continue
            p = _PRECOND.match(line)
            if p:
                entity, fieldname, many, rest = p.groups()
                allowed = re.findall(r"`([^`]+)`", rest)
                if allowed:
                    rules.preconditions.append((snake(entity) + "_id", fieldname, allowed))
                continue
            q = _PARAM_LINE.match(line)
            if not q:
                continue
            param, _kind, text = q.groups()
            f = _FUTURE.search(text)
            if f:
                rules.future[param] = f.group(1)
            b = _BOUND.search(text)
            if b:
                rules.bounds.append((param, snake(b.group(1)) + "_id", b.group(2)))
            r = _BETWEEN.search(text)
            if r:
                rules.ranges[param] = (float(r.group(1)), float(r.group(2)))
            if "must not be empty" in text:
                rules.not_empty.add(param)
        out[m.group(1)] = rules
    return out


def after(value: str, now: str) -> bool:
    """An ISO date or date-time lies after ``now`` (a date: the day after now's day or later)."""
    v, n = value.strip(), now.strip()
    if len(v) == 10:  # a date
        return v > n[:10]
    return v.rstrip("Z") > n.rstrip("Z")


def in_window(value: str, now: str, hours: float, whole_day: bool) -> bool:
    """``0 <= value - now <= hours``; for a date, its day lies between now's day and the day
    ``hours`` after now (both included)."""
    import datetime as dt

    def parse(t: str) -> dt.datetime:
        return dt.datetime.fromisoformat(t.strip().replace("Z", "+00:00"))

    n = parse(now)
    if whole_day or len(value.strip()) == 10:
        day = dt.date.fromisoformat(value.strip()[:10])
        return n.date() <= day <= (n + dt.timedelta(hours=hours)).date()
    v = parse(value if "T" in value else value + "T00:00:00+00:00")
    return dt.timedelta(0) <= v - n <= dt.timedelta(hours=hours)
