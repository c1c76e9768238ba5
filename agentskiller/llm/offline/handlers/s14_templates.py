"""Offline answers for s14: a template writer and an honest judge.

The writer composes a first-person instruction from the trajectory: one clause per call,
worded from the tool's kind and name, with the slots the code derived. Openers,
connectors, verbs and whether the user quotes a booking reference are drawn from the
request's seeded RNG, so different trajectories and seeds read differently.

Like a real model it is not always right: with some probability it writes a *terse*
draft that leaves out a value the trajectory needs (a new date, a reason). The judge does
not know that; it checks every template against the criteria the prompt states, and such
a draft fails on trajectory faithfulness.
"""

from __future__ import annotations

import re
from typing import Any

from agentskiller.llm.offline import OfflineRequest, handler

TERSE_PROBABILITY = 0.2

OPENERS = ["Hi, ", "Hello, ", "Good morning, ", "Hey there, ", ""]
IDENTIFY = [
    "this is {name}, my {entity} ID is {id}.",
    "I'm {name} ({entity} ID {id}).",
    "my name is {name} and my {entity} number is {id}.",
]
CONNECT_FIRST = ["First, ", "To start, ", "", "Could you "]
CONNECT_NEXT = ["Then ", "After that, ", "Next, ", "Once that's done, "]
CONNECT_LAST = ["Finally, ", "And lastly, ", "Then ", "After that, "]
VERB_BY_KIND = {
    "read": ["please look up", "please check", "pull up"],
    "search": ["show me", "list", "let me see"],
    "create": ["book", "set up", "arrange"],
    "update": ["change", "update"],
    "delete": ["remove", "delete"],
    "compute": ["tell me how many", "count"],
}
GENERIC = {"get", "list", "search", "find", "show", "my", "a", "an", "the", "by", "for", "of", "all", "new",
           "record", "records", "details", "info", "count", "number", "total"}
REASONS = [
    "{topic}: the caller needs to sort out their {table} before the end of the week.",
    "A change of plans means the caller has to deal with their {table} today.",
    "The caller got a reminder about their {table} and wants to act on it.",
    "The caller is reorganising their schedule and wants their {table} in order.",
]


def words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\W]+", name.lower()) if w]


def human(table: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", table).lower()


def action_verb(call: dict, rng) -> str:
    """The tool's own verb when its name has one (``cancel``, ``reschedule``), else a
    kind-typical verb."""
    tool = call["tool"].split("__")[-1]
    table_words = set(words(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", call["table"])))
    own = [w for w in words(tool) if w not in GENERIC and w not in table_words and w.rstrip("s") not in table_words]
    if call["kind"] in ("update", "delete", "create") and own:
        return own[0]
    return rng.choice(VERB_BY_KIND.get(call["kind"], ["handle"]))


def record_phrase(slot: dict, slots: dict, holds: set[str], rng) -> str:
    """How the user names a record: by the ID they hold, or by a descriptive attribute."""
    table = human(slot["table"].split("_")[-1])
    if slot["name"] in holds:
        return f"my {table} (reference {{{slot['name']}}})"
    if not slot["internal_id"]:
        return f"{table} {{{slot['name']}}}"
    descs = [n for n, s in slots.items() if s["kind"] == "descriptor" and s["table"] == slot["table"]]
    pref = [d for d in descs if re.search(r"date|time|day|name|title|number", d)] or descs
    if not pref:
        return f"my {table}"
    d = pref[0] if len(pref) == 1 else rng.choice(pref[:2])
    return f"my {table} with {d.split('.')[-1].replace('_', ' ')} {{{d}}}"


def value_phrase(name: str, slot: str, kind: str, rng) -> str:
    """A natural way to give one value: dates are "for", reasons "because of"."""
    n = name.lower()
    x = "{" + slot + "}"
    if re.search(r"date|time|day|start|when|_at$", n):
        return ("to " + x) if kind == "update" else rng.choice(["for " + x, "on " + x])
    if re.search(r"reason|note|comment|purpose|description|message", n):
        return rng.choice(["because of " + x, "regarding " + x])
    label = name.replace("_", " ")
    return (f"setting the {label} to {x}") if kind == "update" else f"with {label} {x}"


def clause(call: dict, slots: dict, holds: set[str], rng, terse: bool, seen: set[str]) -> str:
    verb = action_verb(call, rng)
    table = human(call["table"].split("_")[-1])
    kind = call["kind"]
    rec_parts, val_parts, filters = [], [], []
    for p in call["parameters"]:
        s = slots.get(p.get("slot", ""))
        if s is None:
            continue
        if s["kind"] == "record":
            if s["table"] == call["table"]:
                rec_parts.append(s)
            elif s["name"] in seen:
                val_parts.append(f"with that {human(s['table'].split('_')[-1])}")
            else:
                val_parts.append(f"with {record_phrase(s, slots, holds, rng)}")
                seen.add(s["name"])
        elif s["kind"] == "value" and kind in ("search", "compute"):
            filters.append("{" + s["name"] + "}")
        elif s["kind"] == "value" and s["required"]:
            val_parts.append(value_phrase(p["name"], s["name"], kind, rng))
    if kind == "update" and not val_parts:
        # all new values optional: an update still has to change one (the tool refuses an
        # empty one); prefer a column no precondition is about
        pre = {c["column"] for c in call.get("preconditions", [])}
        opts = [(p["name"], p["slot"]) for p in call["parameters"]
                if slots.get(p.get("slot", ""), {}).get("kind") == "value"]
        opts = [o for o in opts if slots[o[1]]["column"] not in pre] or opts
        if opts:
            pname, sname = rng.choice(opts)
            val_parts.append(value_phrase(pname, sname, kind, rng))
    if terse and kind in ("create", "update") and val_parts:
        val_parts = val_parts[:-1]   # the terse draft drops a detail
    if kind == "authorize":
        return ""
    if rec_parts and rec_parts[0]["name"] in seen:
        target = "my profile" if not rec_parts[0]["internal_id"] and kind == "read" and \
            rec_parts[0]["table"] == slots.get(next(iter(seen), ""), {}).get("table") else "it"
    elif rec_parts:
        target = record_phrase(rec_parts[0], slots, holds, rng)
    elif any("from_call" in p for p in call["parameters"]):
        target = f"the new {table}"
    else:
        target = f"a {table}"
    for s in rec_parts:
        seen.add(s["name"])
    if kind == "search":
        return f"{verb} my {' '.join(filters) + ' ' if filters else ''}{table}s"
    if kind == "compute":
        return f"tell me how many {' '.join(filters) + ' ' if filters else ''}{table}s I have"
    if kind == "create":
        return " ".join([f"{verb} a new {table}", *val_parts])
    return " ".join([f"{verb} {target}", *val_parts])


@handler("s14.template")
def write_template(req: OfflineRequest) -> dict:
    ctx: dict[str, Any] = req.context
    rng = req.rng
    slots = {s["name"]: s for s in ctx["slots"]}
    calls = ctx["trajectory"]
    holds = {n for n, s in slots.items() if s["kind"] == "record" and s["internal_id"] and rng.random() < 0.5}
    # a repair round answers the feedback by writing the careful variant
    terse = not req.feedback and rng.random() < TERSE_PROBABILITY
    auth = calls[0]
    id_slot = next((p.get("slot") for p in auth["parameters"] if p.get("slot")), None)
    name_slot = next((n for n in slots if n.lower().endswith(".full_name") or n.lower().endswith(".name")
                      and slots[n]["table"] == slots.get(id_slot, {}).get("table")), None)
    entity = human(ctx["core_entity"])
    opener = rng.choice(OPENERS)
    ident = rng.choice(IDENTIFY).format(name="{" + name_slot + "}" if name_slot else "a customer",
                                        entity=entity, id="{" + (id_slot or "id") + "}")
    text = (opener + ident) if opener else ident[0].upper() + ident[1:]
    seen: set[str] = {id_slot} if id_slot else set()
    body = [c for c in (clause(c, slots, holds, rng, terse, seen) for c in calls[1:]) if c]
    sentences = []
    for i, c in enumerate(body):
        if i == 0:
            conn = rng.choice(CONNECT_FIRST)
        elif i == len(body) - 1:
            conn = rng.choice(CONNECT_LAST)
        else:
            conn = rng.choice(CONNECT_NEXT)
        s = (conn + c) if conn else c[0].upper() + c[1:]
        if conn == "Could you ":
            s = s.replace("Could you please ", "Could you ") + "?"
        else:
            s = s[0].upper() + s[1:] + "."
        sentences.append(s)
    instruction = " ".join([text, *sentences])
    topic = ctx["domains"][0]["topic"].replace("_", " ") if ctx.get("domains") else "service"
    main_table = human(calls[-1]["table"].split("_")[-1])
    reason = rng.choice(REASONS).format(topic=topic.capitalize(), table=main_table)
    return {"instruction": instruction, "reason_for_call": reason, "user_holds": sorted(holds)}


# ----------------------------------------------------------------------- judge
KIND_CUES = {
    "read": ["check", "look", "pull up", "see", "details", "confirm", "review"],
    "search": ["list", "show", "see", "which", "all my"],
    "create": ["book", "new", "create", "add", "set up", "arrange", "open", "register"],
    "update": ["change", "update", "move", "modify", "switch", "set"],
    "delete": ["delete", "remove", "cancel", "close"],
    "compute": ["how many", "count", "total", "average", "sum", "number of"],
}
OTHER_PERSON = re.compile(r"\b(my (friend|neighbou?r|colleague)'s|on behalf of|someone else|another (patient|customer|user))\b", re.I)
PAST = re.compile(r"\b(yesterday|last (week|month|year)|in the past)\b", re.I)
HEDGES = re.compile(r"\b(maybe|either|or something|not sure|whatever|if .* then)\b", re.I)


def judge_template(ctx: dict) -> dict:
    slots = {s["name"]: s for s in ctx["slots"]}
    tpl = ctx["template"]
    text = tpl["instruction"]
    low = text.lower()
    used = set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}", text))
    holds = set(tpl.get("user_holds", []))
    problems: dict[str, list[str]] = {c: [] for c in ctx["criteria"]}
    # trajectory_faithful: every needed value present, every call asked for in spirit
    for name, s in slots.items():
        if s["kind"] == "value" and s["required"] and name not in used:
            problems["trajectory_faithful"].append(f"the instruction never gives {{{name}}}, which "
                                                   f"call(s) {s['calls']} need")
    for call in ctx["trajectory"]:
        if call["kind"] != "update":
            continue
        news = sorted(n for n, s in slots.items() if s["kind"] == "value" and call["index"] in s["calls"])
        if news and not used & set(news):
            problems["trajectory_faithful"].append(f"the instruction never gives a new value for the update "
                                                   f"{call['tool']} (one of {news})")
    for call in ctx["trajectory"][1:]:
        cues = KIND_CUES.get(call["kind"], []) + [w for w in words(call["tool"].split("__")[-1]) if w not in GENERIC]
        if not any(c in low for c in cues):
            problems["trajectory_faithful"].append(f"nothing in the instruction asks for {call['tool']} ({call['kind']})")
    # unambiguous: every record the trajectory acts on is identified
    for name, s in slots.items():
        if s["kind"] != "record" or not s["required"]:
            continue
        described = any(slots.get(u, {}).get("kind") == "descriptor" and slots[u]["table"] == s["table"] for u in used)
        if name not in used and not described:
            problems["unambiguous"].append(f"the {s['table']} record ({{{name}}}) is neither given nor described")
        if name in used and s["internal_id"] and name not in holds:
            problems["unambiguous"].append(f"{{{name}}} is an internal ID the user is not said to hold")
    unknown = used - set(slots)
    if unknown:
        problems["unambiguous"].append("unknown placeholders: " + ", ".join(sorted(unknown)))
    if HEDGES.search(text):
        problems["unambiguous"].append("hedged or conditional wording")
    # policy_compliant: the user identifies themself and acts on their own records only
    auth = ctx["trajectory"][0]
    id_slot = next((p.get("slot") for p in auth["parameters"] if p.get("slot")), None)
    if auth["kind"] != "authorize":
        problems["policy_compliant"].append("the trajectory does not start with authorization")
    elif id_slot and id_slot not in used:
        problems["policy_compliant"].append(f"the user never identifies themself ({{{id_slot}}})")
    if OTHER_PERSON.search(text):
        problems["policy_compliant"].append("asks to act on someone else's records")
    if PAST.search(text) and any(c["kind"] in ("create", "update") for c in ctx["trajectory"]):
        problems["policy_compliant"].append("asks for a booking or change in the past")
    # realistic: a person's request, not a spec
    if len(text) < 40:
        problems["realistic"].append("too short to be a real request")
    if not re.search(r"\b(I|I'm|my|me)\b", text):
        problems["realistic"].append("not written in the first person")
    for call in ctx["trajectory"]:
        if call["tool"] in text:
            problems["realistic"].append(f"names the tool {call['tool']} literally")
    if not tpl.get("reason_for_call", "").strip() or tpl.get("reason_for_call") == text:
        problems["realistic"].append("no reason for the call")
    scores = {}
    for c, ps in problems.items():
        penalty = sum(4 if "never gives" in p or "neither given" in p or "asks for" in p else 2 for p in ps)
        scores[c] = max(1, 5 - penalty)
    return {**scores, "problems": [p for c in ctx["criteria"] for p in problems[c]]}


@handler("s14.judge")
def judge(req: OfflineRequest) -> dict:
    return judge_template(req.context)
