"""Reading values out of conversation text: the offline simulators' shared toolkit.

Nothing here knows a task: these are pattern readers for what people write in a support
chat - identifiers (``STU-31061``, ``enrollment_n00001``), dates in ISO or natural form
("Sunday, July 6, 2025 at 9:00 AM UTC", "4 February 2025 at 07:45 UTC"), amounts ("$21,202.65",
"23%"), quoted names, street addresses, enum values written with spaces ("pass fail" for
``pass_fail``) - plus sentence splitting and the lead words of a request ("To wrap up,
please ..."). The offline user and the offline assistant both use them; the natural-date
parser is :mod:`agentskiller.grounding`'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentskiller.grounding import DATETIME_RE, NATURAL_DATE_RE, NUMBER_RE, _when, iso_when

ID_RE = re.compile(
    r"(?<![\w-])(?:[A-Z][A-Z0-9]{1,7}-(?=[A-Z0-9-]*\d)[A-Z0-9]+(?:-[A-Z0-9]+)*|[a-z][a-z0-9_]*_n\d{5,})(?![\w-])"
)
QUOTED_RE = re.compile(r"\"([^\"]{1,120})\"|“([^”]{1,120})”")
#: a street address: number, capitalised words, an optional "Apt. 12" / "Suite 549"
ADDRESS_RE = re.compile(
    r"(?<![\w$.,])\d{1,6}(?:\s+(?!(?:Apt|Suite|Unit)\b)[A-Z][a-z]+\.?){1,4}(?:\s+(?:Apt\.?|Suite|Unit)\s+\d{1,5})?(?![\w])"
)
NOW_RE = re.compile(r"current (?:date and )?time is (\d{4}-\d{2}-\d{2}T[\d:]+Z?)", re.I)
ID_EXAMPLE_RE = re.compile(r"IDs look like `([^`]+)`")
STOP_TOKENS = {"###STOP###": "user_stop", "###TRANSFER###": "transfer", "###OUT-OF-SCOPE###": "out_of_scope"}

_ABBREV = ("Apt", "Dr", "Mr", "Mrs", "Ms", "St", "Jr", "Sr", "No", "Ave", "Mt", "Ft", "vs", "etc", "e.g", "i.e")
_SENT_END = re.compile(r"(?<=[.?!])[\"”)]?\s+(?=[\"“(]?[A-Z])")

#: lead words that carry no meaning of their own: connectors and politeness
_LEAD = re.compile(
    r"^(?:(?:first of all|first(?:ly)?|then|next|after that|afterwards|once that'?s done|when you have that|"
    r"after you'?ve done that|following that|once you have that|with that done|finally|and finally|to finish|"
    r"and lastly|lastly|to wrap up|to start|to begin(?: with)?|also|and|so|now|okay|ok|great|thanks|"
    r"thank you|sure|yes|alright|perfect|and then|in addition|additionally|after this)\b[,:]?\s*)+",
    re.I,
)
_POLITE = re.compile(
    r"^(?:(?:please|kindly|could you(?: please)?|can you(?: please)?|would you(?: please)?|will you|"
    r"i'?d like (?:you )?to start by asking you to|i'?d like to start by asking you to|i'?d like you to|"
    r"i would like you to|i'?d like to|i would like to|i want you to|i want to|i need you to|i need to|"
    r"i'?m hoping you can|i'?m calling because i want to|help me|go ahead and|"
    r"let'?s|i wish to)\b[,:]?\s*)+",
    re.I,
)
STOPWORDS = {
    "a", "an", "the", "my", "me", "i", "of", "for", "to", "in", "on", "at", "with", "by", "and", "or", "is",
    "are", "be", "that", "this", "it", "its", "please", "you", "your", "can", "could", "would", "from", "as",
    "have", "has", "do", "does", "what", "which", "one", "all", "any", "about", "up", "over", "into", "whose",
    "called", "named", "reference", "id", "ids", "number",
}  # fmt: skip


@dataclass(frozen=True)
class Mention:
    kind: str  # id | date | number | quoted | address | enum
    value: Any
    start: int
    end: int
    text: str
    #: dates: has a clock time; numbers: "$" (currency) / "%" (percent) marks
    extra: str = ""


# --------------------------------------------------------------------------- text
def split_sentences(text: str) -> list[str]:
    """Sentences, not split after abbreviations ("Apt. 852") or inside quotes."""
    parts, start = [], 0
    for m in _SENT_END.finditer(text):
        before = text[start : m.start()]
        word = re.search(r"([A-Za-z.]+)[.]$", before)
        if word and word.group(1).rstrip(".") in _ABBREV:
            continue
        if before.count('"') % 2 == 1:
            continue
        parts.append(before.strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]


#: where one sentence chains two requests ("pull it up and then cancel it")
JOINERS = re.compile(
    r",? and then |, then |,? and after that,? |; once that'?s done,? |; then |,? and once that'?s done,? |"
    r"; after that,? ",
    re.I,
)


def split_requests(sentence: str) -> list[str]:
    """One sentence's requests, cut at joiners (quoted text is never cut)."""
    parts, start = [], 0
    for m in JOINERS.finditer(sentence):
        if sentence[: m.start()].count('"') % 2 == 1:
            continue
        parts.append(sentence[start : m.start()])
        start = m.end()
    parts.append(sentence[start:])
    return [p.strip() for p in parts if p.strip()]


def strip_lead(text: str) -> str:
    """``"To wrap up, please look up X"`` -> ``"look up X"``."""
    prev = None
    t = text.strip()
    while prev != t:
        prev = t
        t = _LEAD.sub("", t).strip()
        t = _POLITE.sub("", t).strip()
    return t


def singular(word: str) -> str:
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "ches", "shes", "xes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-case content words, singular."""
    return [singular(w) for w in re.findall(r"[A-Za-z]+", text) if w.lower() not in STOPWORDS]


def name_words(identifier: str) -> list[str]:
    """``dental_appointment_id`` -> ``["dental", "appointment"]``."""
    return [singular(w) for w in identifier.split("_") if w and w not in ("id", "my", "of", "for", "in")]


def json_number(x: float) -> int | float:
    """An integral amount as an int (``$3,273.00`` -> 3273), as a stored value would be."""
    return int(x) if float(x).is_integer() else float(x)


def render(value: Any) -> str:
    """A value as a person reads it: strings bare, numbers and booleans as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- values
def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in taken)


def find_ids(text: str) -> list[Mention]:
    return [Mention("id", m.group(0), m.start(), m.end(), m.group(0)) for m in ID_RE.finditer(text)]


def find_dates(text: str, default_year: int | None = None) -> list[Mention]:
    """ISO and natural dates; ``value`` is ``(date "YYYY-MM-DD", time "HH:MM" or None)``."""
    out: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for m in DATETIME_RE.finditer(text):
        w = iso_when(m.group(0))
        if w is None:
            continue
        out.append(Mention("date", (f"{w.year:04d}-{w.month:02d}-{w.day:02d}", w.time), m.start(), m.end(), m.group(0)))
        taken.append(m.span())
    for m in NATURAL_DATE_RE.finditer(text):
        if _overlaps(m.span(), taken):
            continue
        w = _when(m)
        if w is None or not w.month:
            continue
        year = w.year or default_year
        if year is None:
            continue
        out.append(Mention("date", (f"{year:04d}-{w.month:02d}-{w.day:02d}", w.time), m.start(), m.end(), m.group(0)))
        taken.append(m.span())
    return sorted(out, key=lambda x: x.start)


def iso_datetime(date: str, time: str | None) -> str:
    return f"{date}T{time or '00:00'}:00Z"


def find_quoted(text: str) -> list[Mention]:
    out = []
    for m in QUOTED_RE.finditer(text):
        v = m.group(1) if m.group(1) is not None else m.group(2)
        out.append(Mention("quoted", v.strip(), m.start(), m.end(), m.group(0)))
    return out


def find_addresses(text: str, exclude: list[tuple[int, int]] = ()) -> list[Mention]:
    out = []
    for m in ADDRESS_RE.finditer(text):
        if _overlaps(m.span(), list(exclude)):
            continue
        v = m.group(0).strip()
        # "30 May" is a date, "2 Guests" a count: an address has a street word after the number
        if len(v.split()) < 2:
            continue
        out.append(Mention("address", v, m.start(), m.end(), v))
    return out


def find_numbers(text: str, exclude: list[tuple[int, int]] = ()) -> list[Mention]:
    """Numbers outside ``exclude`` spans (IDs, dates, addresses); ``extra`` is ``$`` or
    ``%`` when the number carries that mark."""
    out = []
    for m in NUMBER_RE.finditer(text):
        if _overlaps(m.span(), list(exclude)):
            continue
        raw = m.group(0).rstrip(",")
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            continue
        before = text[max(0, m.start() - 1) : m.start()]
        after = text[m.end() : m.end() + 1]
        mark = "$" if before == "$" else "%" if after == "%" else ""
        out.append(Mention("number", json_number(value), m.start(), m.end(), raw, mark))
    return out


def enum_mentions(text: str, values: list[Any]) -> list[Mention]:
    """Occurrences of enum ``values`` in ``text`` (``pass_fail`` as "pass fail",
    "pass-fail" or "pass_fail"), longest first, non-overlapping."""
    low = text.lower()
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for v in sorted((v for v in values if isinstance(v, str)), key=lambda v: -len(v)):
        alts = {v.lower(), v.lower().replace("_", " "), v.lower().replace("_", "-")}
        for alt in sorted(alts, key=len, reverse=True):
            for m in re.finditer(rf"(?<![a-z0-9]){re.escape(alt)}(?![a-z0-9])", low):
                if _overlaps(m.span(), taken):
                    continue
                found.append(Mention("enum", v, m.start(), m.end(), text[m.start() : m.end()]))
                taken.append(m.span())
    return sorted(found, key=lambda x: x.start)


#: verbs that ask for the same kind of change, for both simulators: a request worded with one
#: is served by a tool named with another ("set up a meeting" -> ``book_advising_meeting``)
CREATE_VERBS = {
    "book", "make", "create", "submit", "request", "open", "purchase", "enroll", "reserve", "arrange", "schedule",
    "order", "buy", "register", "apply", "place", "add", "sign", "set up", "start", "file", "subscribe",
}  # fmt: skip
UPDATE_VERBS = {
    "change", "modify", "amend", "update", "reschedule", "rename", "edit", "move", "adjust", "alter", "set",
}  # fmt: skip
REMOVE_VERBS = {"cancel", "delete", "remove", "drop", "withdraw", "close", "terminate", "unenroll", "leave"}
VERB_GROUPS = (CREATE_VERBS, UPDATE_VERBS, REMOVE_VERBS)


def verb_synonyms(verb: str) -> set[str]:
    """``verb`` and the verbs of its group(s) (create, update, remove)."""
    out = {verb}
    for group in VERB_GROUPS:
        if verb in group:
            out |= group
    return out


#: phrasal verbs whose particle carries the meaning ("set up" creates, "bring up" shows)
PHRASAL_RE = re.compile(
    r"^(set up|bring up|pull (?:it |them )?up|add up|check (?:me )?in|pick (?:it )?up|look up|look (?:at|for|over)|"
    r"(?:have|take) a (?:quick )?look(?: at)?|read (?:me )?(?:back|the details)|go (?:over|through)|make sure)\b",
    re.I,
)


def lead_verb(body: str) -> str:
    """The request verb a clause starts with: a phrasal one ("set up", "have a look at",
    "make sure") as written, else the first word; lower case."""
    m = PHRASAL_RE.match(body.strip())
    if m:
        return re.sub(r"\s+", " ", m.group(1).lower())
    w = re.match(r"[A-Za-z]+", body.strip())
    return w.group(0).lower() if w else ""


#: a sentence that says which record the user means ("The appointment I mean is the one on
#: June 6.", "It's the meeting whose agenda is career.") - no request of its own
IDENTIFY_NOTE_RE = re.compile(
    r"^(?:the [a-z][a-z -]* i mean\b|it'?s the [a-z][a-z -]*? (?:on|whose|with|that|for|from|at|named|called)\b|"
    r"i mean the [a-z][a-z -]*? (?:on|whose|with|that|for|from|at|named|called)\b)",
    re.I,
)
#: a sentence that adds a value to the request before it ("Please make sure the visit reason
#: is cleaning.", "And the channel should be video.", "Could you also set the term to fall?")
VALUE_NOTE_RE = re.compile(
    r"^(?:(?:and |also,? )?(?:please )?make sure (?:that )?the [a-z][a-z -]* (?:is|are)\b|"
    r"(?:and |also,? )?the [a-z][a-z -]* should be\b|(?:could you |please )?also,? (?:please )?set the\b|"
    r"(?:also,? )?please set the (?![^.?!]*\b(?:my|your|its)\b)[a-z][a-z -]* to\b)",
    re.I,
)


def is_note(clause: str) -> str:
    """``"identify"`` / ``"value"`` when ``clause`` is such a sentence, else ``""``."""
    body = clause.strip()
    body = re.sub(r"^(?:oh,? |and |also,? |just so you know,? )+", "", body, flags=re.I) if body else body
    if IDENTIFY_NOTE_RE.match(body):
        return "identify"
    if VALUE_NOTE_RE.match(body):
        return "value"
    return ""


def stop_reason(text: str) -> tuple[str | None, str]:
    """The stop token in a user message (its stop reason) and the text without tokens."""
    reason = None
    for token, why in STOP_TOKENS.items():
        if token in text:
            reason = reason or why
            text = text.replace(token, " ")
    return reason, re.sub(r"[ \t]+", " ", text).strip()


def default_year(policy: str) -> int | None:
    m = NOW_RE.search(policy or "")
    return int(m.group(1)[:4]) if m else None


def value_in_text(value: Any, text: str, year: int | None = None) -> bool:
    """``text`` states ``value`` as a whole token (an ID verbatim, a date in any rendering
    with the same day and, when the text gives one, the same time; a number with or without
    separators; a string or enum value with spaces for underscores)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        skip = [(d.start, d.end) for d in find_dates(text, year)] + [(i.start, i.end) for i in find_ids(text)]
        return any(n.value == json_number(value) for n in find_numbers(text, skip))
    v = str(value).strip()
    if not v:
        return False
    when = iso_when(v)
    if when is not None:
        for d in find_dates(text, year):
            date, time = d.value
            if date == f"{when.year:04d}-{when.month:02d}-{when.day:02d}" and (time is None or time == when.time):
                return True
        return False
    if ID_RE.fullmatch(v):
        return any(m.value == v for m in find_ids(text))
    return bool(enum_mentions(text, [v])) if len(v) >= 2 else False
