"""The offline s14 judge: checks a template against the criteria the prompt states, honestly
(it does not know which drafts the writer made terse)."""

from __future__ import annotations

import re

from ..phrasing import words
from .wording import GENERIC

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
        for p in call.get("parameters") or []:
            lk = p.get("link")
            if lk and lk["field"].replace("_", " ").removesuffix(" at") not in low:
                problems["trajectory_faithful"].append(
                    f"{call['tool']}.{p['name']} comes from the {lk['field']} of call {lk['call']}'s result, "
                    "but the instruction never says so"
                )
        if call["kind"] != "update" or any("link" in p for p in call.get("parameters") or []):
            continue  # (a linked value, carried over from the other service, is the new value)
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
