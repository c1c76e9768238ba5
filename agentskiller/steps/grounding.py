"""Hallucination check for s17: every concrete value in a query must come from its task.

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
"""

from __future__ import annotations

import re
from typing import Any, Iterable

EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
DATETIME_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?")
ID_RE = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_-]{3,}\b")
PHONE_RE = re.compile(r"(?<![\w.+])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{2,4}[\s.-]?\d{3,4}"
                      r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w])")
NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?![\w])")
NAME_RE = re.compile(r"\b[A-Z][a-zA-Z'\-]+(?:\.?\s+[A-Z][a-zA-Z'\-]+)+\b")
#: capitalised words that begin sentences or greetings, not names
COMMON = {
    "hi", "hello", "hey", "good", "morning", "afternoon", "evening", "dear", "thanks", "thank", "please",
    "i", "i'm", "i've", "i'd", "i'll", "my", "me", "could", "can", "would", "will", "should", "first", "then",
    "next", "after", "finally", "and", "also", "lastly", "once", "to", "the", "a", "an", "this", "that", "it",
    "is", "are", "was", "do", "does", "did", "what", "when", "where", "why", "how", "which", "who", "yes", "no",
    "ok", "okay", "sure", "sorry", "just", "so", "but", "if", "id", "dr", "mr", "mrs", "ms", "monday",
    "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march",
    "april", "may", "june", "july", "august", "september", "october", "november", "december", "patient",
    "customer", "reference", "number", "appointment", "booking", "account", "there", "again", "let", "start",
    "show", "list", "book", "cancel", "check", "tell", "set", "change", "update", "help", "need", "want",
}


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
    taken once, by the most specific kind (email > date > phone > id > number > name)."""
    found: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []

    def free(m: re.Match) -> bool:
        return all(m.end() <= a or m.start() >= b for a, b in taken)

    for kind, rx in (("email", EMAIL_RE), ("date", DATETIME_RE), ("phone", PHONE_RE), ("id", ID_RE),
                     ("number", NUMBER_RE)):
        for m in rx.finditer(text):
            if not free(m):
                continue
            v = m.group(0)
            if kind == "phone" and len(_digits(v)) < 7:
                continue
            if kind == "number" and len(re.sub(r"\D", "", v)) < 2:
                continue
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
    exact = set(vals)
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


def missing_values(text: str, required: Iterable[Any]) -> list[str]:
    """Required values that do not occur in ``text`` (case-insensitive)."""
    low = text.lower()
    return [str(v) for v in flatten(list(required)) if str(v).lower() not in low]
