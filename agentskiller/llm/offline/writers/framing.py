"""How a first-person instruction is framed around its steps: greeting, identification,
connectors, the sentence plan and, for a persona, the manner it is said in.

Shared by the offline s14 template writer, which frames the clauses it words from the
trajectory (:mod:`.template`), and the offline s17 user simulator, which takes a template's
clauses apart again (:func:`split_steps`) and frames them anew for every instance, so the
instances of one template read like different people wrote them.

A *step* is one clause in the imperative, lower-case, without final punctuation ("cancel my
ride request to {dropoff_address}"). :func:`compose` chooses a plan:

* ``plain``: greeting and identification, then one sentence per step with connectors;
* ``goal``: the goal first ("I need to cancel my ride request."), then who is asking and the steps;
* ``context``: the reason first (s17 only), then who is asking and the steps;
* ``compact``: who is asking and all steps in one sentence ("... - could you pull it up and
  then cancel it?"), for up to three steps;
* ``questions``: every step a question ("Could you ...? After that, could you ...?").

No framing text holds a value, a digit or a run of capitalised words, so a framed
instruction is exactly as grounded as its steps; every greeting is followed by a comma, so
it never joins the name that follows into one capitalised run.
"""

from __future__ import annotations

import re

from .manner import NEUTRAL, STYLES, Style

GREETINGS = [
    "Hi",
    "Hello",
    "Good morning",
    "Good afternoon",
    "Good evening",
    "Hey there",
    "Hi there",
    "Hello there",
    "Morning",
    "Hey",
    "Hiya",
    "Good day",
]
#: identification clauses: {name} the user's name, {entity} what they are to the service
#: ("patient"), {id} their ID - always called an ID: a record may have a separate "number"
#: (a student number) that the user would give instead. Each ends with the last of its placeholders (or a bracket
#: after it): :func:`split_steps` cuts there.
IDENTIFY = [
    "this is {name}, my {entity} ID is {id}",
    "I'm {name} ({entity} ID {id})",
    "my name is {name} and my {entity} ID is {id}",
    "{name} here - my {entity} ID is {id}",
    "it's {name} calling; my {entity} ID is {id}",
    "you're speaking with {name}, {entity} ID {id}",
    "{name} speaking, my {entity} ID is {id}",
    "I'm {name}, and my {entity} ID is {id}",
    "this is {name} - {entity} ID {id}",
    "I'm {name}; you'll find me under {entity} ID {id}",
    "my {entity} ID is {id} and my name is {name}",
    "the name is {name}, {entity} ID {id}",
    "I'm {name}, one of your {entities} (ID {id})",
    "it's {name} here, with {entity} ID {id}",
    "you've got {name} on the line, {entity} ID {id}",
    "{name} on the line - {entity} ID {id}",
    "it's me, {name} ({entity} ID {id})",
    "{name} again, {entity} ID {id}",
]
IDENTIFY_NO_NAME = [
    "my {entity} ID is {id}",
    "I'm calling about my {entity} account, ID {id}",
    "I'm registered under {entity} ID {id}",
    "you can find me under {entity} ID {id}",
]
IDENTIFY_SHORT = [
    "{name} here, {entity} ID {id}",
    "it's {name}, {entity} ID {id}",
    "{name} here - {entity} ID {id}",
    "this is {name}, {entity} ID {id}",
]
IDENTIFY_FORMAL = [
    "my name is {name} and my {entity} ID is {id}",
    "I am {name}, {entity} ID {id}",
    "this is {name}, and my {entity} ID is {id}",
    "{name} speaking; my {entity} ID is {id}",
    "I am writing as {name}, {entity} ID {id}",
]
#: an ID the user is not sure of (s17 ``auth_failure``: the ID given will not authorize)
IDENTIFY_UNSURE = [
    "this is {name}, and I think my {entity} ID is {id}",
    "I'm {name}; my {entity} ID should be {id}",
    "my name is {name}, and I believe my {entity} ID is {id}",
    "it's {name} - I think my {entity} ID is {id}",
]
FIRST = ["First, ", "To start, ", "", "First of all, ", "To begin with, ", "I'd like to start by asking you to "]
NEXT = [
    "Then ",
    "After that, ",
    "Next, ",
    "Once that's done, ",
    "When you have that, ",
    "After you've done that, ",
    "Following that, ",
    "Once you have that, ",
    "With that done, ",
]
LAST = [
    "Finally, ",
    "And lastly, ",
    "Then ",
    "After that, ",
    "To wrap up, ",
    "Lastly, ",
    "And finally, ",
    "To finish, ",
]
ONLY = ["", "Could you ", "I'd like you to ", "Can you please ", "Please ", "I need you to ", "Would you "]
#: a step as a question, alone or after a connector ("After that, could you ...?")
ASK = ["could you ", "can you ", "would you ", "could you please "]
#: two steps in one clause
JOIN = ["{a} and then {b}", "{a}, then {b}", "{a}, and after that {b}", "{a}; once that's done, {b}"]
COMPACT_LEADS = [
    (" - could you ", "?"),
    (", and I'd like you to ", "."),
    (". Could you ", "?"),
    (". I need you to ", "."),
    (". Please ", "."),
]
GOAL_FIRST = [
    "I need to {goal}.",
    "I want to {goal}.",
    "I have to {goal} today.",
    "Please help me {goal}.",
    "Help me {goal}, please.",
    "Hoping to {goal} today.",
    "Calling to {goal}.",
    "Looking to {goal} today.",
    "I'm calling to {goal}.",
    "Could you help me {goal}?",
    "Trying to {goal} here.",
    "Need to {goal}, please.",
]
GOAL_FIRST_FORMAL = ["I need to {goal}.", "I wish to {goal}.", "I must {goal}.", "I intend to {goal}."]
#: every connector, lead and joiner a step may carry, for :func:`split_steps` (longest first)
_LEADS = sorted(
    {
        c.strip().lower()
        for c in [*FIRST, *NEXT, *LAST, *ONLY, *ASK, "Can you ", "I would like you to ", "Would you please ", "Kindly "]
        if c.strip()
    }
    | {"and", "also", "and also", "then,", "please"},
    key=len,
    reverse=True,
)
_SAID_ASIDE = {x for st in STYLES.values() for x in [*st.extras, *st.closings] if x}
_JOINERS = re.compile(r",? and then |, then |, and after that,? |; once that's done, |; then |, and once that's done, ")
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?\}")


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def identification(name: str | None, entity: str, id_text: str, rng, style: Style = NEUTRAL, unsure=False) -> str:
    """The identification clause (no greeting, no final punctuation)."""
    if name is None:
        forms = IDENTIFY_NO_NAME
    elif unsure:
        forms = IDENTIFY_UNSURE
    elif style.short:
        forms = IDENTIFY_SHORT
    elif style.formal:
        forms = IDENTIFY_FORMAL
    else:
        forms = IDENTIFY
    entities = entity + "s" if not entity.endswith("s") else entity
    return rng.choice(forms).format(name=name or "", entity=entity, entities=entities, id=id_text)


def _greeted(ident: str, rng, style: Style) -> str:
    """Greeting + identification as one sentence start ("Hi, this is ...")."""
    greets = ["Good morning", "Good afternoon", "Good evening", "Hello"] if style.formal else GREETINGS
    if style.short:
        greets = ["Hi", "Hey", "Hello"]
    greet = rng.choice([*greets, ""]) if not style.formal else rng.choice(greets)
    if not greet:
        return cap(ident)
    if style.formal and ident.startswith("my name"):
        return f"{greet}. {cap(ident)}"
    return f"{greet}, {ident}"


def _lead_step(conn: str, step: str) -> str:
    """``conn`` + ``step`` as one sentence, a question when the connector asks."""
    if conn.rstrip().lower().endswith(("you", "to")) or conn.lower().strip() in ("please", "kindly"):
        step = step.removeprefix("please ")
    text = cap(conn + step if conn else step)
    asks = re.search(r"\b(could|can|would) you (please )?$", conn.lower())
    return text + ("?" if asks else ".")


def _connectors(n: int, rng, style: Style, questions: bool) -> list[str]:
    """The connector of each of ``n`` sentences, drawn without repeats."""
    if n == 1:
        if questions:
            return [rng.choice(["Could you ", "Can you ", "Would you "])]
        if style.formal:
            return [rng.choice(["I would like you to ", "Would you please ", "Could you please ", "Kindly "])]
        return [rng.choice(ONLY)]
    if style.short:
        first, nexts, last = ["", "First, "], ["Then ", "Next, "], ["Then ", "Finally, ", "After that, "]
    else:
        first, nexts, last = FIRST, NEXT, LAST
    if questions:
        first = [c for c in first if not c.endswith("to ")]
    out = [rng.choice(first)]
    middle = rng.sample(nexts, min(len(nexts), n - 2)) if n > 2 else []
    while len(middle) < n - 2:
        middle.append(rng.choice(nexts))
    out += middle
    out.append(rng.choice([c for c in last if c not in out] or last))
    if questions:
        out = [c + rng.choice(ASK) if c else cap(rng.choice(ASK)) for c in out]
    return out


def _sentences(steps: list[str], rng, style: Style, questions: bool = False) -> list[str]:
    """One sentence per step (two adjacent steps sometimes joined into one)."""
    steps = list(steps)
    if len(steps) >= 3 and rng.random() < 0.35:  # the first two in one: "First, a and then b."
        steps[0:2] = [rng.choice(JOIN).format(a=steps[0], b=steps[1])]
    return [_lead_step(c, s) for c, s in zip(_connectors(len(steps), rng, style, questions), steps)]


def _compact(steps: list[str], rng) -> str:
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        return rng.choice(JOIN).format(a=steps[0], b=steps[1])
    return f"{steps[0]}, then {steps[1]}, and then {steps[2]}"


def compose(
    ident: str,
    steps: list[str],
    rng,
    *,
    style: Style = NEUTRAL,
    goal: str | None = None,
    context: str | None = None,
    ask: str | None = None,
    plans: tuple[str, ...] = ("plain", "plain", "goal", "goal", "context", "context", "compact", "questions"),
) -> str:
    """The instruction: ``ident`` (an identification clause), the ``steps`` and, by plan,
    the ``goal`` ("cancel my ride request"), the ``context`` sentence (the caller's reason)
    and a final question ``ask`` (a lookup's "Could you tell me ...?")."""
    options = [
        p
        for p in plans
        if (p != "goal" or goal) and (p != "context" or context) and (p != "compact" or 1 <= len(steps) <= 3)
    ]
    if style.short:
        options = [p for p in options if p in ("plain", "compact", "goal")] or options
    plan = rng.choice(options) if steps and options else "plain"
    if plan == "goal":
        lead = rng.choice(GOAL_FIRST_FORMAL if style.formal else GOAL_FIRST).format(goal=goal)
        if not style.formal and rng.random() < 0.25:
            lead = f"{rng.choice(GREETINGS)}, {lead if lead.startswith('I') else lead[0].lower() + lead[1:]}"
        head = [lead, cap(ident) + "."]
    elif plan == "context":
        head = [cap(context), cap(ident) + "."]
    else:
        head = [_greeted(ident, rng, style)]
    extra = [rng.choice(style.extras)] if style.extras and plan != "compact" and rng.random() < 0.6 else []
    if plan not in ("context", "compact", "goal") and context and rng.random() < style.context:
        extra.append(cap(context))
    if plan == "compact":
        lead, end = rng.choice([c for c in COMPACT_LEADS if " and " not in ident or "and" not in c[0]])
        head[-1] = head[-1] + lead + _compact(steps, rng).removeprefix("please ") + end
        sentences: list[str] = []
    else:
        head[-1] = head[-1] if head[-1].endswith((".", "?", "!")) else head[-1] + "."
        sentences = _sentences(steps, rng, style, questions=plan == "questions")
    closing = rng.choice(style.closings) if style.closings else ""
    return " ".join(p for p in [*head, *extra, *sentences, ask or "", closing] if p)


def strip_lead(text: str) -> str:
    """``text`` without the connectors and request leads in front of its step."""
    t = text.strip()
    while True:
        low = t.lower()
        for lead in _LEADS:
            if low.startswith(lead) and (len(t) == len(lead) or not t[len(lead)].isalnum()):
                t = t[len(lead) :].lstrip(" ,")
                break
        else:
            return t


def _step(text: str) -> str:
    t = strip_lead(text).rstrip(" .?!")
    if t[:1].isupper() and not re.match(r"I\b|I'", t):
        t = t[0].lower() + t[1:]
    return t


def split_steps(text: str, id_slot: str, name_slot: str | None) -> list[str] | None:
    """The steps of an instruction framed by :func:`compose` (or any instruction of the form
    "<framing, identification>. <step>. <step>..."): what follows the identification, cut at
    sentence ends and joiners, connectors removed. None when the text does not have that
    shape (no identification, or a placeholder before it)."""
    marks = [f"{{{id_slot}}}"] + ([f"{{{name_slot}}}"] if name_slot else [])
    sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z{\"'])", text.strip())
    at = next((i for i, s in enumerate(sentences) if marks[0] in s), None)
    if at is None:
        return None
    if any(PLACEHOLDER.search(s) for s in sentences[:at]):
        return None  # a step before the identification
    ident = sentences[at]
    ends = [ident.find(m) + len(m) for m in marks if m in ident]
    start = min(ident.find(m) for m in marks if m in ident)
    if PLACEHOLDER.search(ident[:start]):
        return None
    end = max(ends)
    if ident[end : end + 1] == ")":
        end += 1
    rest = ident[end:].strip(" .?!")
    rest = re.sub(r"^[-,;:]\s*", "", rest)
    pieces = [rest] if re.search(r"[A-Za-z]", rest) else []
    for s in sentences[at + 1 :]:
        if not PLACEHOLDER.search(s) and (s in _SAID_ASIDE or re.match(r"(?i)(thanks|thank you|many thanks)\b", s)):
            continue  # a friendly aside or a closing, not a step
        pieces.append(s)
    steps = [_step(p) for piece in pieces for p in _JOINERS.split(piece.strip().rstrip(".?!"))]
    if not steps or any(not s or not re.match(r"[a-z{]|I\b|I'", s) for s in steps):
        return None
    return steps
