"""The offline s14 template writer: a first-person instruction and a reason for the call.

The writer composes a first-person instruction from the trajectory: one clause per call,
worded from the tool's kind and name, with the slots the code derived. Each value is
phrased the way a person gives it, by what its column holds (:func:`.wording.value_phrase`): counts
with their unit ("for {nights} nights"), money as an amount ("a copay of {copay_amount}"),
dates as when ("checking in on {check_in_date}"), enum values in a sentence that fits them
("to talk about {agenda}", "for the {term} term"), addresses and free text as such; an
update says what changes ("change the drop-off address to {dropoff_address}"). The framing
around the clauses (greeting, identification, connectors, the sentence plan: goal first,
one combined sentence, questions) is :mod:`.framing`'s. Verbs, the phrasing variant, the
framing and whether the user quotes a booking reference are drawn from the request's seeded
RNG, so different trajectories and seeds read differently. The reason for the call comes from the trajectory's goal (its main write, or
what it looks up) and the domain's topic.

Like a real model it is not always right: with some probability it writes a *terse*
draft that leaves out a value the trajectory needs (a new date, a reason). The judge does
not know that; it checks every template against the criteria the prompt states, and such
a draft fails on trajectory faithfulness.
"""

from __future__ import annotations

import re
from typing import Any

from ..phrasing import article, plural, words
from .framing import compose, identification
from .wording import (
    CREATE_VERBS,
    action_verb,
    filter_phrase,
    goal_phrase,
    human,
    record_link,
    record_phrase,
    table_noun,
    value_phrase,
)

TERSE_PROBABILITY = 0.2

# caller's own words. {goal}: what the trajectory is for ("cancel their ride request").
REASONS = {
    "create": [
        "The caller has decided to {goal}, and they want it done while they have a moment.",
        "After comparing the options, the caller is ready to {goal}.",
        "{hook}, so the caller wants to {goal}.",
        "They have been meaning to {goal} for a while and finally have time today.",
        "{hook}; they would like to {goal} before the slots fill up.",
        "A friend recommended it, so the caller wants to {goal}.",
        "The caller has some free time this week, so they want to {goal}.",
        "{hook}, and the caller would rather {goal} now than leave it to the last minute.",
        "The caller is organising the coming weeks, so they want to {goal}.",
    ],
    "update": [
        "Something came up, so the caller needs to {goal}.",
        "The caller's plans have shifted and they want to {goal} before it is too late.",
        "They noticed that the current details no longer suit them and want to {goal}.",
        "A last-minute change at work means they need to {goal}.",
        "The caller realised the original details were wrong, so they need to {goal}.",
        "Their schedule changed this week, so they want to {goal}.",
        "A family commitment clashes with the current plan, so the caller needs to {goal}.",
    ],
    "delete": [
        "They have made other arrangements and want to {goal}.",
        "Circumstances changed, so the caller wants to {goal} without any fuss.",
        "They no longer need it and want to {goal}.",
        "Their plans fell through, so they need to {goal}.",
        "The caller found a better option elsewhere, so they want to {goal}.",
        "They double-booked by mistake and need to {goal}.",
        "Money is tight this month, so the caller wants to {goal}.",
    ],
    "read": [
        "The caller wants to {goal} before deciding anything.",
        "{hook}, so the caller wants to {goal}.",
        "The caller is planning ahead, so they want to {goal}.",
        "The caller wants to {goal} before making any changes.",
        "They lost track of the details and want to {goal}.",
    ],
}
#: scene-setters per domain topic (matched on words of the topic and description)
HOOKS = [
    (
        ("hotel", "stay", "travel", "trip"),
        ["A trip is coming up", "Their travel plans are taking shape", "They are planning a weekend away"],
    ),
    (
        ("dental", "dentist", "tooth"),
        [
            "They have been putting off dental care",
            "Their last check-up was a while ago",
            "A tooth has been bothering them",
        ],
    ),
    (
        ("pharmacy", "medication", "prescription"),
        [
            "They are running low on their medication",
            "Their doctor asked them to stay on top of their prescriptions",
            "Their prescription is about to run out",
        ],
    ),
    (
        ("loan", "borrow"),
        [
            "They are planning a big expense",
            "They are sorting out how to pay for a project",
            "They are renovating their kitchen",
        ],
    ),
    (
        ("bank", "account", "deposit"),
        ["They are getting their finances in order", "Payday just came in", "They are saving for a holiday"],
    ),
    (
        ("ride", "taxi", "trip"),
        [
            "They have to get across town",
            "Their usual way to get around is not available",
            "They have an appointment across town",
        ],
    ),
    (
        ("registrar", "enroll", "advising"),
        [
            "The new term is approaching",
            "Registration deadlines are coming up",
            "Their advisor suggested a change of plan",
        ],
    ),
    (
        ("course", "learn", "mentor"),
        ["They want to keep up with their studies", "They are picking up a new skill", "Their exams are coming up"],
    ),
]


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
    rec_parts, links, val_parts, filters, linked = [], [], [], [], []
    for p in call["parameters"]:
        if "link" in p and kind in ("create", "update"):
            linked.append(link_phrase(p, kind))
            continue
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
    if kind == "update" and not val_parts and not linked:
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
    val_parts = linked + val_parts  # a hand-over is the point of the storyline: never dropped
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
        # the record a create made: named the first time, "it" after that
        key = f"new:{call['table']}"
        target = (
            "it" if key in seen else rng.choice([f"the new {noun}", f"the {noun} you just made", f"that new {noun}"])
        )
        seen[key] = None
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
            own = "the" if " of " in what else rng.choice(["its", "the"])  # not "its length of the stay"
            return f"{verb} {own} {what} to {to}{more}"
        return f"{verb} the {what} of {target} to {to}{more}"
    if kind in ("update", "delete"):
        return goal_phrase(call["tool"], noun, owner=target)
    return " ".join([f"{verb} {target}", *val_parts])


def field_words(name: str) -> str:
    """A column as the link phrase names it: ``scheduled_at`` -> "scheduled time"."""
    return re.sub(r" at$", " time", name.replace("_", " "))


def link_phrase(param: dict, kind: str) -> str:
    """A value the other service's result hands over, named by where it comes from (the user
    does not know the value itself): "with the dropoff address set to the street address of
    that hotel"; an update says "the <what> to ..." (a date: "to ...") like value_phrase."""
    lk = param["link"]
    src = f"the {field_words(lk['field'])} of that {table_noun(lk['table'])}"
    what = field_words(param["name"])
    if kind == "update":
        timed = re.search(r"date|time|day|start|when|_at$", param["name"])
        return f"to {src}" if timed else f"the {what} to {src}"
    return f"with the {what} set to {src}"


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


def write_template(ctx: dict[str, Any], rng: Any, repairing: bool) -> dict:
    """The template for ``ctx`` (slots, trajectory, core_entity, domains): {instruction,
    reason_for_call, user_holds}. ``repairing``: a repair round, which writes the careful variant."""
    slots = {s["name"]: s for s in ctx["slots"]}
    calls = ctx["trajectory"]
    holds = {n for n, s in slots.items() if s["kind"] == "record" and s["internal_id"] and rng.random() < 0.5}
    # a repair round answers the feedback by writing the careful variant
    terse = not repairing and rng.random() < TERSE_PROBABILITY
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
    ident = identification("{" + name_slot + "}" if name_slot else None, entity, "{" + (id_slot or "id") + "}", rng)
    # insertion-ordered (a dict, not a set): clause() reads the first entry, the user's own
    # ID slot, and set order would vary with the process's hash seed
    seen: dict[str, None] = {id_slot: None} if id_slot else {}
    clauses = [clause(c, slots, holds, rng, terse, seen) for c in calls[1:]]
    # a change to the record the same task creates reads as the user changing their mind
    # (the template says so: s15 keeps few of these, tasks.self_correction_share)
    fix = corrects_itself(calls)
    if fix is not None and clauses[fix - 1]:
        clauses[fix - 1] = rng.choice(CORRECTIONS) + clauses[fix - 1]
    body = [c for c in clauses if c]
    category, goal = goal_of(ctx)
    mine = re.sub(r"\btheir\b", "my", goal)
    instruction = compose(ident, body, rng, goal=mine, plans=("plain", "plain", "goal", "compact", "questions"))
    reason = rng.choice(REASONS[category]).format(goal=goal, hook=hook_for(ctx, rng))
    return {
        "instruction": instruction,
        "reason_for_call": reason[0].upper() + reason[1:],
        "user_holds": sorted(holds),
        "self_correction": fix is not None,
    }


CORRECTIONS = ["on second thought, ", "actually, I've changed my mind: ", "wait, sorry - "]


def corrects_itself(calls: list[dict]) -> int | None:
    """Index of the first update / delete of a table a create earlier in ``calls`` wrote."""
    made: set[str] = set()
    for i, c in enumerate(calls):
        if c["kind"] in ("update", "delete") and c["table"] in made:
            return i
        if c["kind"] == "create":
            made.add(c["table"])
    return None
