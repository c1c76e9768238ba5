"""Offline answer for s13: the Bridge Rules of a pair's merged policy.

Context (from :mod:`agentskiller.steps.cross.s13_policy_merge`): ``pair``, ``core_entity``,
``core_key``, ``shared_tables`` and per member its namespaced authorization tool, tools
(kind, physical table, description), relationship tables with their columns and its global
rules.

The rules are written from the two members:

* Identity: the same key authorizes both services (both authorization tools named); the
  shared entity record is the same person in both; each service's records belong to the
  person through their ``<Service>_<Table>.<key>`` column.
* Ordering: each service's authorization before its tools; a change in one service is
  confirmed and finished before the other's tools run (named with a write tool of each);
  a refusal in the first service stops a dependent step in the second.
* Conflict: each service's own rules govern its own tools and tables; where both apply
  the stricter rule wins; neither service changes the other's records.

Phrasing varies with the request's RNG. Repair rounds (``req.feedback``): the previous
section is kept; bullets that use a name the feedback rejects are dropped, bullets without
a kind label are dropped, and the rules of any missing kind (or missing required name) are
written afresh. An unreadable previous answer is written afresh.
"""

from __future__ import annotations

import re
from typing import Any

from .. import handler
from ..phrasing import camel_words
from ..provider import OfflineRequest

START, END, HEADING = "<!-- BRIDGE_RULES_START -->", "<!-- BRIDGE_RULES_END -->", "## Bridge Rules"
_NAME_RE = re.compile(r"`([^`\n]+)`")
_KIND_RE = re.compile(r"^\s*(?:\*\*)?\[?(identity|ordering|conflict)\]?:?(?:\*\*)?", re.I)
_WRITES = ("create", "update", "delete")


class _Writer:
    def __init__(self, ctx: dict, rng: Any) -> None:
        self.c = ctx
        self.rng = rng
        self.members = ctx["members"]
        self.key = ctx["core_key"]
        self.core = ctx["core_entity"]
        self.person = camel_words(self.core)

    def _write_tool(self, m: dict) -> str | None:
        return next(
            (t["name"] for t in m["tools"] if t["kind"] == "create"),
            next((t["name"] for t in m["tools"] if t["kind"] in _WRITES), None),
        )

    def identity(self) -> list[str]:
        a, b = self.members
        pick = self.rng.choice
        rules = [
            f"**Identity:** One `{self.key}` identifies the {self.person} in both services: authorize them with "
            f"`{a['authorize_tool']}` before any {a['domain']} tool and with `{b['authorize_tool']}` before any "
            f"{b['domain']} tool, "
            + pick(["using the same `{k}` both times.", "with the very same `{k}`."]).format(k=self.key)
            + " Never authorize the two services with different IDs in one conversation; if they differ, stop "
            "and ask which one is theirs.",
        ]
        owned = []
        for m in self.members:
            for table, cols in sorted(m.get("tables", {}).items()):
                if self.key in cols:
                    owned.append(f"`{table}.{self.key}`")
        if self.core in self.c.get("shared_tables", []):
            rules.append(
                f"**Identity:** The `{self.core}` record is shared: both services see the same {self.person}"
                + (
                    ", and a record of "
                    + " or ".join(o.split(".")[0] + "`" for o in owned)
                    + " belongs to them only when its "
                    + " / ".join(owned)
                    + f" equals their `{self.key}`."
                    if owned
                    else "."
                )
            )
        return rules

    def ordering(self) -> list[str]:
        a, b = self.members
        rules = [
            f"**Ordering:** A service's tools are used only after that service's authorization succeeded in "
            f"this conversation: `{a['authorize_tool']}` comes before the other {a['domain']} tools and "
            f"`{b['authorize_tool']}` before the other {b['domain']} tools, in whichever order the "
            f"{self.person} needs the services."
        ]
        wa, wb = self._write_tool(a), self._write_tool(b)
        if wa and wb:
            rules.append(
                self.rng.choice(
                    [
                        f"**Ordering:** Finish one service before starting the other: a change such as `{wa}` is described, "
                        f"confirmed and its result reported before any tool of the other service (such as `{wb}`) is called.",
                        f"**Ordering:** Handle the services one after the other: confirm and complete each change (for "
                        f"example `{wa}` or `{wb}`) and report its outcome before moving to the other service.",
                    ]
                )
            )
        rules.append(
            f"**Ordering:** If a step in one service is refused or fails, do not go on with a step in the "
            f"other service that depends on it; explain what happened and ask how to proceed (e.g. after a "
            f"failed `{wa or a['authorize_tool']}`)."
        )
        return rules

    def conflict(self) -> list[str]:
        a, b = self.members
        return [
            f"**Conflict:** Each service's own rules govern its own tools: the {a['domain']} rules for "
            f"{a['domain']} tools and the {b['domain']} rules for {b['domain']} tools; where both "
            f"services' rules apply to the same request (the shared `{self.core}` record, confirmations, refusals), "
            f"the stricter rule wins.",
            self.rng.choice(
                [
                    f"**Conflict:** Neither service changes the other's records: {a['domain']} tools never touch "
                    f"{b['domain']} tables and the reverse; a change the user wants in both services needs a separate "
                    f"confirmation in each.",
                    f"**Conflict:** {a['domain']} and {b['domain']} keep their own records: a tool of one service never "
                    f"changes the other's tables, and each service's change is confirmed on its own.",
                ]
            ),
        ]

    def section(self, rules: list[str] | None = None) -> str:
        rules = rules if rules is not None else self.identity() + self.ordering() + self.conflict()
        return "\n".join([START, HEADING, "", *[f"- {r}" for r in rules], END]) + "\n"


@handler("s13.bridge_rules")
def bridge_rules(req: OfflineRequest) -> str:
    w = _Writer(req.context, req.rng)
    if not req.feedback:
        return w.section()
    previous = next((m["content"] for m in reversed(req.messages) if m.get("role") == "assistant"), "")
    if START not in previous or END not in previous:
        return w.section()
    body = previous[previous.index(START) + len(START) : previous.index(END)]
    # the first backticked name of a line about an unknown / bare / ambiguous name is the offender
    bad = {
        m.group(1)
        for f in req.feedback
        if any(w_ in f for w_ in ("unknown", "bare tool", "ambiguous", "use the pair")) and (m := _NAME_RE.search(f))
    }
    kept: list[str] = []
    for ln in body.splitlines():
        s = ln.strip()
        if not s.startswith(("- ", "* ")):
            continue
        item = s[2:].strip()
        if not _KIND_RE.match(item) or any(n in bad for n in _NAME_RE.findall(item)):
            continue
        kept.append(item)
    kinds = {_KIND_RE.match(r).group(1).lower() for r in kept}
    need_identity = any("identity rules must name" in f for f in req.feedback)
    if "identity" not in kinds or need_identity:
        kept = [r for r in kept if _KIND_RE.match(r).group(1).lower() != "identity"] + w.identity()
    if "ordering" not in kinds or any("ordering rule" in f for f in req.feedback):
        kept = [r for r in kept if _KIND_RE.match(r).group(1).lower() != "ordering"] + w.ordering()
    if "conflict" not in kinds or any("conflict rule" in f for f in req.feedback):
        kept = [r for r in kept if _KIND_RE.match(r).group(1).lower() != "conflict"] + w.conflict()
    order = {"identity": 0, "ordering": 1, "conflict": 2}
    kept.sort(key=lambda r: order[_KIND_RE.match(r).group(1).lower()])
    return w.section(kept)
