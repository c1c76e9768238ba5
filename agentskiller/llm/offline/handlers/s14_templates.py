"""Offline answers for s14: a template writer and an honest judge.

The writer composes a first-person instruction from the trajectory: one clause per call,
worded from the tool's kind and name, with the slots the code derived. Each value is
phrased the way a person gives it, by what its column holds (:func:`value_phrase`): counts
with their unit ("for {nights} nights"), money as an amount ("a copay of {copay_amount}"),
dates as when ("checking in on {check_in_date}"), enum values in a sentence that fits them
("to talk about {agenda}", "for the {term} term"), addresses and free text as such; an
update says what changes ("change the drop-off address to {dropoff_address}"). Openers,
connectors, verbs, the phrasing variant and whether the user quotes a booking reference
are drawn from the request's seeded RNG, so different trajectories and seeds read
differently. The reason for the call comes from the trajectory's goal (its main write, or
what it looks up) and the domain's topic.

Like a real model it is not always right: with some probability it writes a *terse*
draft that leaves out a value the trajectory needs (a new date, a reason). The judge does
not know that; it checks every template against the criteria the prompt states, and such
a draft fails on trajectory faithfulness.
"""

from __future__ import annotations

import re
from typing import Any

from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.llm.offline.phrasing import plural

TERSE_PROBABILITY = 0.2

OPENERS = ["Hi, ", "Hello, ", "Good morning, ", "Hey there, ", "", "Good afternoon, "]
IDENTIFY = [
    "this is {name}, my {entity} ID is {id}.",
    "I'm {name} ({entity} ID {id}).",
    "my name is {name} and my {entity} number is {id}.",
    "{name} here - my {entity} ID is {id}.",
    "it's {name} calling; my {entity} ID is {id}.",
]
CONNECT_FIRST = ["First, ", "To start, ", "", "Could you ", "I'd like to start by asking you to "]
CONNECT_NEXT = ["Then ", "After that, ", "Next, ", "Once that's done, ", "When you have that, "]
CONNECT_LAST = ["Finally, ", "And lastly, ", "Then ", "After that, ", "To wrap up, "]
CONNECT_ONLY = ["", "Could you ", "I'd like you to ", "Can you please "]
VERB_BY_KIND = {
    "read": ["please look up", "please check", "pull up", "go over the details of", "please review"],
    "search": ["show me", "list", "let me see"],
    "create": ["book", "set up", "arrange"],
    "update": ["change", "update"],
    "delete": ["remove", "delete"],
    "compute": ["tell me how many", "count"],
}
GENERIC = {
    "get",
    "list",
    "search",
    "find",
    "show",
    "my",
    "a",
    "an",
    "the",
    "by",
    "for",
    "of",
    "all",
    "new",
    "record",
    "records",
    "details",
    "info",
    "count",
    "number",
    "total",
}
PREPOSITIONS = {"in", "for", "of", "to", "from", "on", "at", "with", "into", "out"}
READ_VERBS = {"get", "list", "search", "find", "show", "view", "count", "total", "lookup", "browse"}
CREATE_VERBS = {
    "book",
    "make",
    "request",
    "submit",
    "purchase",
    "open",
    "enroll",
    "create",
    "add",
    "schedule",
    "reserve",
    "apply",
    "register",
    "order",
    "start",
    "place",
    "buy",
    "subscribe",
    "file",
    "send",
}
#: where a referenced record goes in a create ("at that hotel", "with dentist {id}")
PLACE_WORDS = {"hotel", "branch", "clinic", "pharmacy", "office", "store", "location", "site", "campus"}
PERSON_WORDS = {
    "instructor",
    "dentist",
    "officer",
    "driver",
    "doctor",
    "mentor",
    "agent",
    "advisor",
    "clinician",
    "pharmacist",
    "banker",
    "tutor",
}

# Reasons for the call, third person ("the caller", "they"): s17 turns them into the
# caller's own words. {goal}: what the trajectory is for ("cancel their ride request").
REASONS = {
    "create": [
        "The caller has decided to {goal}, and they want it done while they have a moment.",
        "After comparing the options, the caller is ready to {goal}.",
        "{hook}, so the caller wants to {goal}.",
        "They have been meaning to {goal} for a while and finally have time today.",
        "{hook}; they would like to {goal} before the slots fill up.",
    ],
    "update": [
        "Something came up, so the caller needs to {goal}.",
        "The caller's plans have shifted and they want to {goal} before it is too late.",
        "They noticed that the current details no longer suit them and want to {goal}.",
        "A last-minute change at work means they need to {goal}.",
    ],
    "delete": [
        "They have made other arrangements and want to {goal}.",
        "Circumstances changed, so the caller wants to {goal} without any fuss.",
        "They no longer need it and want to {goal}.",
        "Their plans fell through, so they need to {goal}.",
    ],
    "read": [
        "The caller wants to {goal} before deciding anything.",
        "{hook}, so the caller wants to {goal}.",
        "The caller is planning ahead and wants to {goal}.",
    ],
}
#: scene-setters per domain topic (matched on words of the topic and description)
HOOKS = [
    (("hotel", "stay", "travel", "trip"), ["A trip is coming up", "Their travel plans are taking shape"]),
    (("dental", "dentist", "tooth"), ["They have been putting off dental care", "Their last check-up was a while ago"]),
    (
        ("pharmacy", "medication", "prescription"),
        ["They are running low on their medication", "Their doctor asked them to stay on top of their prescriptions"],
    ),
    (("loan", "borrow"), ["They are planning a big expense", "They are sorting out how to pay for a project"]),
    (("bank", "account", "deposit"), ["They are getting their finances in order", "Payday just came in"]),
    (("ride", "taxi", "trip"), ["They have to get across town", "Their usual way to get around is not available"]),
    (("registrar", "enroll", "advising"), ["The new term is approaching", "Registration deadlines are coming up"]),
    (("course", "learn", "mentor"), ["They want to keep up with their studies", "They are picking up a new skill"]),
]


def words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\W]+", name.lower()) if w]


def human(table: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", table).lower()


def table_noun(table: str) -> str:
    return human(table.split("_")[-1])


def article(noun: str) -> str:
    return ("an " if re.match(r"[aeiou]", noun) else "a ") + noun


def label(name: str) -> str:
    """A column as a person says it: ``new_dropoff_address`` -> "drop-off address"."""
    text = re.sub(r"^new_", "", name.split(".")[-1]).replace("_", " ")
    return re.sub(r"\bdropoff\b", "drop-off", re.sub(r"\bpickup\b", "pick-up", text))


def _stem_match(a: str, b: str) -> bool:
    return (
        a == b
        or a.rstrip("s") == b.rstrip("s")
        or (len(a) >= 4 and b.startswith(a))
        or (len(b) >= 4 and a.startswith(b))
    )


def goal_phrase(tool: str, noun: str, owner: str = "their") -> str:
    """What a tool does, in words: ``cancel_ride`` -> "cancel their ride request",
    ``change_destination_of_ride`` -> "change the destination of their ride request",
    ``enroll_in_course`` -> "enroll in a course", ``book_advising_meeting`` -> "book an
    advising meeting". ``noun``: the tool's table as words; ``owner``: "their" / "my", or a
    record phrase ("it", "the new ride request") that replaces "<owner> <noun>"."""
    ws = words(tool.split("__")[-1])
    verb, rest = ws[0], ws[1:]
    noun_words = noun.split()
    kept = [w for w in rest if not any(_stem_match(w, n) for n in noun_words) and w != "my"]
    possessive = owner in ("their", "my")
    target = f"{owner} {noun}" if possessive else owner
    if verb in READ_VERBS:
        return f"look over {owner} {plural(noun)}" if possessive else f"look over {target}"
    if verb in CREATE_VERBS:
        own = [w for w in noun_words if not _stem_match(verb, w)]
        if not own:  # "enroll" an "enrollment": the tool name says in what
            tail = [w for w in kept if w not in PREPOSITIONS]
            preps = [w for w in kept if w in PREPOSITIONS]
            return " ".join([verb, *preps, article(" ".join(tail))]) if tail else verb
        return f"{verb} {article(' '.join(own))}"
    if not kept:
        return f"{verb} {target}"
    if kept[-1] in PREPOSITIONS:
        lead = "" if kept[0] in PREPOSITIONS else "the "
        return f"{verb} {lead}{' '.join(kept)} {target}"
    return f"{verb} the {' '.join(kept)} of {target}"


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
    table = table_noun(slot["table"])
    if slot["name"] in holds:
        return rng.choice(
            [
                f"my {table} (reference {{{slot['name']}}})",
                f"my {table} {{{slot['name']}}}",
                f"my {table} with reference {{{slot['name']}}}",
            ]
        )
    if not slot["internal_id"]:
        return f"{table} {{{slot['name']}}}"
    descs = [n for n, s in slots.items() if s["kind"] == "descriptor" and s["table"] == slot["table"]]
    pref = [d for d in descs if re.search(r"date|time|day|name|title|number", d)] or descs
    if not pref:
        return f"my {table}"
    d = pref[0] if len(pref) == 1 else rng.choice(pref[:2])
    x, lab = "{" + d + "}", label(d)
    if re.search(r"date|time|day|_at$", d):
        return rng.choice([f"my {table} on {x}", f"my {table} scheduled for {x}"])
    if re.search(r"address", d):
        return f"my {table} to {x}" if "drop" in d else f"my {table} from {x}"
    if re.search(r"name|title", d):
        return rng.choice([f'my {table} named "{x}"', f'my {table} called "{x}"'])
    if "minutes" in d:
        return f"my {table} that lasts {x} minutes"
    if re.search(MONEY_RE, d.split(".")[-1]):
        return rng.choice([f"my {table} for {x}", f"my {table} with the {lab} of {x}"])
    if re.search(r"reason|purpose", d):
        return f"my {table} for {x}"
    if re.search(r"agenda|topic|subject", d):
        return f"my {table} about {x}"
    return rng.choice([f"my {table} with the {lab} {x}", f"my {table} whose {lab} is {x}"])


def record_link(slot: dict, slots: dict, holds: set[str], rng, seen: bool) -> str:
    """A record a create refers to: "at that hotel", "with dentist {dentist_id}"."""
    noun = table_noun(slot["table"])
    last = noun.split()[-1]
    prep = "at" if last in PLACE_WORDS else "with" if last in PERSON_WORDS else rng.choice(["for", "with"])
    return f"{prep} that {noun}" if seen else f"{prep} {record_phrase(slot, slots, holds, rng)}"


MONEY_RE = r"amount|price|fare|fee|cost|balance|copay|paid|deposit|payment|charge"


def value_phrase(param: dict, slot: str, kind: str, rng) -> str:
    """One value as a person gives it, by what its column holds (see the module docstring).
    Updates get "the <what> to <value>" so the clause can say what changes."""
    name = re.sub(r"^new_", "", param["name"].lower())
    x = "{" + slot + "}"
    lab = label(name)
    enum = bool(param.get("enum"))
    if kind == "update":
        if re.search(r"date|time|day|start|when|_at$", name):
            return f"the {lab.replace('check in', 'check-in')} to {x}" if "check" in name else f"to {x}"
        if name == "nights":
            return rng.choice([f"the stay to {x} nights", f"the length of the stay to {x} nights"])
        if name == "guests":
            return rng.choice([f"the number of guests to {x}", f"the booking to {x} guests"])
        if re.search(r"dropoff|destination", name):
            return rng.choice([f"the drop-off address to {x}", f"the destination to {x}"])
        if re.search(r"nickname|name|title", name):
            return f'the {lab} to "{x}"'
        return f"the {lab} to {x}"
    if re.search(r"date|time|day|start|when|_at$", name):
        if "check_in" in name:
            return rng.choice([f"checking in on {x}", f"arriving on {x}", f"with check-in on {x}"])
        return rng.choice([f"for {x}", f"on {x}"])
    if name == "nights":
        return rng.choice([f"for {x} nights", f"staying {x} nights"])
    if name in ("guests", "passengers", "seats", "party_size"):
        return rng.choice([f"for {x} {name.replace('_', ' ')}", f"for a party of {x}"])
    if name == "quantity":
        return rng.choice([f"for a quantity of {x}", f"{x} units"])
    if "refill" in name:
        return rng.choice([f"with {x} refills", f"with {x} refills remaining"])
    if "minutes" in name:
        return rng.choice([f"for {x} minutes", f"lasting {x} minutes"])
    if "percent" in name:
        return rng.choice([f"starting at {x}% progress", f"with my progress at {x}%"])
    if re.search(MONEY_RE, name):
        if "copay" in name:
            return rng.choice([f"with a copay of {x}", f"with the copay at {x}"])
        if "requested" in name or name == "amount":
            return rng.choice([f"for {x}", f"asking for {x}", f"for an amount of {x}"])
        if "balance" in name or "deposit" in name:
            return rng.choice([f"with an opening balance of {x}", f"putting in {x} to start"])
        if "fare" in name:
            return rng.choice([f"at a fare of {x}", f"with the quoted fare of {x}"])
        if "paid" in name or "price" in name:
            return rng.choice([f"paying {x}", f"for a price of {x}"])
        return f"with a {lab} of {x}"
    if "pickup" in name:
        return rng.choice([f"picking me up at {x}", f"with pick-up at {x}", f"from {x}"])
    if re.search(r"dropoff|destination", name):
        return rng.choice([f"going to {x}", f"dropping me off at {x}", f"to {x}"])
    if re.search(r"agenda|topic|subject", name):
        return rng.choice([f"to talk about {x}", f"to discuss {x}", f"about {x}"])
    if name == "term" or name.endswith("_term"):
        return rng.choice([f"for the {x} term", f"in the {x} term"])
    if "grading" in name:
        return rng.choice([f"with {x} grading", f"with the grading basis set to {x}"])
    if "channel" in name:
        return rng.choice([f"with {x} as the channel", f"choosing {x} as the way to meet"])
    if re.search(r"reason|note|comment|purpose|description|message", name):
        return rng.choice(
            [f"for {x}", f"because of {x}", f"regarding {x}"]
            if not enum
            else [f"for {x}", f"with {x} as the {lab}", f"the {lab} being {x}"]
        )
    if re.search(r"nickname|name|title", name):
        return rng.choice([f'called "{x}"', f'named "{x}"'])
    if enum:
        return rng.choice([f"with {x} as the {lab}", f"choosing {x} for the {lab}"])
    return rng.choice([f"with the {lab} {x}", f"with the {lab} set to {x}"])


def filter_phrase(param: dict, slot: str) -> tuple[str, str]:
    """A search or count filter: ("adjective", "") before the noun or ("", "postfix")."""
    name = param["name"].lower()
    x = "{" + slot + "}"
    if name == "status":
        return x, ""
    if "city" in name:
        return "", f"in {x}"
    if "department" in name:
        return "", f"in the {x} department"
    if "region" in name:
        return "", f"in the {x} region"
    if "specialty" in name:
        return "", f"specializing in {x}"
    if "form" in name:
        return "", f"in {x} form"
    if "bed" in name:
        return "", f"with a {x} bed"
    if "rank" in name:
        return "", f"at the rank of {x}"
    if name.endswith("type"):
        return "", f"of the {x} type"
    if re.search(r"name|title", name):
        return "", f'called "{x}"'
    if param.get("enum"):
        return x, ""
    return "", f"with {label(name)} {x}"


def search_clause(call: dict, filters: list[tuple[str, str]], rng) -> str:
    noun = plural(table_noun(call["table"]))
    mine = "my" in words(call["tool"].split("__")[-1])
    adj = " ".join(a for a, _ in filters if a)
    post = " ".join(p for _, p in filters if p)
    obj = " ".join(w for w in [adj, noun] if w) + (" " + post if post else "")
    if call["kind"] == "compute":
        tool = words(call["tool"].split("__")[-1])
        if tool[0] == "total":
            what = " ".join(w for w in tool[1:] if w != "my")
            return rng.choice([f"tell me my total {what} across my {obj}", f"add up the {what} of my {obj}"])
        return rng.choice([f"tell me how many {obj} I have", f"count my {obj}"])
    if mine:
        return rng.choice([f"show me my {obj}", f"list my {obj}", f"let me see my {obj}"])
    return rng.choice([f"find {obj}", f"search for {obj}", f"look for {obj}", f"show me {obj}"])


def clause(call: dict, slots: dict, holds: set[str], rng, terse: bool, seen: dict[str, None]) -> str:
    kind = call["kind"]
    if kind == "authorize":
        return ""
    verb = action_verb(call, rng)
    noun = table_noun(call["table"])
    rec_parts, links, val_parts, filters = [], [], [], []
    for p in call["parameters"]:
        s = slots.get(p.get("slot", ""))
        if s is None:
            continue
        if s["kind"] == "record":
            if s["table"] == call["table"]:
                rec_parts.append(s)
            else:
                links.append(record_link(s, slots, holds, rng, s["name"] in seen))
                seen[s["name"]] = None
        elif s["kind"] == "value" and kind in ("search", "compute"):
            filters.append(filter_phrase(p, s["name"]))
        elif s["kind"] == "value" and s["required"]:
            val_parts.append(value_phrase(p, s["name"], kind, rng))
    if kind == "update" and not val_parts:
        # all new values optional: an update still has to change one (the tool refuses an
        # empty one); prefer a column no precondition is about
        pre = {c["column"] for c in call.get("preconditions", [])}
        opts = [(p, p["slot"]) for p in call["parameters"] if slots.get(p.get("slot", ""), {}).get("kind") == "value"]
        opts = [o for o in opts if slots[o[1]]["column"] not in pre] or opts
        if opts:
            param, sname = opts[rng.randrange(len(opts))]
            val_parts.append(value_phrase(param, sname, kind, rng))
    if terse and kind in ("create", "update") and val_parts:
        val_parts = val_parts[:-1]  # the terse draft drops a detail
    if kind in ("search", "compute"):
        return search_clause(call, filters, rng)
    if rec_parts and rec_parts[0]["name"] in seen:
        target = (
            "my profile"
            if not rec_parts[0]["internal_id"]
            and kind == "read"
            and rec_parts[0]["table"] == slots.get(next(iter(seen), ""), {}).get("table")
            else "it"
        )
    elif rec_parts:
        target = record_phrase(rec_parts[0], slots, holds, rng)
    elif any("from_call" in p for p in call["parameters"]):
        target = rng.choice([f"the new {noun}", f"the {noun} you just made", f"that new {noun}"])
    else:
        target = article(noun)
    for s in rec_parts:
        seen[s["name"]] = None
    if kind == "create":
        head = goal_phrase(call["tool"], noun) if verb in CREATE_VERBS else f"{verb} {article(noun)}"
        m = re.search(r" an? ([a-z]+)$", head)
        if m and links and links[0].split(" {")[0].endswith(m.group(1)):
            # "enroll in a course" + "for course {course_id}" -> "enroll in course {course_id}"
            head = head[: m.start()] + " " + links.pop(0).split(" ", 1)[1]
        return " ".join([head, *links, *val_parts])
    if kind == "read":
        if target == "it":
            return rng.choice(["pull it up", "check it for me", "read me back the details"])
        return f"{verb} {target}"
    if kind == "update" and val_parts:
        first = val_parts[0]
        more = "".join(", and change " + v if v.startswith("the ") else " " + v for v in val_parts[1:])
        if first.startswith("to ") or verb == "rename":
            return f"{verb} {target} to {first[3:] if first.startswith('to ') else first.partition(' to ')[2]}{more}"
        what, _, to = first.removeprefix("the ").partition(" to ")
        if verb not in ("change", "update", "modify", "amend", "edit", "set", "adjust"):
            return f"{verb} {target} and change the {what} to {to}{more}"  # "reschedule it and change the channel"
        if target == "it":
            return f"{verb} {rng.choice(['its', 'the'])} {what} to {to}{more}"
        return f"{verb} the {what} of {target} to {to}{more}"
    if kind in ("update", "delete"):
        return goal_phrase(call["tool"], noun, owner=target)
    return " ".join([f"{verb} {target}", *val_parts])


def goal_of(ctx: dict) -> tuple[str, str]:
    """(category, phrase) of the trajectory's goal: its last write, else what it reads."""
    calls = ctx["trajectory"]
    writes = [c for c in calls if c["kind"] in ("create", "update", "delete")]
    main = writes[-1] if writes else calls[-1]
    noun = table_noun(main["table"])
    if not writes:
        return "read", read_goal(main, noun)
    first_verb = words(main["tool"].split("__")[-1])[0]
    if main["kind"] == "create":
        return "create", goal_phrase(main["tool"], noun)
    cat = (
        "delete"
        if main["kind"] == "delete"
        or first_verb
        in ("cancel", "drop", "withdraw", "close", "refund", "delete", "remove", "freeze", "suspend", "deactivate")
        else "update"
    )
    return cat, goal_phrase(main["tool"], noun)


def read_goal(call: dict, noun: str) -> str:
    if call["kind"] in ("search", "compute"):
        return f"get an overview of their {plural(noun)}"
    return f"double-check the details of their {noun}"


def hook_for(ctx: dict, rng) -> str:
    dom = (ctx.get("domains") or [{}])[0]
    text = " ".join(str(dom.get(k, "")) for k in ("topic", "description", "domain")).lower()
    for keys, hooks in HOOKS:
        if any(k in text for k in keys):
            return rng.choice(hooks)
    topic = str(dom.get("topic") or "service").replace("_", " ")
    return f"They are sorting out their {topic} matters"


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
    name_slot = next(
        (
            n
            for n in slots
            if n.lower().endswith(".full_name")
            or n.lower().endswith(".name")
            and slots[n]["table"] == slots.get(id_slot, {}).get("table")
        ),
        None,
    )
    entity = human(ctx["core_entity"])
    opener = rng.choice(OPENERS)
    ident = rng.choice(IDENTIFY).format(
        name="{" + name_slot + "}" if name_slot else "a customer", entity=entity, id="{" + (id_slot or "id") + "}"
    )
    text = (opener + ident) if opener else ident[0].upper() + ident[1:]
    # insertion-ordered (a dict, not a set): clause() reads the first entry, the user's own
    # ID slot, and set order would vary with the process's hash seed
    seen: dict[str, None] = {id_slot: None} if id_slot else {}
    body = [c for c in (clause(c, slots, holds, rng, terse, seen) for c in calls[1:]) if c]
    sentences = []
    for i, c in enumerate(body):
        if len(body) == 1:
            conn = rng.choice(CONNECT_ONLY)
        elif i == 0:
            conn = rng.choice(CONNECT_FIRST)
        elif i == len(body) - 1:
            conn = rng.choice(CONNECT_LAST)
        else:
            conn = rng.choice(CONNECT_NEXT)
        if conn and conn[0].isupper() and conn.rstrip().endswith(("you", "to")):
            c = c.removeprefix("please ")
        s = (conn + c) if conn else c[0].upper() + c[1:]
        if conn in ("Could you ", "Can you please "):
            s = s.replace("Could you please ", "Could you ") + "?"
        else:
            s = s[0].upper() + s[1:] + "."
        sentences.append(s)
    instruction = " ".join([text, *sentences])
    category, goal = goal_of(ctx)
    reason = rng.choice(REASONS[category]).format(goal=goal, hook=hook_for(ctx, rng))
    return {"instruction": instruction, "reason_for_call": reason[0].upper() + reason[1:], "user_holds": sorted(holds)}


# ----------------------------------------------------------------------- judge
KIND_CUES = {
    "read": ["check", "look", "pull up", "see", "details", "confirm", "review"],
    "search": ["list", "show", "see", "which", "all my"],
    "create": ["book", "new", "create", "add", "set up", "arrange", "open", "register"],
    "update": ["change", "update", "move", "modify", "switch", "set"],
    "delete": ["delete", "remove", "cancel", "close"],
    "compute": ["how many", "count", "total", "average", "sum", "number of"],
}
OTHER_PERSON = re.compile(
    r"\b(my (friend|neighbou?r|colleague)'s|on behalf of|someone else|another (patient|customer|user))\b", re.I
)
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
            problems["trajectory_faithful"].append(
                f"the instruction never gives {{{name}}}, which call(s) {s['calls']} need"
            )
    for call in ctx["trajectory"]:
        if call["kind"] != "update":
            continue
        news = sorted(n for n, s in slots.items() if s["kind"] == "value" and call["index"] in s["calls"])
        if news and not used & set(news):
            problems["trajectory_faithful"].append(
                f"the instruction never gives a new value for the update {call['tool']} (one of {news})"
            )
    for call in ctx["trajectory"][1:]:
        cues = KIND_CUES.get(call["kind"], []) + [w for w in words(call["tool"].split("__")[-1]) if w not in GENERIC]
        if not any(c in low for c in cues):
            problems["trajectory_faithful"].append(
                f"nothing in the instruction asks for {call['tool']} ({call['kind']})"
            )
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
