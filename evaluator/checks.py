"""The conversation-level checks: confirmations, answers, refusals, simulator values.

Deterministic text rules, no model:

* :func:`is_confirmation`: a user turn that agrees ("yes", "sure", "go ahead", "please
  do", "I confirm", ...) and does not decline ("no", "don't", "not yet", "wait", ...). A
  bare "confirm" is no agreement ("I want to confirm my pickup" is a request), and the
  evaluator never takes the conversation's opening message as a confirmation.
* :func:`asks_to_proceed`: an assistant message that asks the user for the go-ahead (a
  question with "shall I", "should I", "would you like me to", "confirm", "proceed", ...;
  not a closing "anything else?"). An episode the user ended right after such a message
  was cut off before the write.
* :func:`says_value`: the assistant's text states one expected answer value. Numbers must
  stand as a number token in the prose (dates and IDs do not count; "three" counts for 3),
  so a single digit inside "2025" or an ID is no answer; other values go through
  :func:`agentskiller.grounding.mentions` (verbatim, natural dates, ``snake_case`` with
  spaces).
* :func:`refusal_explained`: the final assistant message refuses ("can't", "unable", "not
  allowed", "policy", ...) and names what it refuses or why (a word of the forbidden
  tool's name or of the rule's reason, compared by their first five letters).
* :func:`ungrounded_user_values`: values a simulated user stated that neither its scenario
  (instruction, reason, known facts, persona), its first message, the clock, the
  assistant's earlier messages nor the tool results the assistant could have relayed hold (:func:`agentskiller.grounding.ungrounded`).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from agentskiller.grounding import (
    DATETIME_RE,
    ID_RE,
    NATURAL_DATE_RE,
    NUMBER_RE,
    extract_values,
    flatten,
    iso_when,
    mentions,
    ungrounded,
)

__all__ = [
    "is_confirmation",
    "asks_to_proceed",
    "says_value",
    "refusal_explained",
    "ungrounded_user_values",
    "strip_control",
    "user_turn_before",
    "last_assistant_text",
    "used_in_argument",
]

CONTROL_RE = re.compile(r"###(?:STOP|TRANSFER|OUT-OF-SCOPE)###")
YES_RE = re.compile(
    r"\b(yes|yeah|yep|yup|sure|certainly|absolutely|definitely|ok(?:ay)?|alright|all right|correct|"
    r"confirmed|i confirm|confirm (?:it|that|this|please)|please confirm it|go ahead|go for it|please do|do it|"
    r"proceed|that'?s (?:right|correct|fine)|"
    r"sounds good|affirmative)\b",
    re.I,
)
NO_RE = re.compile(
    r"(?:^\W*no\b|\bno,|\bnope\b|\bdon'?t\b|\bdo not\b|\bnot yet\b|\bwait\b|\bhold on\b|\bnever ?mind\b|"
    r"\bnot (?:right|correct)\b|\bstop\b)",
    re.I,
)
PROCEED_RE = re.compile(
    r"\b(shall i|should i|may i|can i go ahead|would you like me to|do you want me to|want me to|"
    r"confirm|proceed|go ahead|okay to|ok to|is that (?:right|correct|ok(?:ay)?))\b",
    re.I,
)
REFUSE_RE = re.compile(
    r"(\bcan(?:no|'|’)?t\b|\bcannot\b|\bunable\b|\bnot able\b|\bnot allowed\b|\bnot permitted\b|"
    r"\bnot possible\b|\bisn'?t possible\b|\bwon'?t\b|\bwill not\b|\brefus|\bdeclin|\bpolicy\b|\bforbid|"
    r"\bnot eligible\b|\bonly (?:when|if|be)\b|\bafraid\b|\bsorry\b|\bmust not\b|\bnot be\b)",
    re.I,
)
#: a closing offer ("anything else I can help with?") asks for nothing to proceed with
OFFER_RE = re.compile(r"\b(?:anything|something) else\b|\bany other\b", re.I)
_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
#: words too generic to show what a refusal is about
_GENERIC = {
    "needs",
    "need",
    "breaks",
    "rule",
    "rules",
    "with",
    "that",
    "this",
    "from",
    "your",
    "their",
    "when",
    "only",
    "must",
    "into",
    "have",
    "make",
    "makes",
    "change",
    "changes",
    "record",
}


def strip_control(text: str) -> str:
    return CONTROL_RE.sub(" ", text or "").strip()


def is_confirmation(text: str | None) -> bool:
    t = strip_control(text or "")
    return bool(YES_RE.search(t)) and not NO_RE.search(t)


def asks_to_proceed(text: str | None) -> bool:
    t = text or ""
    return "?" in t and bool(PROCEED_RE.search(t)) and not OFFER_RE.search(t)


def _num(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def says_value(text: str, value: Any) -> bool:
    """``text`` states ``value`` (see the module docstring)."""
    if isinstance(value, bool):
        word = "yes|true" if value else "no|false|not"
        return bool(re.search(rf"\b(?:{word})\b", text, re.I))
    if isinstance(value, (int, float)):
        prose = ID_RE.sub(" ", NATURAL_DATE_RE.sub(" ", DATETIME_RE.sub(" ", text)))
        nums = [_num(m.group(0).lstrip("+")) for m in NUMBER_RE.finditer(prose)]
        if any(n is not None and abs(n - float(value)) < 1e-9 for n in nums):
            return True
        if float(value).is_integer() and 0 <= int(value) < len(_NUMBER_WORDS):
            return bool(re.search(rf"\b{_NUMBER_WORDS[int(value)]}\b", text, re.I))
        return False
    if isinstance(value, (list, tuple)):
        return all(says_value(text, v) for v in value)
    if isinstance(value, dict):
        return all(says_value(text, v) for v in value.values())
    if value is None:
        return True
    return mentions(text, value)


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return {w[:5] for w in words if len(w) >= 4 and w not in _GENERIC}


def refusal_explained(text: str | None, refusal: dict | None, bare_name: str = "") -> bool:
    """The message refuses and refers to what is refused or why."""
    t = text or ""
    if not REFUSE_RE.search(t):
        return False
    if not refusal:
        return True
    wanted = _stems((bare_name or str(refusal.get("name", ""))).replace("_", " ")) | _stems(
        str(refusal.get("why", "")).replace("_", " ")
    )
    said = {w[:5] for w in re.findall(r"[a-z]+", t.lower()) if len(w) >= 4}
    return bool(wanted & said)


def _allowed_values(row: dict) -> list[Any]:
    scen = row.get("scenario") or {}
    vals: list[Any] = [f.get("value") for f in scen.get("known_facts") or []]
    vals.append((scen.get("persona") or {}).get("name"))
    texts = [scen.get("instruction", ""), scen.get("reason_for_call", "")]
    msgs = row.get("messages") or []
    if len(msgs) > 1:
        texts.append(msgs[1].get("content") or "")
    for t in texts:
        vals.extend(v for _, v in extract_values(t or ""))
    m = re.search(
        r"current (?:date and )?time is (\d{4}-\d{2}-\d{2}T[\d:]+Z?)", (msgs[0].get("content") or "") if msgs else ""
    )
    if m:
        vals.append(m.group(1))
    return [v for v in vals if v is not None]


def _parse_report(item: str) -> str:
    """``"'STU-31062' (id)"`` -> ``STU-31062`` (the format of grounding.ungrounded)."""
    m = re.fullmatch(r"(.*) \((\w+)\)", item)
    if not m:
        return item
    try:
        return str(ast.literal_eval(m.group(1)))
    except (ValueError, SyntaxError):
        return m.group(1)


def ungrounded_user_values(row: dict, messages: Iterable[dict]) -> list[dict]:
    """``[{"message": i, "value": text}]`` for every value a user turn states that it could
    not know (the first user message is the dataset's own and is not checked)."""
    base = _allowed_values(row)
    heard: list[str] = []
    out: list[dict] = []
    first_user = True
    for i, msg in enumerate(messages):
        role = msg.get("role")
        content = msg.get("content") if isinstance(msg.get("content"), str) else ""
        if role == "assistant" and content:
            heard.extend(v for _, v in extract_values(content))
        elif role == "tool" and content:  # what the assistant may have relayed, in any rendering
            try:
                heard.extend(flatten(json.loads(content)))
            except ValueError:
                heard.extend(v for _, v in extract_values(content))
        elif role == "user":
            if first_user:  # the dataset row's own first message
                first_user = False
                continue
            text = strip_control(content)
            if not extract_values(text):  # nothing checkable ("Yes, go ahead."): skip the costly masking
                continue
            for item in ungrounded(text, base + heard):
                out.append({"message": i, "value": _parse_report(item)})
    return out


def user_turn_before(messages: Sequence[dict], index: int) -> str | None:
    """The user message that opened the assistant turn at ``index``; None when that is the
    conversation's opening request (a request is not a confirmation)."""
    users = [j for j, m in enumerate(messages) if m.get("role") == "user"]
    before = [j for j in users if j < index]
    if not before or before[-1] == users[0]:
        return None
    c = messages[before[-1]].get("content")
    return c if isinstance(c, str) else ""


def last_assistant_text(messages: Sequence[dict]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "assistant" and isinstance(msg.get("content"), str) and msg["content"].strip():
            return msg["content"]
    return ""


def used_in_argument(value: str, arg: str) -> bool:
    """The invented ``value`` went into the argument ``arg``: verbatim, as a natural
    rendering of the date ``arg`` holds, or ``arg`` (4+ characters, not a bare number) is
    part of what the user said."""
    v, a = value.lower(), arg.lower()
    if len(v) >= 2 and v in a:
        return True
    if iso_when(arg):
        return mentions(value, arg)
    return len(a) >= 4 and not a.replace(".", "").isdigit() and a in v
