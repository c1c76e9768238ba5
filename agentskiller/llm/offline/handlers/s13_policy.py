"""Offline answer for s13: the Bridge Rules of a pair's merged policy.

Context (from :mod:`agentskiller.steps.cross.s13_policy_merge`): ``pair``, ``core_entity``,
``core_key``, ``shared_tables``, per member its namespaced authorization tool, tools (kind,
physical table, description), relationship tables with their columns and global rules, and
``bridge_rules``: the pair's derived Bridge Rules (id, kind, names, statement), which the
pair server enforces.

The section states every given rule on one bullet: its kind label, the rule in words
(naming what the rule names), a sentence of advice on what the assistant does when the rule
refuses a call, and the rule's marker ``<!-- RULE: <id> -->``. It writes no rule it was not
given: an unmarked rule would be text only. Phrasing varies with the request's RNG. Repair
rounds (``req.feedback``) write the section afresh from the rules, which drops whatever the
previous answer had wrong.
"""

from __future__ import annotations

from typing import Any

from .. import handler
from ..provider import OfflineRequest

START, END, HEADING = "<!-- BRIDGE_RULES_START -->", "<!-- BRIDGE_RULES_END -->", "## Bridge Rules"

#: what the assistant does when a rule of the kind refuses (one is picked per rule)
_ADVICE = {
    "identity": [
        "If the two IDs differ, stop and ask which one is theirs.",
        "Never switch to another person mid-conversation.",
    ],
    "authorization": [
        "Authorize each service before its first tool, in whichever order the request needs.",
        "Do not rely on the other service's authorization.",
    ],
    "separation": [
        "A change the user wants in both services is made with each service's own tools.",
        "Use each service's own record IDs with its own tools.",
    ],
    "ordering": [
        "If the earlier step is refused or fails, do not go on; explain what happened.",
        "Carry the value over from the earlier result; do not ask the user for it.",
    ],
}


class _Writer:
    def __init__(self, ctx: dict, rng: Any) -> None:
        self.rules = list(ctx.get("bridge_rules") or [])
        self.rng = rng

    def bullet(self, rule: dict) -> str:
        advice = self.rng.choice(_ADVICE.get(rule["kind"], [""]))
        text = f"{rule['statement']} {advice}".strip()
        return f"**{rule['kind'].capitalize()}:** {text} <!-- RULE: {rule['id']} -->"

    def section(self) -> str:
        return "\n".join([START, HEADING, "", *[f"- {self.bullet(r)}" for r in self.rules], END]) + "\n"


@handler("s13.bridge_rules")
def bridge_rules(req: OfflineRequest) -> str:
    return _Writer(req.context, req.rng).section()
