"""Hallucination check for s17: every concrete value in a query must come from its task.

Size: over 400 lines because the value extractors and the natural-rendering matchers must agree one to one, so they stay together.

:func:`extract_values` pulls the things a model could invent out of free text: emails,
ISO dates and date-times, identifiers (tokens mixing letters with digits, UUIDs,
``appointment_n00001``), numbers with two or more digits, and capitalised names (runs of
two or more capitalised words, minus greeting / sentence words). :func:`ungrounded` then
reports each one that is not a value (or, for dates and names, part of a value) of the
instance the query was made from. Single-digit numbers and lower-case words are not
checked: they are too common in ordinary prose to be evidence of an invented value.

Compound values (a mailing address "60610 Chad Village Apt. 172", a phone number
"+1-902-181-0132") are first matched whole: every occurrence of an allowed value in the
text is masked before extraction, so quoting the user's own address passes while any
*other* number in the text (an invented street number) is still extracted and checked on
its own. Phone numbers are one value, compared by their digits, so "(902) 181-0132" of
"+1-902-181-0132" passes and a changed digit does not.

Natural renderings of the *same* instance values pass both checks (a person says "July 6,
2025 at 10:00 AM UTC", "course planning", "$54,159.96", not the stored form):
:func:`natural_dates` parses written-out dates (with optional weekday, year and time) into
calendar values that are compared with the instance's ISO dates - a different day, hour or
a weekday that does not fit the date is still caught; an enum-like ``snake_case`` value may
appear with spaces or hyphens for its underscores; a number may carry thousands separators
or a currency sign. IDs are never rewritten: they must appear verbatim.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
DATETIME_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?")
ID_RE = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_-]{3,}\b")
PHONE_RE = re.compile(
    r"(?<![\w.+])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{2,4}[\s.-]?\d{3,4}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w])"
)
NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?![\w])")
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:(?P<wd>Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+(?:the\s+)?)?"
_ORD = r"(?:st|nd|rd|th)?"
#: "10:00", "10:00 AM", "10 am", "2:30 p.m." - a bare hour without am/pm is not a time
_TIME = (
    r"(?P<h>\d{1,2})(?:(?::(?P<mi>\d{2}))\s*(?P<ap>[aApP]\.?[mM]\.?)?|\s*(?P<ap2>[aApP]\.?[mM]\.?))"
    r"(?:\s*\(?(?:UTC|GMT)\)?)?(?![\w:])"
)
NATURAL_DATE_RE = re.compile(
    _WEEKDAY + r"(?:(?P<m1>" + _MONTH + r")\.?\s+(?P<d1>\d{1,2})" + _ORD + r"(?:,?\s+(?P<y1>\d{4}))?"
    r"|(?P<d2>\d{1,2})" + _ORD + r"\s+(?:of\s+)?(?P<m2>" + _MONTH + r")\.?(?:,?\s+(?P<y2>\d{4}))?)(?![\w])"
    r"(?:,?\s+(?:at\s+|from\s+)?" + _TIME + r")?"
)
#: a clock time on its own; only "HH:MM" forms ("by 3 pm" stays as unchecked as any single digit)
TIME_RE = re.compile(r"(?<![\w:.])(?=\d{1,2}:\d{2})" + _TIME)
NAME_RE = re.compile(r"\b[A-Z][a-zA-Z'\-]+(?:\.?\s+[A-Z][a-zA-Z'\-]+)+\b")
#: capitalised words that begin sentences or greetings, not names
COMMON = {
    "hi",
    "hello",
    "hey",
    "good",
    "morning",
    "afternoon",
    "evening",
    "dear",
    "thanks",
    "thank",
    "please",
    "i",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "my",
    "me",
    "could",
    "can",
    "would",
    "will",
    "should",
    "first",
    "then",
    "next",
    "after",
    "finally",
    "and",
    "also",
    "lastly",
    "once",
    "to",
    "the",
    "a",
    "an",
    "this",
    "that",
    "it",
    "is",
    "are",
    "was",
    "do",
    "does",
    "did",
    "what",
    "when",
    "where",
    "why",
    "how",
    "which",
    "who",
    "yes",
    "no",
    "ok",
    "okay",
    "sure",
    "sorry",
    "just",
    "so",
    "but",
    "if",
    "id",
    "dr",
    "mr",
    "mrs",
    "ms",
    *WEEKDAYS,
    *MONTHS,
    "patient",
    "customer",
    "reference",
    "number",
    "appointment",
    "booking",
    "account",
    "there",
    "again",
    "let",
    "start",
    "show",
    "list",
    "book",
    "cancel",
    "check",
    "tell",
    "set",
    "change",
    "update",
    "help",
    "need",
    "want",
}


class When(NamedTuple):
    """A calendar value read from text or from an ISO value (missing parts are None)."""

    year: int | None
    month: int
    day: int
    time: str | None  # "HH:MM", 24-hour
    weekday: int | None = None  # Monday 0, as stated in the text


def _clock(h: str, mi: str | None, ap: str | None) -> str | None:
    hour, minute = int(h), int(mi or 0)
    if ap:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ap.lower().startswith("p") else 0)
    return f"{hour:02d}:{minute:02d}" if hour < 24 and minute < 60 else None


def _when(m: re.Match) -> When | None:
    """The calendar value of a NATURAL_DATE_RE / TIME_RE match (None: no such date)."""
    g = m.groupdict()
    mon = g.get("m1") or g.get("m2")
    month = next(i + 1 for i, n in enumerate(MONTHS) if n.startswith(mon.lower()[:3])) if mon else 0
    day = int(g.get("d1") or g.get("d2") or 0)
    year = g.get("y1") or g.get("y2")
    time = _clock(g["h"], g.get("mi"), g.get("ap") or g.get("ap2")) if g.get("h") else None
    if g.get("h") and time is None:
        return None
    if month:
        try:
            dt.date(int(year) if year else 2024, month, day)  # 2024: a leap year, so Feb 29 is a date
        except ValueError:
            return None
    weekday = (
        [w.lower() for w in ("Mon", "Tues", "Wednes", "Thurs", "Fri", "Satur", "Sun")].index(g["wd"].lower())
        if g.get("wd")
        else None
    )
    return When(int(year) if year else None, month, day, time, weekday)


def natural_dates(text: str) -> list[tuple[str, When | None]]:
    """Written-out dates in ``text`` ("Friday, June 6, 2025 at 10:00 AM UTC", "6 July 2025",
    "July 6"), each with its calendar value (None for an impossible one: "June 31")."""
    return [(m.group(0), _when(m)) for m in NATURAL_DATE_RE.finditer(text)]


def iso_when(v: str) -> When | None:
    """The calendar value of an ISO date / date-time value ("2025-07-06", "2025-07-06T10:00:00Z")."""
    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::\d{2}(?:\.\d+)?)?"
        r"(?:Z|[+-]\d{2}:?\d{2})?)?",
        v.strip(),
        flags=re.I,
    )
    if not m:
        return None
    try:
        dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    time = f"{int(m.group(4)):02d}:{m.group(5)}" if m.group(4) else None
    return When(int(m.group(1)), int(m.group(2)), int(m.group(3)), time)


def same_when(said: When, value: When) -> bool:
    """``said`` (from text) names ``value`` (from the instance): same day (and year when
    said), same time when one is said, and a stated weekday that fits the date."""
    if said.month and (said.month, said.day) != (value.month, value.day):
        return False
    if said.year is not None and said.year != value.year:
        return False
    if said.time is not None and said.time != value.time:
        return False
    if (
        said.weekday is not None
        and value.year is not None
        and dt.date(value.year, value.month, value.day).weekday() != said.weekday
    ):
        return False
    return True


def renderings(v: str) -> list[str]:
    """Natural spellings of one enum-like value: ``course_planning`` -> "course planning",
    "course-planning". IDs (anything with a digit next to a letter or dash) are left alone."""
    if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", v):
        return [v.replace("_", " "), v.replace("_", "-")]
    return []


def flatten(obj: Any) -> Iterable[str]:
    """Every scalar in a JSON-like value, as text."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from flatten(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from flatten(v)
    elif isinstance(obj, bool):
        yield str(obj).lower()
    elif obj is not None:
        yield str(obj)


def extract_values(text: str) -> list[tuple[str, str]]:
    """``(kind, value)`` for every checkable value in ``text``; overlapping matches are
    taken once, by the most specific kind (email > date > time > phone > id > number > name);
    a written-out date ("July 6, 2025 at 10:00 UTC") is one ``date``."""
    found: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []

    def free(m: re.Match) -> bool:
        return all(m.end() <= a or m.start() >= b for a, b in taken)

    for kind, rx in (
        ("email", EMAIL_RE),
        ("date", DATETIME_RE),
        ("date", NATURAL_DATE_RE),
        ("time", TIME_RE),
        ("phone", PHONE_RE),
        ("id", ID_RE),
        ("number", NUMBER_RE),
    ):
        for m in rx.finditer(text):
            if not free(m):
                continue
            v = m.group(0)
            if kind == "phone" and len(_digits(v)) < 7:
                continue
            if kind == "number" and len(re.sub(r"\D", "", v)) < 2:
                continue
            if (
                kind == "date"
                and rx is NATURAL_DATE_RE
                and not re.search(r"\d{2}|\d\s*[:aApP]|\d{4}", v)
                and not m.group("wd")
            ):
                continue  # "May 5" alone: a single-digit day is as unchecked as any single digit
            found.append((kind, v))
            taken.append(m.span())
    for m in NAME_RE.finditer(text):
        if not free(m):
            continue
        words = [w for w in re.split(r"\.?\s+", m.group(0)) if w.lower().strip(".'") not in COMMON]
        if len(words) >= 1 and not (len(words) == 1 and m.start() == 0):
            found.append(("name", " ".join(words)))
    return found


def _digits(v: str) -> str:
    return re.sub(r"\D", "", v)


def _phone(v: str) -> str:
    """The digits of a phone number without its extension."""
    return _digits(re.split(r"(?i)\s?(?:x|ext\.?)\s?(?=\d)", v)[0])


def _mask(text: str, vals: Iterable[str]) -> str:
    """``text`` with every whole-token occurrence of an allowed value blanked out (longest
    first), so the parts of a quoted compound value are not checked one by one."""
    for v in sorted({v for v in vals if len(v) >= 3}, key=lambda v: (-len(v), v)):
        pattern = r"\s+".join(re.escape(w) for w in v.split())
        text = re.sub(rf"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])", " ; ", text, flags=re.IGNORECASE)
    return text


def _norm(v: str) -> str:
    return re.sub(r"\s+", " ", v.strip().lower())


def _num(v: str) -> float | None:
    try:
        return float(v.replace(",", ""))
    except ValueError:
        return None


def ungrounded(text: str, allowed: Iterable[Any]) -> list[str]:
    """Values in ``text`` that are not values of the task (``allowed``: any JSON-like)."""
    vals = [_norm(v) for v in flatten(list(allowed))]
    vals += [r for v in vals for r in renderings(v)]
    exact = set(vals)
    whens = [w for w in (iso_when(v) for v in vals) if w is not None]
    numbers = {n for n in (_num(v) for v in vals) if n is not None}
    words = {w for v in vals for w in re.split(r"[^\w'\-]+", v) if w}
    phones = {d for d in (_phone(v) for v in vals) if len(d) >= 7}
    bad = []
    for kind, v in extract_values(_mask(text, vals)):
        nv = _norm(v)
        if nv in exact:
            continue
        if kind == "date" and any(x.startswith(nv) or nv.startswith(x) and len(x) >= 10 for x in exact):
            continue  # "2025-07-15" of "2025-07-15T14:00:00Z"
        if kind == "date" and not iso_when(v):
            said = next((w for t, w in natural_dates(v) if t == v), None)
            if said is not None and any(same_when(said, w) for w in whens):
                continue  # "Tuesday, July 15, 2025 at 2:00 PM UTC" of "2025-07-15T14:00:00Z"
        if kind == "time":
            m = TIME_RE.fullmatch(v)
            t = _clock(m.group("h"), m.group("mi"), m.group("ap") or m.group("ap2")) if m else None
            if t is not None and any(w.time == t for w in whens):
                continue  # the hour of an instance date-time
        if kind == "phone" and any(p.endswith(_phone(v)) or _phone(v).endswith(p) for p in phones):
            continue  # the same number, written with or without the country code
        if kind == "number" and _num(v) in numbers:
            continue
        if kind == "name" and all(w.lower() in words for w in re.split(r"[^\w'\-]+", v) if w):
            continue
        if kind == "id" and any(nv in x for x in exact if len(nv) >= 6):
            continue
        bad.append(f"{v!r} ({kind})")
    return bad


def mentions(text: str, value: Any) -> bool:
    """``text`` states ``value``: verbatim (case-insensitive), or in one of its natural
    renderings - a written-out date naming the same day (and the same time, when the value
    has one), an enum value with spaces or hyphens for underscores, a number with thousands
    separators or a currency sign. Never an ID in another form."""
    v = str(value)
    low = text.lower()
    if v.lower() in low:
        return True
    when = iso_when(v)
    if when is not None:
        return any(
            w is not None and w.year is not None and same_when(w, when) and (w.time or not when.time)
            for _, w in natural_dates(text)
        )
    for r in renderings(v):
        if re.search(rf"(?<![a-z0-9]){re.escape(r)}(?![a-z0-9])", low):
            return True
    n = _num(v) if not isinstance(value, bool) else None
    if n is not None:
        prose = NATURAL_DATE_RE.sub(" ", DATETIME_RE.sub(" ", text))
        return any(_num(m.group(0)) == n for m in NUMBER_RE.finditer(prose))
    return False


def missing_values(text: str, required: Iterable[Any]) -> list[str]:
    """Required values that ``text`` does not state (see :func:`mentions`)."""
    return [str(v) for v in flatten(list(required)) if not mentions(text, v)]
