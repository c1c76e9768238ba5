"""Offline answer for s08: tool-graph edges and preconditions derived from the blueprint.

From the tools' kinds and tables (context built by :mod:`agentskiller.steps.domains.s08_tool_graph`):

* authorize -> every other tool (state dependency: the session comes first);
* search of a table -> read / update / delete of the same table (information flow: the IDs
  come from the search results);
* read of a table -> update / delete of the same table (information flow: look before you
  change);
* create of a relationship -> read / update of the same table (storyline flow: check or
  adjust what was just booked);
* search or read of a peripheral entity -> create of a relationship with a foreign key to it
  (information flow: the booking needs the dentist's ID).

Edges only run from {authorize, search, read, create} to {read, update, delete, create} in
that order of tables (entities before relationships), so the graph is a DAG whose only root
is the authorize tool. Preconditions: the authorize tool for every tool that requires
authorization, nothing else (records may already exist, so a change does not need the
create that made them). Repair rounds get the same derivation, which satisfies the checks.
"""

from __future__ import annotations

from .. import handler
from ..provider import OfflineRequest


@handler("s08.tool_graph")
def tool_graph(req: OfflineRequest) -> dict:
    c = req.context
    tools = c["tools"]
    root = c["authorize_tool"]
    fks = c.get("foreign_keys", {})
    edges: list[dict] = []

    def add(src: str, dst: str, kind: str) -> None:
        if src != dst and not any(e["source"] == src and e["target"] == dst for e in edges):
            edges.append({"source": src, "target": dst, "type": kind})

    for t in tools:
        if t["name"] != root:
            add(root, t["name"], "state dependency")
    for a in tools:
        for b in tools:
            same = a["table"] == b["table"]
            if a["kind"] == "search" and same and b["kind"] in ("read", "update", "delete"):
                add(a["name"], b["name"], "information flow")
            elif a["kind"] == "read" and same and b["kind"] in ("update", "delete"):
                add(a["name"], b["name"], "information flow")
            elif a["kind"] == "create" and same and b["kind"] in ("read", "update"):
                add(a["name"], b["name"], "storyline flow")
            elif (
                a["kind"] in ("search", "read")
                and b["kind"] == "create"
                and not same
                and a["table"] != c.get("core_entity")
                and a["table"] in set(fks.get(b["table"], {}).values())
            ):
                add(a["name"], b["name"], "information flow")
    pre = {t["name"]: ([root] if t["requires_auth"] and t["name"] != root else []) for t in tools}
    return {"edges": edges, "preconditions": pre}
