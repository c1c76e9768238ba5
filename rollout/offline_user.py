"""The offline user: a deterministic, seeded simulator of the customer in a dataset row.

A demo and test double, not a model. It reads only the row's **scenario** (instruction,
known facts) and its first message, never the golden calls or the database, and answers
from them alone:

* its plan is its instruction, sentence by sentence: the introduction ("My name is ..., my
  ID is ...") and then one request per sentence, told **one at a time** (progressive
  disclosure, as tau2-bench's guidelines ask), each after the assistant reported on the
  previous one;
* asked for something ("could you tell me your student ID?"), it answers with the known
  fact whose label matches the question best, or with the value its current request
  states; it never invents a value;
* asked to confirm a write, it says "yes" only when the proposal fits its instruction: the
  action is one it asked for, and every value in the proposal is one its scenario states
  (an ID it does not know - one the assistant looked up - is accepted); otherwise "no";
* it ends with ``###STOP###`` once every request has been answered, or as soon as the
  assistant refuses (a write the policy forbids, a failed identification); with
  ``###TRANSFER###`` when offered a human.

Every turn is re-derived from the messages, so the same conversation gives the same reply;
``seed`` only picks among equivalent phrasings.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .nlu import (
    ID_RE,
    default_year,
    enum_mentions,
    find_addresses,
    find_dates,
    find_ids,
    find_numbers,
    find_quoted,
    is_note,
    lead_verb,
    split_requests,
    split_sentences,
    strip_lead,
    value_in_text,
    verb_synonyms,
)

NAME = "offline-user-v1"
#: a request that names a value by its source: "set to the street address of that hotel"
_CARRIED = re.compile(r"\bthe (?:[a-z]+ ){0,3}[a-z]+ of (?:that|this|the same) [a-z]", re.I)

_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry|sorry|unfortunately)\b[^.?!]*?\b(?:I|we) (?:can(?:'|no)t|cannot|could(?:n't| not)|"
    r"am unable|'m unable|am not able|'m not able|won't be able)\b|\bI(?:'m| am) (?:unable|not able) to\b|"
    r"\b(?:can(?:'t|not)|could(?:n't| not)) (?:do|help|verify|complete|process) (?:that|this|it|you)\b",
    re.I,
)
_CONFIRM = re.compile(r"\(yes/no\)|\bplease confirm\b|\bshall i (?:go ahead|proceed)\b|\bshould i (?:go ahead|proceed)\b|"
                      r"\bdo you (?:want|confirm)\b|\bwould you like me to (?:go ahead|proceed)\b|\bcan you confirm\b", re.I)  # fmt: skip
_TRANSFER = re.compile(r"\btransfer(?:ring)? you\b|\bhuman agent\b|\bconnect you (?:with|to) (?:a|an)\b", re.I)
#: the assistant cannot tell which record the user means
_WHICH = re.compile(
    r"\bwhich one\b|\bmore than one\b|\bcould(?:n't| not) find\b|\bwhich (?:[a-z]+ ){1,3}do you mean\b|"
    r"\bdo you mean\b",
    re.I,
)
_INVITE = re.compile(r"\b(?:anything else|what can i do|how can i help|what would you like|how may i help)\b", re.I)
_ASK = re.compile(r"\b(?:could|can|would) you (?:please )?(?:tell|give|provide|share|confirm|let me know)\b|"
                  r"\bwhat(?:'s| is| are) (?:your|the)\b|\bwhich\b|\bplease (?:tell|give|provide|share)\b", re.I)  # fmt: skip
_LABEL_STOP = {
    "your", "my", "the", "a", "an", "of", "please", "could", "can", "would", "you", "tell", "give", "provide",
    "me", "what", "is", "are", "share", "let", "know", "to", "for", "and", "with", "i", "need", "verify",
    "identity", "first", "happy", "help", "be", "it", "its", "that", "this", "do", "which", "one",
}  # fmt: skip
_VERB_SYNONYMS = {
    "arrange": {"request", "book"},
    "modify": {"change", "amend", "modify", "update"},
    "change": {"change", "modify", "amend", "update", "reschedule", "rename"},
    "amend": {"amend", "change", "modify"},
    "open": {"open"},
    "reschedule": {"reschedule", "change", "modify"},
    "purchase": {"purchase", "buy"},
    "check": {"check in", "check"},
}


#: words a question and a fact may share without being about the same thing
_WEAK = {"id", "ids", "number", "reference", "new"}


def _tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _LABEL_STOP]


class OfflineUser:
    """Deterministic user simulator for one dataset row (see the module docstring)."""

    name = NAME

    def __init__(self, scenario: dict, first_message: str, policy: str = "", seed: int = 0) -> None:
        self.scenario = scenario
        self.first_message = first_message
        self.facts: list[dict] = list(scenario.get("known_facts") or [])
        self.year = default_year(policy)
        self.rng_seed = seed
        #: sentences that say which record the user means, told when the assistant asks
        self.notes: list[str] = []
        self.intro, self.steps = plan(
            scenario.get("instruction") or "", self._identity_ids(), persona_name=self._name(), notes=self.notes
        )
        self.knowledge = " ".join(
            [scenario.get("instruction") or "", first_message] + [f"{f['fact']}: {f['value']}" for f in self.facts]
        )

    def _own_ids(self) -> set[str]:
        """The IDs the user holds ("your student ID", "your appointment reference")."""
        return {f["value"] for f in self.facts if f["fact"].lower().startswith("your ") and ID_RE.fullmatch(f["value"])}

    def _identity_ids(self) -> set[str]:
        """The IDs that identify the user ("your student ID"; a reference of theirs is no
        identification), or all their own IDs when none is labelled so."""
        ident = {
            f["value"]
            for f in self.facts
            if re.fullmatch(r"your (?:[a-z]+ ){0,3}id", f["fact"].strip().lower()) and ID_RE.fullmatch(f["value"])
        }
        return ident or self._own_ids()

    def _name(self) -> str:
        return str((self.scenario.get("persona") or {}).get("name") or "")

    # -- what has happened --------------------------------------------------------------
    def _said(self, messages: list[dict]) -> list[str]:
        return [m.get("content") or "" for m in messages if m.get("role") == "user"]

    def _revealed(self, messages: list[dict]) -> int:
        said = " \n".join(self._said(messages))
        n = 0
        for s in self.steps:
            if s in said:
                n += 1
            else:
                break
        return n

    def _pick(self, options: list[str], salt: str) -> str:
        rnd = random.Random(f"{self.rng_seed}:{salt}")
        return rnd.choice(options)

    # -- replying ------------------------------------------------------------------------
    def reply(self, messages: list[dict]) -> str:
        last = next((m for m in reversed(messages) if m.get("role") == "assistant" and m.get("content")), None)
        text = (last or {}).get("content") or ""
        turn = str(len(messages))
        revealed = self._revealed(messages)
        if not text:
            return "Hello? Are you still there?"
        if _TRANSFER.search(text):
            return "Yes, please transfer me. ###TRANSFER###"
        if _CONFIRM.search(text):
            current = self.steps[revealed - 1] if revealed else ""
            # a value the request names by where it comes from ("the street address of that
            # hotel"): the user knows it only from what the assistant reported earlier
            seen = ""
            if _CARRIED.search(current):
                earlier = [m for m in messages if m.get("role") == "assistant" and m.get("content")][:-1]
                seen = " ".join(m["content"] for m in earlier)
            if self._acceptable(_proposal_part(text), self.steps[: max(revealed, 1)], seen):
                return self._pick(
                    ["Yes, please go ahead.", "Yes, that's right. Please go ahead.", "Yes, please."], turn
                )
            return f"No, that's not what I asked for. {current}".strip()
        if _REFUSAL.search(text):
            return self._pick(["I see. Thank you anyway. ###STOP###", "Okay, I understand. Thanks. ###STOP###"], turn)
        if self.notes and _WHICH.search(text):
            return self._note(messages, text)
        question = _last_question(text)
        if question and not _INVITE.search(question) and _ASK.search(question):
            answer = self._answer(question, revealed, messages)
            if answer:
                return answer
        if revealed < len(self.steps):
            return self.steps[revealed]
        return self._pick(["That's everything, thank you! ###STOP###", "That's all I needed. Thanks! ###STOP###"], turn)

    def _note(self, messages: list[dict], text: str) -> str:
        """The sentence that says which record the user means: the one that shares the most
        words with the assistant's question, one not said yet first."""
        said = " ".join(self._said(messages))
        q = set(_tokens(text))
        return max(self.notes, key=lambda n: (n not in said, len(q & set(_tokens(n))), -self.notes.index(n)))

    def _answer(self, question: str, revealed: int, messages: list[dict] | None = None) -> str | None:
        q = set(_tokens(question))
        best, best_s = None, 0.0
        for f in self.facts:
            label = _tokens(f["fact"])
            if not label:
                continue
            common = q & set(label)
            if not common - _WEAK:
                continue  # "the bank branch ID" is not "your account holder ID"
            s = len(common) / len(label) + 0.1 * len(common)
            own = f["fact"].lower().startswith("your ")
            if own and re.search(r"\byour\b", question, re.I):
                s += 0.2
            if s > best_s:
                best, best_s = f, s
        if best is not None and best_s >= 0.6:
            label = best["fact"]
            label = label[5:] if label.lower().startswith("your ") else re.sub(r"^the ", "", label, flags=re.I)
            return (
                f"Sure, my {label} is {best['value']}."
                if best["fact"].lower().startswith("your ")
                else (f"The {label} is {best['value']}.")
            )
        if self.notes and messages is not None and q & {t for n in self.notes for t in _tokens(n)} - _WEAK:
            return self._note(messages, question)  # asked for the ID of a record it names otherwise
        if revealed:
            return f"As I said: {self.steps[revealed - 1]}"
        if self.intro:
            return " ".join(self.intro)
        return None

    def _acceptable(self, proposal: str, steps: list[str], seen: str = "") -> bool:
        """The proposed write is one of ``steps`` and states nothing the user did not say
        (or, for a value the request names by its source, was not shown earlier: ``seen``)."""
        knowledge = f"{self.knowledge} {seen}" if seen else self.knowledge
        low = proposal.lower()
        # the action proposed: what follows "I will" (the rest is the assistant's framing)
        will = re.search(r"\b(?:i will|i'll|i am going to|i'm going to|shall i|should i)\b(.*)", low, re.S)
        action = will.group(1) if will else low
        step_ok = False
        for s in steps:
            body = strip_lead(s).lower()
            verb = lead_verb(body)
            verbs = {verb, verb.split(" ")[0]} | _VERB_SYNONYMS.get(verb, set()) | verb_synonyms(verb)
            if any(re.search(rf"\b{re.escape(v)}", action) for v in verbs if v):
                step_ok = True
                break
        if not step_ok:
            return False
        # every value in the proposal must be one the scenario states
        values: list[Any] = []
        values += [m.value for m in find_ids(proposal)]
        # quoted values, not the keys of a JSON object ("guests": 1)
        values += [q.value for q in find_quoted(proposal) if not re.match(r"\s*:", proposal[q.end :])]
        for v in values:
            if isinstance(v, str) and ID_RE.fullmatch(v):
                if not value_in_text(v, self.knowledge) and self._contradicts_id(v, steps):
                    return False
                continue
            if isinstance(v, str) and not _known_text(v, knowledge, self.year):
                return False
        for d in find_dates(proposal, self.year):
            date, time = d.value
            iso = f"{date}T{time}:00Z" if time else date
            if not value_in_text(iso, knowledge, self.year):
                return False
        skip = [(m.start, m.end) for m in find_ids(proposal)] + [
            (d.start, d.end) for d in find_dates(proposal, self.year)
        ]
        skip += [(a.start, a.end) for a in find_addresses(proposal, skip)]
        for n in find_numbers(proposal, skip):
            if not value_in_text(n.value, knowledge, self.year):
                return False
        return True

    def _contradicts_id(self, value: str, steps: list[str]) -> bool:
        """An ID the user does not know contradicts them when their own requests name a
        different ID of the same kind."""
        prefix = value.split("-")[0]
        return any(m.value.split("-")[0] == prefix and m.value != value for s in steps for m in find_ids(s))


def _known_text(value: str, knowledge: str, year: int | None) -> bool:
    v = value.strip()
    if not v:
        return True
    if value_in_text(v, knowledge, year):
        return True
    if re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z]+", v):
        return bool(enum_mentions(knowledge, [v]))
    return v.lower() in knowledge.lower()


_PROPOSAL_START = re.compile(
    r"\b(?:please confirm|to confirm|before i (?:make|go|do|proceed)|i will|i'll|i am going to|i'm going to|"
    r"i would like to|shall i|should i|do you want me to|would you like me to)\b",
    re.I,
)


def _proposal_part(text: str) -> str:
    """The confirmation request at the end of a message, without the report before it."""
    sentences = split_sentences(text)
    tail = sentences[-3:]
    for i, s in enumerate(tail):
        if _PROPOSAL_START.search(s):
            return " ".join(tail[i:])
    return " ".join(tail)


def _last_question(text: str) -> str:
    qs = [s for s in split_sentences(text) if s.rstrip().endswith("?")]
    return qs[-1] if qs else ""


#: the words a request starts with (after "please", "could you", "then", ...)
_REQUEST_VERBS = {
    "show", "list", "let", "see", "look", "search", "find", "check", "pull", "review", "go", "fetch", "get",
    "view", "tell", "count", "cancel", "book", "make", "reserve", "change", "modify", "update", "amend",
    "reschedule", "move", "rename", "drop", "enroll", "register", "withdraw", "refund", "purchase", "buy",
    "submit", "request", "arrange", "open", "close", "freeze", "schedule", "add", "remove", "delete", "set",
    "pick", "confirm", "give", "display", "browse", "double", "verify", "order", "apply", "sign", "lookup",
    "bring", "read", "adjust", "edit", "alter", "file", "start", "subscribe", "unenroll", "leave",
}  # fmt: skip
#: phrasal requests whose first word alone is no request verb ("have a look at my profile")
_REQUEST_PHRASES = {"have a look", "have a look at", "take a look", "take a look at", "have a quick look at"}
#: what a request for a value looks like ("I'd like to know the agenda.", "What I need to find
#: out is the fare."): "I'd like to" is stripped as a lead, "know" is left
_ASKS_FOR = re.compile(
    r"^(?:know|find out|hear) (?:the|my|how|what|whether|which|when)\b|^what i need to (?:find out|know) is\b|"
    r"^let me know (?:the|my|how|what|whether|which|when)\b",
    re.I,
)
#: asides and closings: "Could you confirm once it's all done?", "I want to make sure this is
#: done correctly.", "Please let me know that it went through."
_ASIDE = re.compile(
    r"^(?:confirm once|let me know(?! (?:the|my|how|what|whether|which|when)\b)|thanks|thank you|many thanks|"
    r"make sure (?:this|that|it|everything)\b|get (?:this|it) (?:sorted|done|right)\b|keep (?:this|it) short\b|"
    r"bear with me\b)",
    re.I,
)


def _is_request(clause: str) -> bool:
    body = strip_lead(clause)
    if not body or _ASIDE.match(body) or is_note(body):
        return False
    if _ASKS_FOR.match(body):
        return True
    verb = lead_verb(body)
    if verb in _REQUEST_PHRASES or re.sub(r" at$", "", verb) in _REQUEST_PHRASES:
        return True
    return verb.split(" ")[0] in _REQUEST_VERBS and verb != "make sure"


def _own_id_end(sentence: str, own_ids: set[str]) -> int:
    """Where the user's identification ends in ``sentence``: after the first of their own IDs
    it names ("student ID STU-1, and I'd like you to check my subscription (reference COS-2)"
    ends after STU-1: COS-2 is part of a request)."""
    found = [(sentence.find(v), v) for v in own_ids if v in sentence]
    start, v = min(found)
    return start + len(v)


def plan(
    instruction: str, own_ids: set[str], persona_name: str = "", notes: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """``(introduction, requests)`` of an instruction: what comes up to the sentence that
    identifies the user (a goal or a reason said first, the greeting, the name and ID) and the
    requests after it, one per clause - a sentence that chains two ("pull it up and then
    cancel it") gives two; asides and closings ("Thanks so much!") are no requests. A
    sentence that adds a value to a request ("Please make sure the visit reason is
    cleaning.") goes with the request before it; one that says which record the user means
    ("The appointment I mean is the one on June 6.") is kept in ``notes`` (when given), told
    when the assistant asks which one."""
    sentences = split_sentences(instruction)
    at = next((i for i, s in enumerate(sentences) if any(v in s for v in own_ids)), None)
    intro: list[str] = []
    rest = sentences
    if at is not None:
        intro, rest = sentences[: at + 1], sentences[at + 1 :]
        ident = sentences[at]
        end = _own_id_end(ident, own_ids)
        tail = re.sub(r"^[)\]]?\s*(?:[-,;:.]\s*|and\s+)*", "", ident[end:])
        if _is_request(tail):  # "..., ID STU-1 - could you pull it up and then cancel it?"
            intro[-1] = ident[:end] + "."
            rest = [tail, *rest]
    steps: list[str] = []
    for s in rest:
        for clause in split_requests(s):
            kind = is_note(clause)
            if kind == "value" and steps:
                steps[-1] = f"{steps[-1]} {clause if clause[-1:] in '.?!' else clause + '.'}"
            elif kind == "identify":
                if notes is not None:
                    notes.append(clause if clause[-1:] in ".?!" else clause + ".")
            elif _is_request(clause):
                steps.append(clause if clause[-1:] in ".?!" else clause + ".")
            elif not steps:
                intro.append(clause)
    return intro, steps
