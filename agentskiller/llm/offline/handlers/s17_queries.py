"""Offline user simulator for s17: persona, scenario and first message from the task.

Values come only from the request's context (the instance): the filled template, the
values the calls need that the template's wording left out (``extra_values``), and facts
taken verbatim from ``facts_available`` - never a fact of its own making - so the answer
is grounded by construction. A value is written the way a person says it
(:func:`render_value`): a date or date-time spelled out ("Friday, June 6, 2025 at 10:00 AM
UTC"), an enum without underscores ("course planning"), money with a currency sign and
separators ("$54,159.96"); IDs, names, addresses and free text stay verbatim. The s17
grounding check (:mod:`agentskiller.grounding`) recognises exactly these renderings
of the instance's own values.

Each instance is said in its own words, so the instances of one template do not read
alike: the persona's manner is drawn first (:mod:`..writers.manner`), the template's steps
are taken out of its framing (:func:`..writers.framing.split_steps`), their lead verbs and
the phrases before their values re-drawn (:func:`..writers.wording.reword`), and framed anew
(:func:`..writers.framing.compose`): another greeting and identification, another sentence
plan (goal first, reason first, one sentence, questions), other connectors, the caller's
reason sometimes, and what the manner adds. A template of another shape keeps its own
words, framed by the persona. The context's ``task_kind`` shapes it too: a ``lookup`` asks
for each label in ``asks``, an ``auth_failure`` gives its ID a little unsure of it, a
``refusal`` asks as an action does. On a repair round it drops whatever the feedback names
and writes values verbatim.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from agentskiller.grounding import iso_when, mentions
from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.llm.offline.phrasing import MONEY_RE, article, plural, words
from agentskiller.llm.offline.writers.framing import compose, identification, split_steps
from agentskiller.llm.offline.writers.manner import style_for
from agentskiller.llm.offline.writers.wording import CREATE_VERBS, PREPOSITIONS, READ_VERBS, goal_phrase, human, reword
from agentskiller.models.catalog import snake_case

SLOT_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")
MANNERS = [
    "polite and patient",
    "in a hurry, short sentences",
    "a little anxious, asks for reassurance",
    "chatty and friendly",
    "formal and precise",
    "matter-of-fact",
    "cheerful but easily confused",
    "tired after a long day, wants it done quickly",
    "warm and a bit talkative",
    "brisk and to the point",
    "courteous and precise",
]
GREETINGS = ["Hi", "Hello", "Good morning", "Hey", "Hi there", "Good afternoon"]
OPENERS = [
    "{greet}, I'd like to {goal}.",
    "{greet}. I need to {goal} - can you help me with that?",
    "{greet}, I'm hoping you can help me {goal}.",
    "{greet}! Is this the right place to {goal}?",
    "{greet}, I'm calling because I want to {goal}.",
    "{greet}. Quick one: I need to {goal}.",
    "{greet}, could you help me {goal} today?",
]
LOOKUP_OPENERS = [
    "{greet}, I have a few questions about my {topic}.",
    "{greet}. Could you help me look something up about my {topic}?",
    "{greet}, I'm trying to get some information on my {topic}.",
]
ASK_FORMS = [
    "Could you tell me {what}?",
    "Can you let me know {what}?",
    "I'd like to know {what}.",
    "Please tell me {what}.",
    "What I need to find out is {what}.",
]
REASON_LEADS = ["Honestly, ", "So, ", "Well, ", "", "", "Basically, ", "Right, ", "Okay, so "]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _name(record: dict) -> str | None:
    for k in ("full_name", "name", "display_name"):
        if isinstance(record.get(k), str) and record[k].strip():
            return record[k]
    first, last = record.get("first_name"), record.get("last_name")
    if isinstance(first, str) and isinstance(last, str):
        return f"{first} {last}"
    return None


def _clock(hh: str, rng) -> str:
    h, m = int(hh[:2]), hh[3:]
    if rng.random() < 0.5:
        return f"{hh} UTC"
    ap = "AM" if h < 12 else "PM"
    h12 = h % 12 or 12
    return f"{h12}:{m} {ap} UTC" if m != "00" or rng.random() < 0.5 else f"{h12} {ap} UTC"


def render_value(name: str, value: Any, rng) -> str:
    """``value`` as a person says it (see the module docstring); verbatim when in doubt."""
    if isinstance(value, bool) or value is None:
        return str(value)
    text = str(value)
    when = iso_when(text) if isinstance(value, str) else None
    if when is not None:
        tz_ok = not re.search(r"[+-]\d{2}:?\d{2}$", text) or re.search(r"[+-]00:?00$", text)
        if not tz_ok or rng.random() < 0.15:
            return text
        day = dt.date(when.year, when.month, when.day)
        style = rng.randrange(3)
        date = (
            f"{MONTHS[when.month - 1]} {when.day}, {when.year}"
            if style == 0
            else f"{DAYS[day.weekday()]}, {MONTHS[when.month - 1]} {when.day}, {when.year}"
            if style == 1
            else f"{when.day} {MONTHS[when.month - 1]} {when.year}"
        )
        return f"{date} at {_clock(when.time, rng)}" if when.time else date
    leaf = name.split(".")[-1].lower()
    if isinstance(value, (int, float)) and MONEY_RE.search(leaf):
        return f"${value:,.2f}" if isinstance(value, float) or rng.random() < 0.5 else f"${value:,}"
    if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", value):
        return value.replace("_", " ")
    return text


def first_person(reason: str) -> str:
    """The template's third-person reason ("the caller ... their ...") in the caller's words."""
    subs = [
        (r"\b[Tt]he caller's\b", "my"),
        (r"\b[Tt]he caller is\b", "I am"),
        (r"\b[Tt]he caller has\b", "I have"),
        (r"\b[Tt]he caller was\b", "I was"),
        (r"\b[Tt]he caller (\w+?)s\b", r"I \1"),
        (r"\b[Tt]he caller\b", "I"),
        (r"\b[Tt]hey are\b", "I am"),
        (r"\b[Tt]hey're\b", "I'm"),
        (r"\b[Tt]hey have\b", "I have"),
        (r"\b[Tt]hey were\b", "I was"),
        (r"\b[Tt]hey\b", "I"),
        (r"\b[Tt]heir\b", "my"),
        (r"\bthem\b", "me"),
        (r"\bthemselves\b", "myself"),
    ]
    for rx, to in subs:
        reason = re.sub(
            rx,
            lambda m, to=to: m.expand(to)[:1].upper() + m.expand(to)[1:] if m.group(0)[0].isupper() else m.expand(to),
            reason,
        )
    return reason


def _goal(ctx: dict) -> tuple[str, str]:
    """("goal", phrase) for the trajectory's main write, or ("lookup", topic) when it only reads."""
    traj = [t.split("__")[-1] for t in ctx["template"]["trajectory"]]
    # a pair's second authorize call is no goal: the user wants what follows it
    writes = [t for t in traj[1:] if words(t)[0] not in READ_VERBS and words(t)[0] != "authorize"]
    reads = [t for t in traj if words(t)[0] != "authorize"] or traj
    main = writes[-1] if writes else reads[-1]
    ws = words(main)
    if not writes:
        noun = " ".join(w for w in ws[1:] if w != "my") or "account"
        return "lookup", noun if ws[0] == "get" or noun.endswith("s") else plural(noun)
    verb = ws[0]
    rest = [w for w in ws[1:] if w != "my"]
    if verb in CREATE_VERBS:
        preps = [w for w in rest if w in PREPOSITIONS]
        noun = " ".join(w for w in rest if w not in PREPOSITIONS) or "booking"
        return "goal", " ".join([verb, *preps, article(noun)])
    # the noun of an update is the tool name's tail after its last preposition ("of ride")
    cut = max((i for i, w in enumerate(rest) if w in ("of", "for", "to", "from")), default=-1)
    noun = " ".join(rest[cut + 1 :]) or "booking"
    return "goal", goal_phrase(main, noun, owner="my")


def _ident_slots(ctx: dict) -> tuple[str | None, str | None]:
    """The template's placeholders for the user's own ID and name (either may be missing)."""
    used = SLOT_RE.findall(ctx["template"]["instruction"])
    core = ctx.get("core_entity") or ""
    user = ctx.get("user_record") or {}
    values = ctx["values"]
    own = {str(v) for k, v in user.items() if k.endswith("_id")}
    id_slot = next((n for n in used if n.lower() == f"{snake_case(core)}_id"), None) or next(
        (n for n in used if "." not in n and str(values.get(n)) in own), None
    )
    name = _name(user)
    name_slot = next(
        (n for n in used if n.split(".")[0] == core and n.split(".")[-1] in ("full_name", "name", "display_name")),
        None,
    ) or next((n for n in used if name and values.get(n) == name), None)
    return id_slot, name_slot


def _labelled(labels: list[str]) -> str:
    out = [
        lab if re.match(r"(the|my|your|its|their|how|what|when|which|whether)\b", lab) else f"the {lab}"
        for lab in labels
    ]
    return out[0] if len(out) == 1 else ", ".join(out[:-1]) + " and " + out[-1]


def ask_sentence(asks: list[dict], rng) -> str | None:
    """A lookup's question for the values the user wants to be told ("Could you tell me the
    status and the date of my appointment?"); ``asks``: [{"field", "label"}]."""
    labels = [str(a.get("label") or a.get("field", "")).replace("_", " ").strip() for a in asks or []]
    labels = [lab for lab in labels if lab]
    if not labels:
        return None
    return rng.choice(ASK_FORMS).format(what=_labelled(labels))


def _fill(text: str, rendered: dict[str, str]) -> str:
    text = SLOT_RE.sub(lambda m: rendered.get(m.group(1), m.group(0)), text)
    # "for 1 nights" -> "for 1 night": the template could not know the count
    return re.sub(r"(?<![\d.,$])\b1 (night|guest|refill|unit|minute|passenger|seat)s\b", r"1 \1", text)


def _extra_sentence(ctx: dict, said: str, natural: bool, rng) -> str | None:
    """The values the calls take that the template's wording left out, in one sentence."""
    labels = {f["value"]: f["fact"] for f in ctx.get("facts_available") or []}
    parts = []
    for n, v in sorted((ctx.get("extra_values") or {}).items()):
        if mentions(said, v):
            continue
        label = labels.get(str(v)) or labels.get(str(v).replace("_", " ")) or n.split(".")[-1].replace("_", " ")
        label = re.sub(r"^(the|your) ", "", label)
        parts.append((label, render_value(n, v, rng) if natural else str(v)))
    if not parts:
        return None
    if len(parts) == 1 and rng.random() < 0.5:
        form = rng.choice(["Please make sure the {l} is {v}.", "And the {l} should be {v}."])
        return form.format(l=parts[0][0], v=parts[0][1])
    lead, end = rng.choice([("Please set ", "."), ("Also, please set ", "."), ("Could you also set ", "?")])
    return lead + " and ".join(f"the {lab} to {v}" for lab, v in parts) + end


def _identify_sentence(ctx: dict, said: str, natural: bool, rng) -> str | None:
    """How the user tells their record apart when it is one of several a lookup lists
    (``identify``: descriptor slot -> value): "The appointment I mean is the one on June 6."."""
    parts = []
    for n, v in sorted((ctx.get("identify") or {}).items()):
        if mentions(said, v):
            continue
        table, _, col = n.partition(".")
        noun = human(table)
        value = render_value(n, v, rng) if natural else str(v)
        if iso_when(str(v)) is not None:
            parts.append(rng.choice([f"The {noun} I mean is the one on {value}.", f"It's the {noun} on {value}."]))
        else:
            label = col.replace("_", " ")
            parts.append(
                rng.choice([f"It's the {noun} whose {label} is {value}.", f"The {noun} I mean has {label} {value}."])
            )
    return " ".join(parts) or None


@handler("s17.query")
def write_query(req: OfflineRequest) -> dict[str, Any]:
    ctx = req.context
    rng = req.rng
    kind = ctx.get("task_kind") or "action"
    manner = rng.choice(MANNERS)
    style = style_for(manner)
    # a repair round plays it safe: every value verbatim
    natural = not req.feedback
    rendered = {k: (render_value(k, v, rng) if natural else str(v)) for k, v in sorted(ctx["values"].items())}
    name = _name(ctx.get("user_record") or {}) or "the customer"
    template = ctx["template"]["instruction"]
    filled_reason = _fill(ctx["template"]["reason_for_call"], rendered)
    lead = rng.choice(REASON_LEADS)
    reason = first_person(filled_reason)
    if (set(re.findall(r"[a-z]+", lead.lower())) - {"the", "is"}) & set(re.findall(r"[a-z]+", reason.lower())):
        lead = ""  # no "So, ..., so I need to"
    if lead and not reason.startswith("I "):
        reason = reason[0].lower() + reason[1:]
    reason = lead + reason
    reason = reason[0].upper() + reason[1:]
    goal_kind, goal = _goal(ctx)
    goal_text = goal if goal_kind == "goal" else f"find out a few details about my {goal}"
    ask = ask_sentence(ctx.get("asks") or [], rng) if kind == "lookup" else None
    extra = _extra_sentence(ctx, _fill(template, rendered), natural, rng)
    which = _identify_sentence(ctx, _fill(template, rendered), natural, rng)
    tail = " ".join(s for s in (which, extra, ask) if s)
    id_slot, name_slot = _ident_slots(ctx)
    steps = split_steps(template, id_slot, name_slot) if id_slot else None
    framed = None
    if steps:
        steps = [reword(s, rng) for s in steps]
        who = "{" + name_slot + "}" if name_slot else (name if name != "the customer" else None)
        ident = identification(
            who,
            human(ctx.get("core_entity") or "customer"),
            "{" + id_slot + "}",
            rng,
            style,
            unsure=kind == "auth_failure",
        )
        framed = compose(ident, steps, rng, style=style, goal=goal_text, context=reason, ask=tail or None)
        if sorted(set(SLOT_RE.findall(framed))) != sorted(set(SLOT_RE.findall(template))):
            framed = None  # never lose (or add) a value the template states
    if framed is None:  # a template of another shape: its own words, framed by the persona
        pre = reason if rng.random() < style.context else ""
        post = rng.choice(style.closings) if style.closings else ""
        framed = " ".join(s for s in (pre, template, tail, post) if s)
    instruction = _fill(framed, rendered)
    internal = set(ctx.get("internal_values") or []) | {
        str(ctx["values"][n]) for n in ctx.get("internal_ids", []) if n in ctx["values"]
    }
    facts = [
        {"fact": f["fact"], "value": f["value"]}
        for f in ctx["facts_available"]
        if not any(i in f["value"] for i in internal)
    ]
    bad = " ".join(req.feedback)
    facts = [f for f in facts if f["value"] not in bad]
    greet = rng.choice(GREETINGS)
    if goal_kind == "goal" and kind != "lookup":
        first = rng.choice(OPENERS).format(greet=greet, goal=goal)
    else:
        first = rng.choice(LOOKUP_OPENERS).format(greet=greet, topic=goal)
    if name != "the customer" and rng.random() < 0.5:
        first = first.replace(greet, f"{greet}, this is {name}", 1).replace(f"this is {name}!", f"this is {name}.")
    return {
        "persona": {"name": name, "manner": manner},
        "reason_for_call": reason,
        "instruction": instruction,
        "known_facts": facts,
        "first_message": first,
    }
