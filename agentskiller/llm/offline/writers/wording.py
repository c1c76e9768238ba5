"""Phrase-level wording of the offline template writer: how a person names a tool's action, a
record and a value (see :mod:`.template` for how the clauses become an instruction)."""

from __future__ import annotations

import re

from ..phrasing import MONEY_RE, article, plural, words

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


def human(table: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", table).lower()


def table_noun(table: str) -> str:
    return human(table.split("_")[-1])


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
        # "with drop-off at": "my ride request to {x}" reads as the new value in an update
        return f"my {table} with drop-off at {x}" if "drop" in d else f"my {table} with pick-up at {x}"
    if re.search(r"name|title", d):
        return rng.choice([f'my {table} named "{x}"', f'my {table} called "{x}"'])
    if "minutes" in d:
        return f"my {table} that lasts {x} minutes"
    if MONEY_RE.search(d.split(".")[-1]):
        return rng.choice([f"my {table} for {x}", f"my {table} with the {lab} of {x}"])
    if "refill" in d:
        return f"my {table} with {x} refills remaining"
    if re.search(r"(^|_)term$", d.split(".")[-1]):
        return f"my {table} for the {x} term"
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
    if MONEY_RE.search(name):
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
            else [f"for {x}", f"with {x} as the {lab}", f"giving {x} as the {lab}"]
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


#: (what a step may start with, what it may start with instead): a read, a search, a booking,
#: a change said in other words. Only the lead verb changes; what follows stays as it is.
_LEAD_SWAPS = [
    (
        r"(?:pull it up|check it for me|read me back the details|read the details back to me|go over it with me)$",
        ["pull it up", "check it for me", "read me back the details", "read the details back to me"],
    ),
    (
        r"(?:please )?(?:look up|pull up|check|review|go over the details of|bring up|have a look at|take a look at)"
        r"(?= (?!in\b|out\b|it\b))",
        ["look up", "pull up", "check", "review", "go over the details of", "bring up", "have a look at"],
    ),
    (r"(?:show me|list|let me see|find|search for|look for)(?= )", ["show me", "list", "let me see", "find"]),
    (
        r"(?:book|set up|arrange|schedule)(?= an? [a-z ]*(?:appointment|meeting|session|consultation)\b)",
        ["book", "set up", "arrange", "schedule"],
    ),
    (r"(?:make|book)(?= an? [a-z ]*reservation\b)", ["make", "book"]),
    (r"(?:purchase|buy)(?= an? )", ["purchase", "buy"]),
    (r"(?:change|update|modify|amend|adjust)(?= (?:the|its) )", ["change", "update", "modify", "amend"]),
    (r"(?:reschedule|move)(?= (?:it|my|the|that) [^{]*\bto \{)", ["reschedule", "move"]),
    (r"(?:remove|delete)(?= )", ["remove", "delete"]),
]
#: phrases right before a value that mean the same ("to talk about {agenda}" / "to discuss {agenda}")
_VALUE_SWAPS = [
    ["to talk about", "to discuss"],
    ["picking me up at", "with pick-up at"],
    ["going to", "dropping me off at"],
    ["checking in on", "arriving on", "with check-in on"],
    ["at a fare of", "with the quoted fare of"],
    ["with a copay of", "with the copay at"],
    ["scheduled for", "booked for"],
    ["with reference", "under reference", "with the reference"],
    ["named", "called"],
]


def reword(step: str, rng) -> str:
    """``step`` with its lead verb and the phrases before its values drawn anew (same meaning,
    same placeholders)."""
    for rx, choices in _LEAD_SWAPS:
        m = re.match(rx, step)
        if m:
            step = rng.choice(choices) + step[m.end() :]
            break
    for group in _VALUE_SWAPS:
        alt = "|".join(re.escape(p) for p in sorted(group, key=len, reverse=True))
        step = re.sub(rf"\b(?:{alt})(?= \"?\{{)", lambda _m, g=group: rng.choice(g), step)
    if step.endswith(" it") and rng.random() < 0.3:
        step += " for me"
    return step
