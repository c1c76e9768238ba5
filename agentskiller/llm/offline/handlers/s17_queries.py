"""Offline user simulator for s17: persona, scenario and first message from the task.

Values come only from the request's context (the instance): the filled template, the
values the calls need that the template's wording left out (``extra_values``), and facts
taken verbatim from ``facts_available`` - never a fact of its own making - so the answer
is grounded by construction; the wording (manner, greeting, how the first message opens the topic) is
drawn from the seeded RNG. On a repair round it drops whatever the feedback names.
"""

from __future__ import annotations

import re
from typing import Any

from agentskiller.llm.offline import OfflineRequest, handler

SLOT_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")
MANNERS = ["polite and patient", "in a hurry, short sentences", "a little anxious, asks for reassurance",
           "chatty and friendly", "formal and precise", "matter-of-fact"]
GREETINGS = ["Hi", "Hello", "Good morning", "Hey", "Hi there"]
OPENERS = [
    "{greet}, I need some help with my {topic}.",
    "{greet}, I'm calling about my {topic}.",
    "{greet}. Could you help me sort out something with my {topic}?",
    "{greet}, I have a question about my {topic}.",
]
REASON_LEADS = ["Honestly, ", "So, ", "Well, ", ""]


def _name(record: dict) -> str | None:
    for k in ("full_name", "name", "display_name"):
        if isinstance(record.get(k), str) and record[k].strip():
            return record[k]
    first, last = record.get("first_name"), record.get("last_name")
    if isinstance(first, str) and isinstance(last, str):
        return f"{first} {last}"
    return None


def _topic(ctx: dict) -> str:
    last = ctx["template"]["trajectory"][-1].split("__")[-1]
    words = [w for w in last.split("_")[1:] if w] or ["account"]
    return " ".join(words)


@handler("s17.query")
def write_query(req: OfflineRequest) -> dict[str, Any]:
    ctx = req.context
    rng = req.rng
    values = {k: str(v) for k, v in ctx["values"].items()}
    name = _name(ctx.get("user_record") or {}) or "the customer"
    instruction = SLOT_RE.sub(lambda m: values.get(m.group(1), m.group(0)), ctx["template"]["instruction"])
    extra = [f"{n.split('.')[-1].replace('_', ' ')} to {v}" for n, v in sorted((ctx.get("extra_values") or {}).items())
             if str(v) not in instruction]
    if extra:
        instruction = instruction.rstrip() + " Please set the " + " and the ".join(extra) + "."
    filled_reason = SLOT_RE.sub(lambda m: values.get(m.group(1), m.group(0)), ctx["template"]["reason_for_call"])
    lead = rng.choice(REASON_LEADS)
    reason = filled_reason.replace("The caller", "I").replace(
        "the caller", "I").replace("their", "my").replace("needs", "need").replace("wants", "want").replace(
        "has to", "have to").replace("is ", "am ").replace("got", "got")
    if lead and not reason.startswith("I "):
        reason = reason[0].lower() + reason[1:]
    reason = lead + reason
    reason = reason[0].upper() + reason[1:]
    internal = set(ctx.get("internal_values") or []) | {str(ctx["values"][n]) for n in ctx.get("internal_ids", [])
                                                         if n in ctx["values"]}
    facts = [{"fact": f["fact"], "value": f["value"]} for f in ctx["facts_available"]
             if not any(i in f["value"] for i in internal)]
    bad = " ".join(req.feedback)
    facts = [f for f in facts if f["value"] not in bad]
    first = rng.choice(OPENERS).format(greet=rng.choice(GREETINGS), topic=_topic(ctx))
    if name != "the customer" and rng.random() < 0.5:
        first = first.replace(",", f", this is {name},", 1) if "," in first else first
    return {"persona": {"name": name, "manner": rng.choice(MANNERS)}, "reason_for_call": reason,
            "instruction": instruction, "known_facts": facts, "first_message": first}
