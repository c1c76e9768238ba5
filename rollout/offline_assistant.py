"""The offline assistant: a deterministic, rule-based simulator of a policy-following agent.

It is a demo and test double, not a model. :meth:`OfflineAssistant.respond` gets **only**
the conversation (OpenAI messages: the policy as the system message, user turns, its own
earlier turns, tool results) and the tools (OpenAI format) and answers the next assistant
message. It never sees the dataset row: not the golden calls, the instance, the grounding
map or the database. So the share of tasks it solves measures whether a task can be solved
from the conversation alone.

What it does, every turn re-derived from the messages (it keeps no memory of its own):

* **Authorize first**, per domain (``<Domain>__authorize_*`` before that domain's first
  tool), with the ID the user gave (the policy says what IDs look like). After a failed
  authorization it says so and calls nothing else.
* **Understand a request** from the user's words: the lead verb picks the kind of tool
  ("show me my ..." a list, "look for" a search, "check" / "pull up" a get, "how many" a
  count, any other verb the write tool of that name or a synonym), the nouns pick the
  entity (tool names, parameter names, descriptions). Arguments come from the text: IDs by
  pattern and the words before them ("instructor INS-74327"), "it" / "that ride type" /
  "the new enrollment" from earlier turns, dates in natural renderings turned into ISO,
  enum values matched to the parameter's enum ("pass fail" -> ``pass_fail``), numbers
  by the words next to them ("lasting 57 minutes", "$194.05"), quoted names, addresses,
  "to <new value>" for updates.
* **Look records up** when the user names one by its attributes ("my appointment on 28
  March 2025 at 2:00 PM UTC", "my deposit account called "Bills Account""): among the
  records already shown, else after listing them.
* **One tool call at a time**, each result reported in the next message.
* **Check a write against the policy** before asking for the go-ahead
  (:mod:`rollout.policy`: the record's status a precondition names - looked up first when
  it was not shown yet -, a date that must lie in the future, a number's range or the
  bound another record sets) and refuse a forbidden one itself, saying which rule applies.
* **Ask** for what is missing; **confirm before any write** (the action and every value)
  and write only after a "yes"; **tell** lookup answers with the values from the results;
  **decline** when a tool refuses anyway, with the tool's reason.

Mistakes (``mistake=`` one of :data:`MISTAKE_KINDS`) are injected on purpose, at most one
per episode, and recorded in :attr:`OfflineAssistant.mistakes` (see ``rollout.loop``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agentskiller.models.episodes import Mistake

from .nlu import (
    ID_EXAMPLE_RE,
    ID_RE,
    Mention,
    default_year,
    enum_mentions,
    find_addresses,
    find_dates,
    find_ids,
    find_numbers,
    find_quoted,
    is_note,
    iso_datetime,
    lead_verb,
    name_words,
    render,
    singular,
    split_requests,
    split_sentences,
    strip_lead,
    value_in_text,
    words,
)
from .policy import after, in_window, parse_policy
from .toolindex import Param, ToolInfo, index_tools, tool_schema_value_ok

#: "the street address of that hotel", "the balance of that deposit account"
_CARRY_RE = re.compile(r"\bthe ((?:[a-z]+ ){0,3}[a-z]+) of (?:that|this|the same) ([a-z]+(?: [a-z]+){0,3})")


def _prefix_in(raw: list[str], kind: set[str]) -> int:
    """How many leading words of ``raw`` are words of ``kind``."""
    n = 0
    for w in raw:
        if singular(w.lower()) not in kind:
            break
        n += 1
    return n


def _field_name(phrase: str) -> str:
    """ "scheduled time" -> ``scheduled_at``, "street address" -> ``street_address``."""
    name = "_".join(phrase.lower().split())
    return name[: -len("_time")] + "_at" if name.endswith("_time") else name


MISTAKE_KINDS = ("wrong_argument", "skipped_step", "extra_call", "premature_end", "unconfirmed_write")
NAME = "offline-assistant-v1"

# ----------------------------------------------------------------------------- lexicon
_READ_VERBS: list[tuple[str, re.Pattern]] = [
    ("count", re.compile(r"^(?:tell me |let me know |say )?how many\b|^count\b|^(?:tell me )?the number of\b", re.I)),
    (
        "total",
        re.compile(
            r"^(?:tell me |let me know )?how much\b|^(?:tell me |give me |let me know |what(?:'s| is) )?(?:the |my )?"
            r"(?:total|sum)\b|^add up\b",
            re.I,
        ),
    ),
    (
        "get",
        re.compile(
            r"^(?:check(?!(?: me)? in\b)|look up|lookup|look at|pull (?:it |them )?up|review|go over|go through|fetch|"
            r"get|view|open up|double[- ]check|verify|give me the details|show me the details|tell me about|"
            r"see the details|show me details|bring up|(?:have|take) a (?:quick )?look(?: at)?|"
            r"read (?:me )?(?:back|the details))\b",
            re.I,
        ),
    ),
    (
        "list",
        re.compile(
            r"^(?:show|list|let me see|see|display|give me|what are|which)\b|^what\b.*\b(?:do i have|are mine)\b", re.I
        ),
    ),
    ("search", re.compile(r"^(?:look for|search|find|browse|look up all)\b", re.I)),
]
#: verbs that mean the same kind of change; a tool named with one answers to the others
_UPDATE_VERBS = {"change", "modify", "amend", "update", "reschedule", "rename", "edit", "move", "adjust", "alter"}
_CREATE_VERBS = {
    "book", "make", "create", "submit", "request", "open", "purchase", "enroll", "reserve", "arrange", "schedule",
    "order", "buy", "register", "apply", "place", "add", "sign",
}  # fmt: skip
_SYNONYMS: dict[str, set[str]] = {
    **{v: _UPDATE_VERBS - {v} for v in _UPDATE_VERBS},
    **{v: _CREATE_VERBS - {v} for v in _CREATE_VERBS},
    "set up": set(_CREATE_VERBS),
    "pick": {"confirm pickup"},
    "collect": {"confirm pickup"},
    "confirm": {"confirm pickup"},
    "unenroll": {"drop"},
    "leave": {"drop"},
    "call": {"cancel"},
    "delete": {"cancel", "close", "withdraw", "drop"},
    "remove": {"cancel", "drop", "withdraw"},
    "terminate": {"close", "cancel"},
    "retract": {"withdraw"},
    "block": {"freeze"},
    "suspend": {"freeze"},
}
_PAST = {
    "cancel": "cancelled",
    "drop": "dropped",
    "book": "booked",
    "enroll": "enrolled",
    "check in": "checked in",
    "submit": "submitted",
    "withdraw": "withdrew",
    "refund": "refunded",
    "freeze": "froze",
    "close": "closed",
    "open": "opened",
    "make": "made",
    "request": "requested",
    "purchase": "purchased",
    "rename": "renamed",
    "reschedule": "rescheduled",
    "change": "changed",
    "modify": "modified",
    "amend": "amended",
    "confirm pickup": "confirmed the pickup of",
}
#: phrasal verbs whose first word is a write verb but which ask for no change
_NO_WRITE_PHRASES = {"add up", "make sure", "bring up", "look up", "pull up", "pull it up", "pull them up", "go over"}
_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|sure|correct|confirm(?:ed)?|go ahead|please do|that'?s right|ok(?:ay)?|right)\b", re.I
)
_NO = re.compile(r"^\W*(?:no|nope|don'?t|do not|wait|stop|that'?s (?:not|wrong))\b", re.I)
_ANAPHORA = re.compile(
    r"\b(?:it|its|that one|this one|them|the same one|(?:that|this|the same|the new|the newly \w+) [a-z]+(?: [a-z]+)?|"
    r"(?:the )?[a-z]+(?: [a-z]+)? (?:you just|i just|we just) (?:made|created|booked|opened|submitted|requested))\b",
    re.I,
)
#: a request for a value ("tell me the date of birth", "let me know the agenda", "what I need
#: to find out is the fare"; "I'd like to" is stripped before)
_ASK_VALUE = re.compile(
    r"^(?:tell me|let me know|know|find out|what i need to (?:find out|know) is|what(?:'s| is| are))\s+"
    r"((?:the|my|its)\b.+)$",
    re.I,
)
_PROPOSAL_RE = re.compile(r"`([A-Za-z0-9_]+)` (\{.*?\})\)?\.? Shall I go ahead", re.S)
#: what people count a parameter's units in ("a party of 4" are 4 guests)
_COUNT_NOUNS = {
    "guest": {"party", "people", "person", "adult", "traveler", "traveller"},
    "passenger": {"party", "people", "person", "rider"},
    "seat": {"party", "people", "person"},
    "quantity": {"unit", "pill", "tablet", "capsule", "dose", "item"},
    "duration": {"minute", "hour"},
    "night": {"night"},
}
_CITY_RE = re.compile(r"\bin ((?:[A-Z][a-z]+)(?: [A-Z][a-z]+){0,3})\b")


@dataclass
class Call:
    name: str
    arguments: dict


@dataclass
class Decision:
    kind: str  # call | propose | ask | say | done
    call: Call | None = None
    text: str = ""
    tool: ToolInfo | None = None


@dataclass
class _CallLog:
    index: int  # message index of the assistant message
    call_id: str
    name: str
    arguments: dict
    ok: bool | None = None  # None: no result yet
    result: Any = None
    error: str | None = None


@dataclass
class _Record:
    id_field: str
    value: str
    record: dict
    index: int  # message index of the tool result
    call_pos: int  # position in the call log


@dataclass
class _Resolved:
    args: dict = field(default_factory=dict)
    missing: list[Param] = field(default_factory=list)
    #: a list call needed first to find the record the user described
    lookup: Call | None = None
    ambiguous: list[str] = field(default_factory=list)


def _is_yes(text: str) -> bool:
    return bool(_YES.search(text)) and not _NO.search(text)


def _is_no(text: str) -> bool:
    return bool(_NO.search(text))


def _parse_tool_content(content: Any) -> tuple[bool, Any, str | None]:
    try:
        value = json.loads(content) if isinstance(content, str) else content
    except ValueError:
        return True, content, None
    if isinstance(value, dict) and set(value) == {"error"}:
        return False, None, str(value["error"])
    return True, value, None


def _plural(phrase: str) -> str:
    if phrase.endswith("s"):
        return phrase
    if phrase.endswith("y") and not phrase.endswith(("ay", "ey", "oy")):
        return phrase[:-1] + "ies"
    return phrase + "s"


def _fmt_record(rec: dict, skip: set[str]) -> str:
    return ", ".join(f"{k}: {render(v)}" for k, v in rec.items() if k not in skip)


class _Readings:
    """The tool index and the policy's rules, read once per episode rather than on every turn
    (both are rebuilt from what the assistant is shown: a different tool list or system
    message is read again). Neither result is changed after it is built."""

    def __init__(self) -> None:
        self._tools: tuple[str, list[ToolInfo]] | None = None
        self._rules: tuple[str, dict] | None = None

    def tools(self, tools: list[dict]) -> list[ToolInfo]:
        key = json.dumps(tools, sort_keys=True, default=str)
        if self._tools is None or self._tools[0] != key:
            self._tools = (key, index_tools(tools))
        return self._tools[1]

    def rules(self, policy: str) -> dict:
        if self._rules is None or self._rules[0] != policy:
            self._rules = (policy, parse_policy(policy))
        return self._rules[1]


class Conversation:
    """Everything the assistant knows, read off the messages."""

    def __init__(self, messages: list[dict], tools: list[dict], read: _Readings | None = None) -> None:
        self.messages = messages
        read = read or _Readings()
        self.tools = read.tools(tools)
        self.by_name = {t.name: t for t in self.tools}
        self.policy = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
        self.year = default_year(self.policy)
        self.auth_tools = {t.domain: t for t in self.tools if t.kind == "auth"}
        auth = next(iter(self.auth_tools.values()), None)
        self.id_param: Param | None = None
        if auth is not None:
            req = [p for p in auth.params.values() if p.required] or list(auth.params.values())
            self.id_param = req[0] if req else None
        self.id_prefixes = {m.split("-")[0] for m in ID_EXAMPLE_RE.findall(self.policy) if "-" in m}
        self.rules = read.rules(self.policy)
        self.calls: list[_CallLog] = []
        self.records: dict[str, dict[str, _Record]] = {}
        self.last_ids: dict[str, tuple[int, str]] = {}
        self.prefixes: dict[str, set[str]] = {}
        self.user_id: str | None = None
        self.authorized: set[str] = set()
        self.auth_failed: tuple[str, str] | None = None  # (id, error)
        self._scan()

    # -- reading the history ---------------------------------------------------------
    def _note_id(self, fieldname: str, value: Any, index: int) -> None:
        if not isinstance(value, str) or not value:
            return
        self.last_ids[fieldname] = (index, value)
        if "-" in value:
            self.prefixes.setdefault(fieldname, set()).add(value.split("-")[0])

    def _own_id_field(self, tool: ToolInfo | None, rec: dict) -> str | None:
        keys = [k for k in rec if k.endswith("_id") and isinstance(rec[k], str)]
        if not keys:
            return None
        if tool is not None and tool.target and tool.target in rec:
            return tool.target
        toks = tool.entity_tokens() if tool is not None else set()
        return max(keys, key=lambda k: (len(set(name_words(k[:-3])) & toks), -len(k)))

    def _store(self, tool: ToolInfo | None, result: Any, index: int, pos: int) -> None:
        recs = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
        recs = [r for r in recs if isinstance(r, dict)]
        for rec in recs:
            own = self._own_id_field(tool, rec)
            if own is None:
                continue
            self.records.setdefault(own, {})[rec[own]] = _Record(own, rec[own], rec, index, pos)
            if "-" in rec[own]:
                self.prefixes.setdefault(own, set()).add(rec[own].split("-")[0])
            if len(recs) == 1:
                for k, v in rec.items():
                    if k.endswith("_id") and (self.id_param is None or k != self.id_param.name):
                        self._note_id(k, v, index)

    def _scan(self) -> None:
        pending: dict[str, _CallLog] = {}
        for i, m in enumerate(self.messages):
            role = m.get("role")
            if role == "user":
                text = m.get("content") or ""
                for ident in find_ids(text):
                    if self._is_user_id(ident.value, text, ident.start):
                        # the latest one counts; after a failed authorization there is no
                        # second try whatever the user says (policy)
                        self.user_id = ident.value
                        continue
                    for f, prefs in self.prefixes.items():
                        if ident.value.split("-")[0] in prefs:
                            self._note_id(f, ident.value, i)
            elif role == "assistant":
                for c in m.get("tool_calls") or []:
                    fn = c.get("function") or {}
                    try:
                        args = json.loads(fn.get("arguments") or "{}")
                    except ValueError:
                        args = {}
                    log = _CallLog(i, c.get("id", ""), fn.get("name", ""), args if isinstance(args, dict) else {})
                    self.calls.append(log)
                    pending[log.call_id] = log
                    tool = self.by_name.get(log.name)
                    for k, v in log.arguments.items():
                        if k.endswith("_id") and (tool is None or tool.kind != "auth"):
                            self._note_id(k, v, i)
            elif role == "tool":
                log = pending.pop(m.get("tool_call_id", ""), None)
                if log is None:
                    continue
                ok, value, error = _parse_tool_content(m.get("content"))
                log.ok, log.result, log.error = ok, value, error
                tool = self.by_name.get(log.name)
                if tool is not None and tool.kind == "auth":
                    if ok:
                        self.authorized.add(tool.domain)
                    else:
                        self.auth_failed = (str(next(iter(log.arguments.values()), "")), error or "")
                elif ok:
                    self._store(tool, value, i, len(self.calls) - 1)

    def carried_mentions(self, text: str) -> list[tuple[int, int, str, list[str]]]:
        """``(start, end, field words, record noun)`` of every "the <field> of that <record>"
        in ``text``; the noun is as many words as name a kind of record shown so far ("that
        mentor session lasting 45 minutes" -> mentor session)."""
        kinds = [set(name_words(f)) for f in self.records] or [set()]
        out = []
        for m in _CARRY_RE.finditer(text):
            raw = m.group(2).split()
            n = max(_prefix_in(raw, k) for k in kinds) or 1
            end = m.start(2) + len(" ".join(raw[:n]))
            out.append((m.start(), end, m.group(1), words(" ".join(raw[:n]))))
        return out

    def strip_carried(self, text: str) -> str:
        for start, end, _f, _n in reversed(self.carried_mentions(text)):
            text = text[:start] + " " + text[end:]
        return text

    def _is_user_id(self, value: str, text: str, start: int) -> bool:
        if self.id_param is None:
            return False
        if self.id_prefixes:
            return value.split("-")[0] in self.id_prefixes
        before = set(words(text[max(0, start - 40) : start]))
        return bool(before & set(self.id_param.entity))

    # -- requests ----------------------------------------------------------------------
    def analyze(self, clause: str) -> tuple[str, ToolInfo | None, str]:
        """``(kind group, tool, verb)`` for one request clause (tool None: no tool fits)."""
        # a value named by its source ("to the street address of that hotel") says where a
        # value comes from, not which record the request is about
        body = self.strip_carried(strip_lead(clause))
        low = body.lower()
        cwords = set(words(body))
        # "I need a ride ...", "I'd like a new appointment ...": a wish for something new
        wish = re.match(
            r"(?:i (?:need|want|would like)|i'?d like|get me|can i (?:get|have)|i'?m looking for)\s+(?:a|an|another|one)\b",
            low,
        )
        if wish:
            low = "request " + low[wish.end() :].strip()
        m = re.match(r"([a-z]+)(?:\s+(?:me\s+)?(in|up)\b)?", low)
        first = m.group(1) if m else ""
        verb = "check in" if m and first == "check" and m.group(2) == "in" else first
        if first == "confirm" and re.match(r"confirm (?:the )?pick ?up", low):
            verb = "confirm pickup"
        if first == "pick" and m and m.group(2) == "up":
            verb = "confirm pickup"
        phrasal = lead_verb(low)
        if phrasal == "set up" or phrasal in _NO_WRITE_PHRASES:
            verb = phrasal  # "set up a meeting" books; "add up", "make sure", "bring up" change nothing
        writes = [t for t in self.tools if t.is_write]
        write_verbs = {t.verb for t in writes}
        if verb in write_verbs or _SYNONYMS.get(verb, set()) & write_verbs:
            scored = []
            for t in writes:
                score = 5.0 if t.verb == verb else 2.0 if t.verb in _SYNONYMS.get(verb, set()) else 0.0
                if score == 0:
                    continue
                score += 2 * len(cwords & t.entity_tokens())
                fields = [p for p in t.params.values() if not p.is_id and (t.kind != "update" or p.new_value)]
                score += sum(0.5 for p in fields if set(name_words(p.name)) & cwords)
                scored.append((score, t))
            best = None
            if scored:
                top = max(x[0] for x in scored)
                tied = [t for sc, t in scored if sc == top]
                # "cancel it": the kind of record talked about last
                best = max(tied, key=lambda t: self.last_ids.get(t.target or "", (-1, ""))[0])
            if best is not None:
                return "write", best, verb
        for group, rx in _READ_VERBS:
            if rx.search(low):
                kinds = {"list": ("list", "search"), "search": ("search", "list"), "get": ("get", "profile")}.get(
                    group, (group,)
                )
                if group == "list" and re.search(r"\bdetails?\b", low) and re.search(r"\b(?:my|the) [a-z ]+?\b", low):
                    kinds = ("get", "list", "search") if find_ids(body) else kinds
                if group == "get" and not find_ids(body) and self._names_many(low):
                    kinds = ("list", "search")  # "pull up my scheduled appointments"
                cands = [t for t in self.tools if t.kind in kinds]
                if not cands:
                    continue
                mine = bool(re.search(r"\bmy\b|\bi have\b", low))

                def score(t: ToolInfo, kinds: tuple = kinds, mine: bool = mine) -> float:
                    s = 3.0 * len(cwords & t.entity_tokens()) + 0.5 * len(cwords & t.desc_tokens())
                    if t.kind == kinds[0]:
                        s += 0.5
                    if t.kind == "list" and mine:
                        s += 1.0
                    if t.kind == "search" and not mine:
                        s += 1.0
                    return s

                best = max(cands, key=score)
                if score(best) >= 3.0:
                    return group, best, first
        return "none", None, verb

    def _names_many(self, low: str) -> bool:
        """The clause names records in the plural ("my appointments", "them") that a list
        tool shows."""
        if re.search(r"\bthem\b", low):
            return True
        listed = {w for t in self.tools if t.kind in ("list", "search") for w in t.entity_tokens()}
        return any(
            w.endswith("s") and singular(w) != w and singular(w) in listed
            for w in re.findall(r"\b(?:my|all|the|those|these)\s+(?:[a-z]+\s+){0,3}?([a-z]+s)\b", low)
        )

    def is_request(self, text: str) -> bool:
        return any(self.analyze(c)[1] is not None for c in request_clauses(text))

    # -- resolving arguments ------------------------------------------------------------
    def records_of(self, id_field: str) -> list[_Record]:
        return sorted(self.records.get(id_field, {}).values(), key=lambda r: (r.call_pos, r.index))

    def list_tool_for(self, tool: ToolInfo, id_field: str) -> ToolInfo | None:
        toks = set(name_words(id_field[:-3]))
        cands = [t for t in self.tools if t.kind == "list" and t.domain == tool.domain]
        if not cands:
            return None
        best = max(cands, key=lambda t: len(toks & t.entity_tokens()))
        return best if toks & best.entity_tokens() else None

    def prefix_field(self, value: str) -> set[str]:
        pre = value.split("-")[0]
        return {f for f, ps in self.prefixes.items() if pre in ps}


def _label_words(label: str) -> set[str]:
    """``"the date of birth"`` / ``date_of_birth`` -> ``{"date", "birth"}`` (articles and
    possessives dropped; "number" and "id" kept: a student number is no student ID)."""
    toks = re.findall(r"[a-z]+", label.lower().replace("_", " "))
    return {singular(t) for t in toks if t not in {"the", "a", "an", "my", "your", "its", "of", "for"}}


def request_clauses(text: str) -> list[str]:
    """The requests of a user message: its sentences, cut at joiners ("pull it up and then
    cancel it"); greetings and the introduction are left out by the caller's analysis."""
    return [c for s in split_sentences(text) for c in split_requests(s)]


# ----------------------------------------------------------------------------- planner
class Planner:
    def __init__(self, conv: Conversation) -> None:
        self.c = conv
        #: what the request's message adds about its records and values ("The appointment I
        #: mean is the one on June 6.", "Please make sure the visit reason is cleaning.")
        self.notes = ""
        self.value_notes = ""

    # the request the assistant is serving: the last user message that asks for something
    def _request(self) -> tuple[int | None, list[tuple[str, ToolInfo]]]:
        msgs = self.c.messages
        first_user = next((i for i, m in enumerate(msgs) if m.get("role") == "user"), None)
        for i in range(len(msgs) - 1, -1, -1):
            m = msgs[i]
            if m.get("role") != "user":
                continue
            text = m.get("content") or ""
            if _is_yes(text) and not self._has_values(text):
                continue
            clauses = []
            notes: list[str] = []
            for s in request_clauses(text):
                if is_note(s):  # "The appointment I mean is the one on June 6.": about the request before
                    notes.append(s)
                    continue
                group, tool, _ = self.c.analyze(s)
                if tool is not None:
                    clauses.append((s, tool))
            if not clauses:
                continue
            self.notes = " ".join(notes)
            self.value_notes = " ".join(n for n in notes if is_note(n) == "value")
            # The opening line is often a vague wish ("I need to cancel my appointment"):
            # act on it only when it names something concrete.
            if i == first_user and not self._has_values(text):
                return None, []
            return i, clauses
        return None, []

    def _intent_domain(self) -> str | None:
        """The domain the opening line is about ("I'd like to book a mentor session")."""
        first = next((m for m in self.c.messages if m.get("role") == "user"), None)
        for s in request_clauses((first or {}).get("content") or ""):
            _group, tool, _verb = self.c.analyze(s)
            if tool is not None and tool.kind != "auth" and tool.domain in self.c.auth_tools:
                return tool.domain
        return None

    def _has_values(self, text: str) -> bool:
        ids = [m for m in find_ids(text) if m.value != self.c.user_id]
        return bool(ids or find_quoted(text) or find_dates(text, self.c.year))

    def _answers_after(self, index: int) -> str:
        out = []
        for m in self.c.messages[index + 1 :]:
            if m.get("role") == "user":
                t = m.get("content") or ""
                if not (_is_yes(t) and not self._has_values(t)) and not _is_no(t):
                    out.append(t)
        return " ".join(out)

    def _needs_auth(self, domain: str) -> Decision | None:
        if domain in self.c.authorized or domain not in self.c.auth_tools:
            return None
        auth = self.c.auth_tools[domain]
        if self.c.user_id is None:
            return Decision("ask", text=self._ask_id_text())
        pname = self.c.id_param.name if self.c.id_param else next(iter(auth.params))
        return Decision("call", Call(auth.name, {pname: self.c.user_id}), tool=auth)

    def _ask_id_text(self) -> str:
        label = self.c.id_param.label() if self.c.id_param else "customer ID"
        return f"I'd be happy to help. First I need to verify your identity: could you please tell me your {label}?"

    def decide(self) -> Decision:
        c = self.c
        if c.auth_failed is not None:
            return Decision("say", text="")  # the caller words the failure
        req_i, clauses = self._request()
        if req_i is None:
            first_domain = self._intent_domain() or next(iter(c.auth_tools), None)
            if first_domain is not None:
                need = self._needs_auth(first_domain)
                if need is not None:
                    return need
            return self._tell_values() or Decision("done")
        answers = _join(self.notes, self._answers_after(req_i))
        cursor = next((k for k, log in enumerate(c.calls) if log.index > req_i), len(c.calls))
        for clause, tool in clauses:
            need, cursor = self._clause(clause, tool, answers, req_i, cursor)
            if need.kind != "done":
                return need
        return self._tell_values() or Decision("done")

    # -- "Please tell me the date of birth.": a value of a record already shown -------------
    def _tell_values(self) -> Decision | None:
        """The values the latest user message asks for, from the latest tool result that has
        them (None when it asks for none, or they were not shown yet)."""
        c = self.c
        last_user = next((i for i in range(len(c.messages) - 1, -1, -1) if c.messages[i].get("role") == "user"), None)
        if last_user is None or any(
            m.get("role") == "assistant" and not m.get("tool_calls") for m in c.messages[last_user:]
        ):
            return None  # answered already
        labels = []
        for clause in request_clauses(c.messages[last_user].get("content") or ""):
            m = _ASK_VALUE.match(strip_lead(clause))
            if m and c.analyze(clause)[1] is None:
                labels += [x for x in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(1).rstrip(".?! ")) if x.strip()]
        if not labels:
            return None
        told = []
        for label in labels:
            want = _label_words(label)
            if not want:
                continue
            hit = None
            for log in reversed(c.calls):
                recs = log.result if isinstance(log.result, list) else [log.result]
                recs = [r for r in recs if isinstance(r, dict)]
                if not log.ok or len(recs) != 1:
                    continue
                keys = [k for k, v in recs[0].items() if not isinstance(v, (dict, list)) and _label_words(k) == want]
                if keys:
                    hit = (keys[0], recs[0][keys[0]])
                    break
            if hit is None:
                return None
            told.append(f"the {hit[0].replace('_', ' ')} is {render(hit[1])}")
        text = "; ".join(told)
        return Decision("say", text=text[:1].upper() + text[1:] + ".") if told else None

    def _find_call(self, name: str, start: int, args: dict | None = None) -> int | None:
        for k in range(start, len(self.c.calls)):
            log = self.c.calls[k]
            if log.name == name and (args is None or log.arguments == args):
                return k
        return None

    def _clause(self, clause: str, tool: ToolInfo, answers: str, req_i: int, cursor: int) -> tuple[Decision, int]:
        c = self.c
        # already done: the clause's tool was called after the request
        done_at = self._find_call(tool.name, cursor)
        if done_at is not None and c.calls[done_at].ok is not None:
            return Decision("done"), done_at + 1
        need = self._needs_auth(tool.domain)
        if need is not None:
            return need, cursor
        res = self.resolve(tool, clause, answers, cursor)
        if res.lookup is not None:
            if self._find_call(res.lookup.name, cursor, res.lookup.arguments) is None:
                return Decision("call", res.lookup, tool=c.by_name[res.lookup.name]), cursor
        if res.ambiguous:
            return Decision("ask", text=res.ambiguous[0], tool=tool), cursor
        if res.missing:
            return Decision("ask", text=self._ask_text(tool, res.missing), tool=tool), cursor
        call = Call(tool.name, res.args)
        if not tool.is_write:
            return Decision("call", call, tool=tool), cursor
        verdict = self._check_policy(tool, call, cursor)
        if verdict is not None:
            return verdict, cursor
        if self._rejections(call) >= 2:
            text = "I'm sorry, I can't work out the change you want; please contact us again with the details."
            return Decision("ask", text=text, tool=tool), cursor
        state = self._confirmation(call, req_i)
        if state == "yes":
            return Decision("call", call, tool=tool), cursor
        if state == "no":
            return Decision("ask", text="I'm sorry about that. What would you like me to change?", tool=tool), cursor
        return Decision("propose", call, tool=tool), cursor

    # -- the policy's write rules ------------------------------------------------------
    def _record(self, id_field: str, value: Any) -> dict | None:
        r = self.c.records.get(id_field, {}).get(value) if isinstance(value, str) else None
        return r.record if r is not None else None

    def _fetch(self, domain: str, id_field: str, value: Any) -> Decision | str | None:
        """A get call for a record the rules need (None: no tool to get it; "failed": the
        get was made and failed)."""
        gets = [t for t in self.c.tools if t.kind == "get" and t.target == id_field]
        gets.sort(key=lambda t: t.domain != domain)
        if not gets or not isinstance(value, str):
            return None
        need = self._needs_auth(gets[0].domain)
        if need is not None:
            return need
        for log in self.c.calls:
            if log.name in {g.name for g in gets} and log.arguments.get(id_field) == value and log.ok is False:
                return "failed"
        return Decision("call", Call(gets[0].name, {id_field: value}), tool=gets[0])

    def _check_policy(self, tool: ToolInfo, call: Call, cursor: int) -> Decision | None:
        """A get the check needs first, or a refusal the policy requires, or None."""
        rules = self.c.rules.get(tool.name) or self.c.rules.get(tool.base)
        if rules is None:
            return None
        words_ = Wording(self.c)
        ent = words_.entity_name(tool)
        verb = tool.verb
        args = call.arguments
        target_rec = None
        if tool.target:
            rid = args.get(tool.target)
            target_rec = self._record(tool.target, rid)
            needs_target = (
                any(f == tool.target for f, _, _ in rules.preconditions)
                or any(f not in args for _, f, _ in rules.bounds)
                or any(w[0] == tool.target for w in rules.windows)
            )
            if target_rec is None and needs_target:
                got = self._fetch(tool.domain, tool.target, rid)
                if isinstance(got, Decision):
                    return got
                if got == "failed":
                    return Decision("refuse", text=f"I'm sorry, I can't {verb} the {ent} {rid}: I could not find it.")
            for id_field, fieldname, allowed in rules.preconditions:
                if id_field != tool.target or target_rec is None or fieldname not in target_rec:
                    continue
                have = target_rec[fieldname]
                if str(have) not in allowed:
                    return Decision(
                        "refuse",
                        text=f"I'm sorry, I can't {verb} the {ent} {rid}: its {fieldname} is {render(have)}, and the "
                        f"policy allows this only when the {fieldname} is {' or '.join(allowed)}.",
                    )
        for id_field, column, hours, now, whole_day in rules.windows:
            if id_field != tool.target or target_rec is None or not isinstance(target_rec.get(column), str):
                continue
            when = target_rec[column]
            if not in_window(when, now, hours, whole_day):
                return Decision(
                    "refuse",
                    text=f"I'm sorry, I can't {verb} the {ent} {args.get(tool.target)}: check-in opens {render(hours)} "
                    f"hours before its {column.replace('_', ' ')} ({when}), and it is now {now}.",
                )
        for param, now in rules.future.items():
            v = args.get(param)
            if isinstance(v, str) and v and not after(v, now):
                return Decision(
                    "refuse",
                    text=f"I'm sorry, I can't {verb} the {ent}: the {param.replace('_', ' ')} {v} is not after the "
                    f"current time ({now}); the policy only allows a time in the future.",
                )
        for param, (lo, hi) in rules.ranges.items():
            v = args.get(param)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
                return Decision(
                    "refuse",
                    text=f"I'm sorry, I can't {verb} the {ent}: the {param.replace('_', ' ')} {render(v)} is outside "
                    f"the allowed range of {render(lo)} to {render(hi)}.",
                )
        for param, id_field, fieldname in rules.bounds:
            v = args.get(param)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            chosen = args.get(id_field) or (target_rec or {}).get(id_field)
            rec = self._record(id_field, chosen)
            if rec is None:
                got = self._fetch(tool.domain, id_field, chosen)
                if isinstance(got, Decision):
                    return got
                continue
            limit = rec.get(fieldname)
            if isinstance(limit, (int, float)) and v > limit:
                return Decision(
                    "refuse",
                    text=f"I'm sorry, I can't {verb} the {ent}: the {param.replace('_', ' ')} {render(v)} exceeds the "
                    f"{fieldname.replace('_', ' ')} ({render(limit)}) of {' '.join(name_words(id_field[:-3]))} {chosen}.",
                )
        for param in rules.not_empty:
            v = args.get(param)
            if isinstance(v, str) and not v.strip():
                return Decision("refuse", text=f"I'm sorry, I can't {verb} the {ent}: the {param} must not be empty.")
        return None

    def _rejections(self, call: Call) -> int:
        n = 0
        msgs = self.c.messages
        for i, m in enumerate(msgs):
            p = _PROPOSAL_RE.search(m.get("content") or "") if m.get("role") == "assistant" else None
            if p is None or p.group(1) != call.name:
                continue
            reply = next((x for x in msgs[i + 1 :] if x.get("role") == "user"), None)
            if reply is not None and _is_no(reply.get("content") or ""):
                n += 1
        return n

    def _confirmation(self, call: Call, req_i: int) -> str | None:
        """``yes`` / ``no`` when this exact call was proposed after the request and the
        user answered, else None."""
        msgs = self.c.messages
        for i in range(len(msgs) - 1, req_i, -1):
            m = msgs[i]
            if m.get("role") != "assistant" or not m.get("content"):
                continue
            p = _PROPOSAL_RE.search(m["content"])
            if p is None:
                continue
            try:
                args = json.loads(p.group(2))
            except ValueError:
                continue
            if p.group(1) != call.name or args != call.arguments:
                continue
            reply = next((x for x in msgs[i + 1 :] if x.get("role") == "user"), None)
            if reply is None:
                return None
            text = reply.get("content") or ""
            if _is_no(text):
                return "no"
            return "yes" if _is_yes(text) else None
        return None

    def _ask_text(self, tool: ToolInfo, missing: list[Param]) -> str:
        labels = []
        for p in missing:
            if p.is_id:
                labels.append(f"the {' '.join(p.entity)} ID")
            elif p.fmt in ("date-time",):
                labels.append(f"the {p.desc.lower() or p.label()} (date and time)")
            elif p.enum:
                labels.append(f"the {p.label()} ({', '.join(map(str, p.enum))})")
            else:
                labels.append(f"the {p.label()}")
        return f"Could you please tell me {' and '.join(labels)}?"

    # -- arguments ---------------------------------------------------------------------
    def resolve(self, tool: ToolInfo, clause: str, answers: str, cursor: int) -> _Resolved:
        c = self.c
        out = _Resolved()
        body = strip_lead(clause)
        has_new = tool.kind == "update"
        target_part, new_part = body, body
        if has_new:
            k = body.lower().rfind(" to ")
            colon = list(re.finditer(r":\s", body))
            if k >= 0:
                target_part, new_part = body[:k], body[k + 4 :]
            elif colon:  # "change where my ride drops me off: 564 Vance Points"
                target_part, new_part = body[: colon[-1].start()], body[colon[-1].end() :]
            else:
                new_part = ""
        new_part = new_part.strip().rstrip(".!?").strip()
        params = list(tool.params.values())
        id_params = [p for p in params if p.is_id]
        # --- IDs stated in the text
        ids: list[tuple[Mention, str]] = []
        for text in (body, answers) if answers else (body,):
            for m in find_ids(text):
                if m.value == c.user_id:
                    continue
                ids.append((m, text))
        if c.id_param is not None and c.user_id and c.id_param.name in tool.params:
            out.args[c.id_param.name] = c.user_id
        others = [p for p in id_params if c.id_param is None or p.name != c.id_param.name]
        # "that loan officer", "the new enrollment": an earlier record, not an ID in the text
        for p in others:
            if p.name == tool.target or p.name not in c.last_ids:
                continue
            if re.search(rf"\b(?:that|this|the same|the new)\s+{re.escape(' '.join(p.entity))}\b", body, re.I):
                out.args[p.name] = c.last_ids[p.name][1]
        pairs = []
        for p in others:
            if p.name in out.args:
                continue
            for j, (m, text) in enumerate(ids):
                s = 0.0
                fields = c.prefix_field(m.value)
                if p.name in fields:
                    s += 4
                elif fields and m.value.split("-")[0] not in (c.prefixes.get(p.name) or {m.value.split("-")[0]}):
                    s -= 2  # a known ID of another kind of record
                before = words(text[max(0, m.start - 40) : m.start])[-3:]
                s += 2 * len(set(before) & set(p.entity))
                if before and before[-1] in p.entity:
                    s += 1  # "instructor INS-1": the noun right before the ID
                if p.name == tool.target and text is body:
                    s += 0.5
                if s > 0:
                    pairs.append((s, -j, p.name, m.value))
        used: set[str] = set()
        for _s, _j, pname, value in sorted(pairs, reverse=True):
            if pname in out.args or value in used:
                continue
            out.args[pname] = value
            used.add(value)
        unresolved = [p for p in others if p.name not in out.args]
        free = [m for m, _t in ids if m.value not in used and m.value not in out.args.values()]
        free = list({m.value: m for m in free}.values())
        if len(unresolved) == 1 and len(free) == 1 and not c.prefix_field(free[0].value) - {unresolved[0].name}:
            out.args[unresolved[0].name] = free[0].value
        # --- the record the request is about, when no ID was given
        if tool.target and tool.target not in out.args:
            self._find_target(tool, target_part, answers, cursor, out)
        # --- other ID parameters by reference ("that instructor", "the new enrollment")
        for p in id_params:
            if p.name in out.args or p.name == tool.target or (c.id_param is not None and p.name == c.id_param.name):
                continue
            if re.search(rf"\b(?:that|this|the same|the new|the)\s+{re.escape(' '.join(p.entity))}\b", body, re.I) or (
                re.search(rf"\b{re.escape(p.entity[-1])}\b", body, re.I) and p.name in c.last_ids
            ):
                if p.name in c.last_ids:
                    out.args[p.name] = c.last_ids[p.name][1]
        # --- values an earlier result holds ("set to the street address of that hotel")
        carried = self._carried_values(tool, body, out)
        # --- values
        exclude = [(m.start, m.end) for m in find_ids(body)]
        dates_all = find_dates(body, c.year)
        exclude += [(d.start, d.end) for d in dates_all]
        quoted_all = find_quoted(body)
        exclude += [(q.start, q.end) for q in quoted_all]
        addresses_all = find_addresses(body, exclude)
        rest = self.c.strip_carried(new_part).strip(" ,.;") if carried else new_part
        if has_new and rest:
            kept = dict(out.args)
            self._update_values(tool, target_part, rest, out)
            out.args.update({k: kept[k] for k in carried})  # a carried value stays
            if self.value_notes and not any(p.new_value and p.name in out.args for p in params):
                # "Also, please set the channel to video.": the value after "to" / "is" / "should be"
                for note in split_sentences(self.value_notes):
                    m = re.search(r"\b(?:to|is|are|should be)\s+(.+)$", note)
                    if m:
                        self._update_values(tool, note[: m.start()], m.group(1).rstrip(".?! "), out)
        for p in params:
            if p.is_id or p.name in out.args or (has_new and p.new_value):
                continue
            part = body
            value = self._value(tool, p, part, body, addresses_all)
            if value is None and answers and p.required:
                value = self._value(tool, p, answers, answers, find_addresses(answers))
            if value is None and self.value_notes:  # "Please make sure the visit reason is cleaning."
                value = self._value(tool, p, self.value_notes, self.value_notes, find_addresses(self.value_notes))
            if value is not None and tool_schema_value_ok(p, value, bounds=False):
                out.args[p.name] = value
        for p in params:
            if p.required and p.name not in out.args and p not in out.missing:
                out.missing.append(p)
        if has_new and not any(p.new_value and p.name in out.args for p in params):
            out.missing.extend(p for p in params if p.new_value and not p.required)
        return out

    def _carried_values(self, tool: ToolInfo, body: str, out: _Resolved) -> set[str]:
        """Arguments the user names by where they come from, not by value: "the <field> of
        that <record>" is that field of the record an earlier tool result showed (the
        latest one of that kind), given to the parameter of this tool the words around it
        name (else the only one of a fitting type). What a real model does with the
        results it has seen; the user never says the value itself."""
        filled: set[str] = set()
        for start, end, phrase, noun in self.c.carried_mentions(body):
            if not noun:
                continue
            names = [_field_name(phrase), "_".join(phrase.lower().split())]
            found = [(n, r) for n in names if (r := self._latest_record(n, noun)) is not None]
            if not found:
                continue
            field_name, rec = found[0]
            value = rec.record[field_name]
            around = set(words(body[max(0, start - 60) : start])) | set(words(body[end : end + 40]))
            fits = [
                p
                for p in tool.params.values()
                if not p.is_id and p.name not in out.args and tool_schema_value_ok(p, value, bounds=False)
            ]
            if not fits:
                continue
            best = max(fits, key=lambda p: (len(set(name_words(p.name)) & around), p.name == field_name))
            if len(fits) > 1 and not set(name_words(best.name)) & around:
                continue  # which parameter it is for is not said
            out.args[best.name] = value
            filled.add(best.name)
        return filled

    def _latest_record(self, field_name: str, noun: list[str]) -> _Record | None:
        """The most recently shown record whose kind ``noun`` names and that has ``field_name``."""
        best: _Record | None = None
        for id_field, recs in self.c.records.items():
            kind = set(name_words(id_field))
            if not kind or noun[-1] not in kind:
                continue
            for r in recs.values():
                if r.record.get(field_name) is None:
                    continue
                if best is None or (r.call_pos, r.index) > (best.call_pos, best.index):
                    best = r
        return best

    def _update_values(self, tool: ToolInfo, target_part: str, new_part: str, out: _Resolved) -> None:
        """An update changes the field the user names ("the number of guests ... to 3"),
        to the value after "to"; without a named field, the one whose type fits."""
        news = [p for p in tool.params.values() if p.new_value]
        if not news or not new_part:
            return

        def named_in(text: str) -> list[Param]:
            tw = set(words(text))
            hits = [p for p in news if set(name_words(p.name)) & tw or (set(words(p.desc)) - {"new", "value"}) & tw]
            if len(hits) > 1:  # the most words in common
                top = max(len(set(name_words(p.name)) & tw) for p in hits)
                hits = [p for p in hits if len(set(name_words(p.name)) & tw) == top]
            return hits

        named = named_in(new_part) + [p for p in named_in(target_part) if p not in named_in(new_part)]
        order = named + [p for p in news if p not in named]
        for p in order:
            value = self._typed(p, new_part)
            if value is not None and tool_schema_value_ok(p, value, bounds=False):
                out.args[p.name] = value
                return

    def _typed(self, p: Param, text: str) -> Any:
        """``text`` read as a value of ``p`` (None when it is not one)."""
        if p.enum is not None:
            found = enum_mentions(text, p.enum)
            return found[-1].value if found else None
        if p.fmt in ("date", "date-time"):
            dates = find_dates(text, self.c.year)
            if not dates:
                return None
            date, time = dates[-1].value
            return date if p.fmt == "date" else (iso_datetime(date, time) if time else None)
        if p.type in ("number", "integer"):
            nums = find_numbers(text, [(m.start, m.end) for m in find_ids(text)])
            if len(nums) != 1:
                return None
            v = nums[0].value
            if p.type == "integer":
                return int(v) if float(v).is_integer() else None
            return v
        if p.type == "string":
            quoted = find_quoted(text)
            if quoted:
                return quoted[-1].value
            t = text.strip().strip('"').strip()
            return t or None
        return None

    def _value(self, tool: ToolInfo, p: Param, part: str, body: str, addresses: list[Mention]) -> Any:
        c = self.c
        if p.enum is not None:
            found = enum_mentions(part, p.enum)
            if not found:
                return None
            if len(found) == 1 or not p.new_value:
                # several values of one enum: the one after the parameter's own words
                pw = set(name_words(p.name))
                for f in found:
                    if set(words(part[max(0, f.start - 30) : f.start])) & pw:
                        return f.value
                return found[0].value
            return found[-1].value
        if p.type == "string" and p.fmt in ("date-time", "date"):
            dates = find_dates(part, c.year)
            if not dates:
                return None
            d = dates[-1] if p.new_value else dates[0]
            date, time = d.value
            if p.fmt == "date":
                return date
            return iso_datetime(date, time) if time else None
        if p.type in ("number", "integer"):
            return self._number(tool, p, part)
        if p.type == "boolean":
            return None
        # free text
        lname = p.name.lower()
        if "address" in lname or "address" in p.desc.lower():
            if p.new_value:
                return part.strip().strip('"') or None
            return self._address(p, body, addresses)
        quoted = find_quoted(part)
        if quoted and (lname.endswith("name") or "name" in p.desc.lower() or p.new_value):
            return quoted[-1].value if p.new_value else quoted[0].value
        if "city" in lname:
            for m in _CITY_RE.finditer(part):
                if not any(q.start <= m.start() < q.end for q in quoted):
                    return m.group(1)
            return None
        if p.new_value:
            return part.strip().strip('"') or None
        return None

    def _address(self, p: Param, body: str, addresses: list[Mention]) -> str | None:
        if not addresses:
            return None
        low = body.lower()
        want_pick = "pick" in p.name.lower() or "pickup" in p.desc.lower() or "origin" in p.name.lower()
        scored = []
        for a in addresses:
            before = low[max(0, a.start - 30) : a.start]
            pick = bool(re.search(r"pick[- ]?up(?: at| from)?\s*$|from\s*$", before))
            drop = bool(
                re.search(r"drop(?:ping)?[- ]?off(?: at)?(?: me off at)?\s*$|\bto\s*$|dropping me off at\s*$", before)
            )
            scored.append((a, pick, drop))
        for a, pick, drop in scored:
            if want_pick and pick:
                return a.value
            if not want_pick and drop:
                return a.value
        # two addresses without cue words: pickup first, then drop-off
        if len(addresses) >= 2:
            return addresses[0].value if want_pick else addresses[1].value
        return None

    def _number(self, tool: ToolInfo, p: Param, part: str) -> Any:
        c = self.c
        skip = [(m.start, m.end) for m in find_ids(part)] + [(d.start, d.end) for d in find_dates(part, c.year)]
        skip += [(a.start, a.end) for a in find_addresses(part, skip)]
        nums = find_numbers(part, skip)
        if not nums:
            return None
        numeric = [q for q in tool.params.values() if q.type in ("number", "integer") and not q.is_id]
        if p.new_value:
            numeric = [q for q in numeric if q.new_value]
        low = part.lower()

        def cue(n: Mention, q: Param) -> float:
            around = set(words(low[max(0, n.start - 35) : n.start])) | set(words(low[n.end : n.end + 25]))
            s = 2.0 * len(around & q.tokens)
            # the noun right after it ("37 units", "6 refills") or right before ("a party of 4",
            # "a quantity of 37") says most
            after = re.match(r"\s*%?\s*([a-z]+)", low[n.end :])
            before = re.search(r"\b([a-z]+)\s+(?:of\s+|at\s+|is\s+|to\s+)?\$?$", low[: n.start])
            toks = q.tokens | {syn for t in q.tokens for syn in _COUNT_NOUNS.get(t, ())}
            if after and singular(after.group(1)) in toks:
                s += 4
            if before and singular(before.group(1)) in toks:
                s += 3
            d = (q.desc + " " + q.name).lower()
            money = "usd" in d or any(w in d for w in ("price", "amount", "fare", "balance", "copay", "cost", "fee"))
            if n.extra == "$":
                s += 3 if money else -3
            elif n.extra == "%":
                s += 3 if ("percent" in d or "progress" in d) else -3
            elif money and isinstance(n.value, float):
                s += 1
            if q.type == "integer" and not isinstance(n.value, int):
                s -= 5
            return s

        # assign greedily, best (number, parameter) pairs first
        pairs = sorted(((cue(n, q), -abs(n.start), n, q) for n in nums for q in numeric), key=lambda x: (-x[0], x[1]))
        used_n, used_q = set(), set()
        got: dict[str, Any] = {}
        for s, _neg, n, q in pairs:
            if id(n) in used_n or q.name in used_q:
                continue
            if s <= 0 and not (len(nums) == 1 and len(numeric) == 1):
                continue
            got[q.name] = n.value
            used_n.add(id(n))
            used_q.add(q.name)
        v = got.get(p.name)
        if v is None:
            return None
        return int(v) if p.type == "integer" and float(v).is_integer() else v

    def _find_target(self, tool: ToolInfo, target_part: str, answers: str, cursor: int, out: _Resolved) -> None:
        """The record of ``tool.target`` the user means when they gave no ID."""
        c = self.c
        field_ = tool.target
        assert field_ is not None
        # what the request says about the record, and what the user added since ("The
        # advising meeting I mean is the one on July 4, 2025.")
        evidence = _join(
            self._attribute_text(tool, target_part), self._attribute_text(tool, answers) if answers else ""
        )
        if not evidence:
            # "it", "its", "that one", or nothing at all: the last one we talked about
            if field_ in c.last_ids:
                out.args[field_] = c.last_ids[field_][1]
                return
            out.missing.append(tool.params[field_])  # ask which one
            return
        cands = c.records_of(field_)
        scored = []
        for r in cands:
            s = self._match(r.record, evidence, field_)
            if s > 0:
                scored.append((s, r.call_pos, r.index, r))
        if scored:
            top = max(x[0] for x in scored)
            best = [x for x in scored if x[0] == top]
            if len(best) > 1:
                latest = max(x[1] for x in best)
                best = [x for x in best if x[1] == latest]
            if len(best) == 1:
                out.args[field_] = best[0][3].value
                return
            ids = ", ".join(x[3].value for x in best)
            out.ambiguous.append(f"I found more than one that fits ({ids}). Which one do you mean?")
            return
        lister = c.list_tool_for(tool, field_)
        if lister is not None and not self._looked_up(lister, cursor):
            need = self._needs_auth(lister.domain)
            if need is None:
                out.lookup = Call(lister.name, {})
                return
        out.ambiguous.append(
            f"I couldn't find a {' '.join(tool.params[field_].entity)} matching that. "
            f"Could you please tell me its {' '.join(tool.params[field_].entity)} ID?"
        )

    def _looked_up(self, lister: ToolInfo, cursor: int) -> bool:
        return self._find_call(lister.name, max(0, cursor - 50), {}) is not None

    def _attribute_text(self, tool: ToolInfo, text: str) -> str:
        """The part of ``text`` that describes a record by its values (or "")."""
        t = text
        t = _ANAPHORA.sub(" ", t) if not (find_dates(t, self.c.year) or find_quoted(t) or find_numbers(t)) else t
        has_values = bool(find_dates(t, self.c.year) or find_quoted(t) or find_numbers(t) or find_addresses(t))
        if has_values:
            return t
        # enum-like words: any enum value of this environment's tools (other than the
        # entity's own name), e.g. "my appointment for emergency", "about research"
        enums = {v for tl in self.c.tools for p in tl.params.values() for v in (p.enum or []) if isinstance(v, str)}
        ent = set(tool.entity_tokens())
        hits = [m for m in enum_mentions(t, sorted(enums)) if not set(name_words(m.value)) <= ent]
        return t if hits else ""

    def _match(self, rec: dict, text: str, own: str) -> float:
        score = 0.0
        c = self.c
        for k, v in rec.items():
            if k == own or (c.id_param is not None and k == c.id_param.name) or isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (dict, list)):
                continue
            if not value_in_text(v, text, c.year):
                continue
            if isinstance(v, (int, float)):
                score += 3
            elif isinstance(v, str) and (ID_RE.fullmatch(v) or len(v) >= 8 or " " in v or re.match(r"\d{4}-", v)):
                score += 3
            else:
                score += 1
        return score


# ----------------------------------------------------------------------------- wording
class Wording:
    def __init__(self, conv: Conversation) -> None:
        self.c = conv

    def entity_name(self, tool: ToolInfo | None, id_field: str | None = None) -> str:
        if id_field:
            return " ".join(name_words(id_field[:-3]))
        if tool is None:
            return "record"
        if tool.target:
            return " ".join(tool.params[tool.target].entity)
        return " ".join(tool.entity) or "record"

    def report(self, log: _CallLog) -> str:
        c = self.c
        tool = c.by_name.get(log.name)
        own_skip = {c.id_param.name} if c.id_param else set()
        if tool is None:
            return f"The tool {log.name} answered: {render(log.result if log.ok else log.error)}."
        if tool.kind == "auth":
            if log.ok:
                return "Thank you, you're verified."
            return ""
        pos = next((k for k in range(len(c.calls) - 1, -1, -1) if c.calls[k] is log), None)
        prev = c.calls[pos - 1] if pos else None
        if (
            not log.ok
            and tool.is_write
            and prev is not None
            and prev.ok
            and (prev.name, prev.arguments)
            == (
                log.name,
                log.arguments,
            )
        ):  # the same write sent twice: the first went through, the repeat changed nothing
            return f"(The repeated request was not applied again: {log.error}.) The change above stands."
        if not log.ok:
            if tool.is_write:
                return f"I'm sorry, I can't do that: {log.error}."
            return f"I'm sorry, I couldn't get that: {log.error}."
        r = log.result
        if tool.kind in ("list", "search"):
            recs = r if isinstance(r, list) else [r]
            ent = self.entity_name(tool)
            filters = ", ".join(f"{k}: {render(v)}" for k, v in log.arguments.items())
            where = f" ({filters})" if filters else ""
            if not recs:
                return f"I found no {_plural(ent)}{where}."
            lines = []
            for rec in recs:
                if isinstance(rec, dict):
                    own = c._own_id_field(tool, rec)
                    head = f"{rec.get(own)}" if own else ""
                    body = _fmt_record(rec, own_skip | ({own} if own else set()))
                    lines.append(f"{head} ({body})" if head else body)
                else:
                    lines.append(render(rec))
            noun = ent if len(recs) == 1 else _plural(ent)
            return f"I found {len(recs)} {noun}{where}: " + "; ".join(lines) + "."
        if tool.kind in ("count", "total") and isinstance(r, dict):
            filters = ", ".join(f"{k}: {render(v)}" for k, v in log.arguments.items())
            where = f" with {filters}" if filters else ""
            if tool.kind == "count" and "count" in r:
                return f"You have {render(r['count'])} {_plural(self.entity_name(tool))}{where}."
            # a total says its sum and how many records it adds up: every field
            what = f"The {'total ' if tool.kind == 'total' else ''}{self.entity_name(tool)}{where}"
            return f"{what}: " + _fmt_record(r, set()) + "."
        if isinstance(r, dict):
            own = tool.target or c._own_id_field(tool, r)
            ent = self.entity_name(tool, own)
            rid = r.get(own) if own else None
            body = _fmt_record(r, own_skip | ({own} if own else set()))
            if tool.is_write:
                past = _PAST.get(tool.verb, tool.verb + "ed")
                return f"Done: I {past} the {ent} {render(rid)}. It now reads: {body}."
            return f"Here are the details of {ent} {render(rid)}: {body}."
        return f"Here is the result: {render(r)}."

    def propose(self, d: Decision) -> str:
        assert d.call is not None and d.tool is not None
        tool = d.tool
        verb = tool.verb
        ent = self.entity_name(tool)
        values = "; ".join(f"{self._label(tool, k)}: {render(v)}" for k, v in d.call.arguments.items())
        args = json.dumps(d.call.arguments, ensure_ascii=False)
        return (
            f"Before I make this change, please confirm. I will {verb} the {ent} with {values} "
            f"(`{d.call.name}` {args}). Shall I go ahead (yes/no)?"
        )

    def _label(self, tool: ToolInfo, name: str) -> str:
        p = tool.params.get(name)
        return p.label() if p else name

    def auth_failed(self) -> str:
        c = self.c
        ident, error = c.auth_failed or ("", "")
        label = c.id_param.label() if c.id_param else "ID"
        return (
            f"I'm sorry, I couldn't verify the {label} {ident}: {error}. "
            f"I can't go on with this request without a valid {label}."
        )


# ----------------------------------------------------------------------------- assistant
class OfflineAssistant:
    """Deterministic assistant simulator (see the module docstring). One instance per
    episode: it remembers only the mistake it was told to make, and whether it did."""

    name = NAME

    def __init__(self, mistake: str | None = None) -> None:
        if mistake is not None and mistake not in MISTAKE_KINDS:
            raise ValueError(f"unknown mistake {mistake!r}")
        self.mistake = mistake
        self.mistakes: list[Mistake] = []
        self._ended = False
        self._skipped: Call | None = None
        self._extra_pending: Call | None = None
        self._calls = 0
        self._read = _Readings()

    def _call_id(self, messages: list[dict]) -> str:
        n = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
        return f"call_{n + 1}"

    def _message(self, messages: list[dict], content: str | None, call: Call | None = None) -> dict:
        msg: dict[str, Any] = {"role": "assistant", "content": content or None}
        if call is not None:
            msg["tool_calls"] = [
                {
                    "id": self._call_id(messages),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
                }
            ]
        if msg["content"] is None and call is None:
            msg["content"] = "How can I help you?"
        return msg

    def _note(self, kind: str, index: int, detail: str) -> None:
        self.mistakes.append(Mistake(kind=kind, message=index, detail=detail))
        self.mistake = None  # one per episode

    def respond(self, messages: list[dict], tools: list[dict]) -> dict:
        if self._ended:
            return self._message(messages, "Thank you for contacting us. Goodbye!")
        conv = Conversation(messages, tools, self._read)
        words_ = Wording(conv)
        last = messages[-1] if messages else {}
        report = ""
        if last.get("role") == "tool" and conv.calls:
            report = words_.report(conv.calls[-1])
        if conv.auth_failed is not None:
            return self._message(messages, words_.auth_failed())
        if self._extra_pending is not None:  # mistake: the same write once more
            call, self._extra_pending = self._extra_pending, None
            return self._message(messages, report, call)
        d = Planner(conv).decide()
        idx = len(messages)
        # -- injected mistakes ---------------------------------------------------------
        if self.mistake == "premature_end" and d.kind in ("call", "propose") and d.tool and d.tool.kind != "auth":
            self._note("premature_end", idx, f"ended the conversation instead of {d.call.name if d.call else ''}")
            self._ended = True
            return self._message(messages, (report + " " if report else "") + "Thank you for contacting us. Goodbye!")
        if self._skipped is not None and d.kind == "call" and d.call and d.call.name == self._skipped.name:
            d = Decision("done")
        if d.kind == "propose" and self.mistake == "unconfirmed_write":
            self._note("unconfirmed_write", idx, f"called {d.call.name} without asking for confirmation")
            d = Decision("call", d.call, tool=d.tool)
        if d.kind == "call" and d.tool is not None and d.tool.is_write and d.call is not None:
            if self.mistake == "skipped_step":
                self._note("skipped_step", idx, f"said {d.call.name} was done without calling it")
                self._skipped = d.call
                past = _PAST.get(d.tool.verb, d.tool.verb + "ed")
                return self._message(messages, f"Done: I {past} the {words_.entity_name(d.tool)}.")
            if self.mistake == "wrong_argument":
                wrong = _wrong_argument(d.tool, d.call, conv)
                if wrong is not None:
                    k, old, new = wrong
                    self._note("wrong_argument", idx, f"{d.call.name}.{k}: {render(old)} -> {render(new)}")
                    d = Decision("call", Call(d.call.name, {**d.call.arguments, k: new}), tool=d.tool)
            elif self.mistake == "extra_call":
                self._note("extra_call", idx + 2, f"called {d.call.name} a second time")
                self._extra_pending = d.call
        # -- wording -------------------------------------------------------------------
        if d.kind == "call":
            return self._message(messages, report, d.call)
        if d.kind == "propose":
            return self._message(messages, _join(report, words_.propose(d)))
        if d.kind == "ask" and _asked_before(messages, d.text) >= 2:
            # the user cannot tell: asking a third time would only go round in circles
            d = Decision("refuse", text="I'm sorry, I can't go on with this request without that information.")
        if d.kind in ("ask", "refuse", "say"):
            return self._message(messages, _join(report, d.text))
        # done
        if last.get("role") == "user" and not report:
            text = last.get("content") or ""
            if re.search(r"\b(?:thanks|thank you|that'?s all|bye)\b", text, re.I):
                return self._message(messages, "You're welcome! Have a great day.")
            if not conv.authorized and conv.user_id is None:
                return self._message(messages, conv_ask_id(conv))
            if conv.authorized and not conv.is_request(text) and re.search(r"\?\s*$", text):
                return self._message(messages, "I'm sorry, I can't help with that: none of my tools supports it.")
        tail = "What can I do for you today?" if _just_verified(conv) else "Is there anything else I can help you with?"
        return self._message(messages, _join(report, tail))


def conv_ask_id(conv: Conversation) -> str:
    return Planner(conv)._ask_id_text()


def _just_verified(conv: Conversation) -> bool:
    """Authorized, and nothing but authorization has happened."""
    return bool(conv.authorized) and all(
        conv.by_name.get(c.name) is not None and conv.by_name[c.name].kind == "auth" for c in conv.calls
    )


def _asked_before(messages: list[dict], question: str) -> int:
    """How many of the assistant's messages ended with ``question`` already."""
    return sum(
        1 for m in messages if m.get("role") == "assistant" and (m.get("content") or "").rstrip().endswith(question)
    )


def _join(a: str, b: str) -> str:
    return f"{a} {b}".strip() if a else b


def _wrong_argument(tool: ToolInfo, call: Call, conv: Conversation) -> tuple[str, Any, Any] | None:
    """A plausible wrong value for one argument: another known ID of the same kind, the
    next enum value, a number off by a bit, a date a day later, a changed text."""
    for k, v in sorted(call.arguments.items()):
        p = tool.params.get(k)
        if p is None or (conv.id_param is not None and k == conv.id_param.name):
            continue
        if p.enum and v in p.enum and len(p.enum) > 1:
            return k, v, p.enum[(p.enum.index(v) + 1) % len(p.enum)]
        if p.type == "integer" and isinstance(v, int):
            lo, hi = p.schema.get("minimum"), p.schema.get("maximum")
            new = v + 1 if hi is None or v + 1 <= hi else v - 1
            if lo is None or new >= lo:
                return k, v, new
        if p.type == "number" and isinstance(v, (int, float)):
            return k, v, round(float(v) * 1.1, 2)
        if p.fmt in ("date", "date-time") and isinstance(v, str) and re.match(r"\d{4}-\d{2}-\d{2}", v):
            import datetime as dt

            day = dt.date.fromisoformat(v[:10]) + dt.timedelta(days=1)
            return k, v, day.isoformat() + v[10:]
    for k, v in sorted(call.arguments.items()):
        p = tool.params.get(k)
        if p is None or not p.is_id or (conv.id_param is not None and k == conv.id_param.name):
            continue
        others = sorted(r.value for r in conv.records_of(k) if r.value != v)
        if others:
            return k, v, others[0]
    for k, v in sorted(call.arguments.items()):
        p = tool.params.get(k)
        if p is not None and p.type == "string" and not p.is_id and isinstance(v, str):
            return k, v, v + " 2"
    return None


__all__ = ["OfflineAssistant", "MISTAKE_KINDS", "NAME", "Conversation", "singular"]
