"""A blueprint under repair: a copy of the rejected answer, the feedback's codes, and the request."""

from __future__ import annotations

import json
import re

from ..provider import OfflineRequest
from .blueprint import templates_for
from .blueprint_tools import Builder, columns_of

WRITE_KINDS = ("create", "update", "delete")


def codes_of(feedback: list[str]) -> set[str]:
    """The problem codes named in feedback lines ``"[code] message"``."""
    return {m.group(1) for line in feedback for m in [re.match(r"\s*\[([a-z_]+)\]", line)] if m}


class Draft:
    """The blueprint under repair (a deep copy) and what the fixes read from the request."""

    def __init__(self, req: OfflineRequest, bp: dict) -> None:
        self.req = req
        self.codes = codes_of(req.feedback)
        self.outline: dict = req.context["outline"]
        self.limits: dict = req.context.get("limits", {})
        self.entities: dict = req.context.get("entities", {})
        self.bp: dict = json.loads(json.dumps(bp))
        self.bp.setdefault("tools", [])
        self.bp.setdefault("relationships", [])
        self.core: str = self.bp.get("core_entity") or self.outline["core_entity"]
        # set by index_tables() once the tables are repaired
        self.ents: list[str] = []
        self.tables: dict[str, dict[str, dict]] = {}
        self.rel_names: set[str] = set()
        self.builder: Builder | None = None
        self.tools: list[dict] = []

    def has(self, *codes: str) -> bool:
        return any(c in self.codes for c in codes)

    @property
    def domain(self) -> str:
        return self.bp.get("domain") or self.outline["domain"]

    def index_tables(self) -> None:
        """Columns of every table (entities and repaired relationships) and a tool builder for them."""
        ents = self.ents
        temps = {
            t.name: t
            for t in templates_for(
                self.req.catalog,
                {**self.outline, "peripheral_entities": ents[1:]},
                int(self.limits.get("max_relationships", 3)),
            )
        }
        rels = self.bp["relationships"]
        self.builder = Builder(self.req.rng, self.domain, self.core, ents[1:], self.entities, temps, rels)
        self.tables = {e: {a["name"]: a for a in self.entities.get(e, {}).get("attributes", [])} for e in ents}
        self.tables.update({r["name"]: columns_of(r) for r in rels})
        self.rel_names = {r["name"] for r in rels}
        self.tools = self.bp["tools"]

    def columns(self, tool: dict) -> dict[str, dict]:
        return self.tables.get(tool.get("table"), {})
