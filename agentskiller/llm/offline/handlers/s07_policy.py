"""Offline answer for s07: a domain service policy with structured markers.

Context (from :mod:`agentskiller.steps.domains.s07_policy`): ``blueprint`` (the blueprint as
JSON), ``database`` (per table: kind, primary key, count, columns with type, enum values or
range, references, and an example ID) and ``simulation_time``.

The policy is written the way a service's rule book reads: authorization first, ownership
of records, status rules from the tools' preconditions, validation of enums, ranges and
referenced records, explicit confirmation before any change, and what each tool does to the
data. It names only tables, columns, tools, parameters and values of the schema. Phrasing
varies with the request's seeded RNG.

Repair rounds (``req.feedback``): the previous policy (the last assistant message) is
edited, not thrown away: sections of unknown tools and repeated sections are dropped,
missing sections are written, lines that use a name the feedback calls unknown are
removed, broken markers are rebuilt, and a section (or the global rules) whose rule
markers the feedback names is written again from the rules. If the previous text cannot be read as a policy
at all, the policy is written afresh.
"""

from __future__ import annotations

import re

from .. import handler
from ..provider import OfflineRequest
from ..writers.policy import FEEDBACK_NAME_RE, GEND, SECTION_RE, START, PolicyWriter

#: a rule id named by the s07 rule checks ("rule X is not stated", "the marker <!-- RULE: X -->")
RULE_IN_FEEDBACK_RE = re.compile(r"(?:rule |RULE: )([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+)")


@handler("s07.policy")
def policy(req: OfflineRequest) -> str:
    w = PolicyWriter(req.context, req.rng)
    if not req.feedback:
        return w.policy()
    previous = next((m["content"] for m in reversed(req.messages) if m.get("role") == "assistant"), "")
    return _repair(w, previous, req.feedback)


def _repair(w: PolicyWriter, previous: str, feedback: list[str]) -> str:
    if START not in previous or GEND not in previous:
        return w.policy()
    bad_names = {m.group(1) for f in feedback for m in FEEDBACK_NAME_RE.finditer(f)}

    def clean(text: str) -> str:
        return "\n".join(ln for ln in text.splitlines() if not any(f"`{n}`" in ln for n in bad_names))

    tools = {t["name"] for t in w.bp["tools"]}
    sections: dict[str, str] = {}
    for m in SECTION_RE.finditer(previous):
        name, body = m.group(1), m.group(2)
        if name in tools and name not in sections:  # first section wins; unknown tools dropped
            sections[name] = clean(body)
    g = previous[previous.index(START) + len(START) : previous.index(GEND)]
    rules = [ln.strip()[2:] for ln in clean(g).splitlines() if ln.strip().startswith("- ")]
    # a section that lost a required part (or had none), or whose rule markers are wrong, is
    # rewritten from the blueprint and the rules; so are the global rules when theirs are
    for name in list(sections):
        if any(f"section `{name}` lacks" in f or f"section `{name}` states" in f for f in feedback):
            del sections[name]
    for f in feedback:
        rule = RULE_IN_FEEDBACK_RE.search(f)
        tool = rule.group(1).split(".")[0] if rule else None
        if tool in sections:
            del sections[tool]
        if (rule and tool in ("global", "conduct")) or "the global rule" in f:
            rules = []
    return w.policy(sections, rules or None)
