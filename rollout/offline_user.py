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
    split_requests,
    split_sentences,
    strip_lead,
    value_in_text,
)

NAME = "offline-user-v1"

_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry|sorry|unfortunately)\b[^.?!]*?\b(?:I|we) (?:can(?:'|no)t|cannot|could(?:n't| not)|"
    r"am unable|'m unable|am not able|'m not able|won't be able)\b|\bI(?:'m| am) (?:unable|not able) to\b|"
    r"\b(?:can(?:'t|not)|could(?:n't| not)) (?:do|help|verify|complete|process) (?:that|this|it|you)\b",
    re.I,
)
_CONFIRM = re.compile(r"\(yes/no\)|\bplease confirm\b|\bshall i (?:go ahead|proceed)\b|\bshould i (?:go ahead|proceed)\b|"
                      r"\bdo you (?:want|confirm)\b|\bwould you like me to (?:go ahead|proceed)\b|\bcan you confirm\b", re.I)  # fmt: skip
_TRANSFER = re.compile(r"\btransfer(?:ring)? you\b|\bhuman agent\b|\bconnect you (?:with|to) (?:a|an)\b", re.I)
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
        self.intro, self.steps = plan(scenario.get("instruction") or "", self._own_ids(), persona_name=self._name())
        self.knowledge = " ".join(
            [scenario.get("instruction") or "", first_message] + [f"{f['fact']}: {f['value']}" for f in self.facts]
        )

    def _own_ids(self) -> set[str]:
        return {f["value"] for f in self.facts if f["fact"].lower().startswith("your ") and ID_RE.fullmatch(f["value"])}

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
            if self._acceptable(_proposal_part(text), self.steps[: max(revealed, 1)]):
                return self._pick(
                    ["Yes, please go ahead.", "Yes, that's right. Please go ahead.", "Yes, please."], turn
                )
            current = self.steps[revealed - 1] if revealed else ""
            return f"No, that's not what I asked for. {current}".strip()
        if _REFUSAL.search(text):
            return self._pick(["I see. Thank you anyway. ###STOP###", "Okay, I understand. Thanks. ###STOP###"], turn)
        question = _last_question(text)
        if question and not _INVITE.search(question) and _ASK.search(question):
            answer = self._answer(question, revealed)
            if answer:
                return answer
        if revealed < len(self.steps):
            return self.steps[revealed]
        return self._pick(["That's everything, thank you! ###STOP###", "That's all I needed. Thanks! ###STOP###"], turn)

    def _answer(self, question: str, revealed: int) -> str | None:
        q = set(_tokens(question))
        best, best_s = None, 0.0
        for f in self.facts:
            label = _tokens(f["fact"])
            if not label:
                continue
            s = len(q & set(label)) / len(label) + 0.1 * len(q & set(label))
            own = f["fact"].lower().startswith("your ")
            if own and re.search(r"\byour\b", question, re.I):
                s += 0.2
            if s > best_s:
                best, best_s = f, s
        if best is not None and best_s >= 0.6:
            label = best["fact"]
            label = label[5:] if label.lower().startswith("your ") else label
            return (
                f"Sure, my {label} is {best['value']}."
                if best["fact"].lower().startswith("your ")
                else (f"The {label} is {best['value']}.")
            )
        if revealed:
            return f"As I said: {self.steps[revealed - 1]}"
        if self.intro:
            return " ".join(self.intro)
        return None

    def _acceptable(self, proposal: str, steps: list[str]) -> bool:
        """The proposed write is one of ``steps`` and states nothing the user did not say."""
        low = proposal.lower()
        step_ok = False
        for s in steps:
            body = strip_lead(s).lower()
            verb = body.split(" ", 1)[0] if body else ""
            if body.startswith("check in"):
                verb = "check in"
            verbs = {verb} | _VERB_SYNONYMS.get(verb, set())
            if any(re.search(rf"\b{re.escape(v)}", low) for v in verbs if v):
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
            if isinstance(v, str) and not _known_text(v, self.knowledge, self.year):
                return False
        for d in find_dates(proposal, self.year):
            date, time = d.value
            iso = f"{date}T{time}:00Z" if time else date
            if not value_in_text(iso, self.knowledge, self.year):
                return False
        skip = [(m.start, m.end) for m in find_ids(proposal)] + [
            (d.start, d.end) for d in find_dates(proposal, self.year)
        ]
        skip += [(a.start, a.end) for a in find_addresses(proposal, skip)]
        for n in find_numbers(proposal, skip):
            if not value_in_text(n.value, self.knowledge, self.year):
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
}  # fmt: skip
_ASIDE = re.compile(r"^(?:confirm once|let me know|thanks|thank you|many thanks)\b", re.I)


def _is_request(clause: str) -> bool:
    body = strip_lead(clause)
    first = re.match(r"[A-Za-z]+", body)
    return bool(first) and first.group(0).lower() in _REQUEST_VERBS and not _ASIDE.match(body)


def plan(instruction: str, own_ids: set[str], persona_name: str = "") -> tuple[list[str], list[str]]:
    """``(introduction, requests)`` of an instruction: what comes up to the sentence that
    identifies the user (a goal or a reason said first, the greeting, the name and ID) and the
    requests after it, one per clause - a sentence that chains two ("pull it up and then
    cancel it") gives two; asides and closings ("Thanks so much!") are no requests."""
    sentences = split_sentences(instruction)
    at = next((i for i, s in enumerate(sentences) if any(v in s for v in own_ids)), None)
    intro: list[str] = []
    rest = sentences
    if at is not None:
        intro, rest = sentences[: at + 1], sentences[at + 1 :]
        ident = sentences[at]
        end = max(ident.find(v) + len(v) for v in own_ids if v in ident)
        tail = re.sub(r"^[)\]]?\s*(?:[-,;:.]\s*|and\s+)*", "", ident[end:])
        if _is_request(tail):  # "..., ID STU-1 - could you pull it up and then cancel it?"
            intro[-1] = ident[:end] + "."
            rest = [tail, *rest]
    steps: list[str] = []
    for s in rest:
        for clause in split_requests(s):
            if _is_request(clause):
                steps.append(clause if clause[-1:] in ".?!" else clause + ".")
            elif not steps:
                intro.append(clause)
    return intro, steps
