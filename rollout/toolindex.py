"""What the offline assistant reads off an OpenAI tool list: kinds, entities, parameters.

Only the tool list (names, descriptions, JSON-schema parameters) goes in. A tool is
classified by its name and description:

* ``auth`` (``authorize_*``), ``profile`` (``get_*_profile``), ``get`` (``get_*``),
  ``list`` (``list_my_*``), ``search`` (``search_*`` / ``find_*``), ``count``
  (``count_my_*``), ``total`` (``total_*``) - the reads;
* ``create`` (the description says "the new ... starts as"), ``update`` (parameters whose
  description starts "New value:") and ``transition`` (one record, no other input: cancel,
  drop, check in ...) - the writes.

Tool names of a fused pair are ``<Domain>__<tool>``; :attr:`ToolInfo.domain` keeps the
prefix and :attr:`ToolInfo.base` the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .nlu import name_words, words

READ_KINDS = ("auth", "profile", "get", "list", "search", "count", "total")
WRITE_KINDS = ("create", "update", "transition")

_DESC_STOP = {
    "authorized", "optionally", "filtered", "filter", "belong", "return", "show", "list", "get", "fetch", "find",
    "search", "sorted", "capped", "result", "match", "up", "optional", "filters", "many", "count", "how",
    "value", "new", "only", "when", "status", "allowed", "while", "set", "become", "start", "given", "sum",
    "across", "may", "by", "their", "own", "record", "detail", "single", "student", "patient", "traveler",
    "holder", "account", "user", "customer", "la", "s",
}  # fmt: skip


@dataclass
class Param:
    name: str
    schema: dict
    required: bool

    @property
    def type(self) -> str:
        t = self.schema.get("type", "string")
        return t[0] if isinstance(t, list) else t

    @property
    def enum(self) -> list | None:
        return self.schema.get("enum")

    @property
    def fmt(self) -> str | None:
        return self.schema.get("format")

    @property
    def desc(self) -> str:
        return str(self.schema.get("description") or "")

    @property
    def is_id(self) -> bool:
        return self.name.endswith("_id") and self.type == "string" and not self.enum

    @property
    def new_value(self) -> bool:
        return self.desc.lower().startswith("new value")

    @property
    def entity(self) -> list[str]:
        """``dental_clinic_id`` -> ``["dental", "clinic"]``."""
        return name_words(self.name[: -len("_id")]) if self.is_id else []

    @property
    def tokens(self) -> set[str]:
        return set(name_words(self.name)) | {w for w in words(self.desc) if w not in ("new", "value", "usd")}

    def label(self) -> str:
        """How the assistant names it to a person: ``student_id`` -> "student ID"."""
        parts = self.name.split("_")
        return " ".join("ID" if p == "id" else p for p in parts)


@dataclass
class ToolInfo:
    name: str
    description: str
    params: dict[str, Param]
    domain: str = ""
    base: str = ""
    kind: str = ""
    verb: str = ""
    entity: list[str] = field(default_factory=list)
    #: the ID parameter naming the record a get / update / transition works on
    target: str | None = None
    #: more words for the entity (from the get tool of the same records)
    aliases: set[str] = field(default_factory=set)

    @property
    def is_write(self) -> bool:
        return self.kind in WRITE_KINDS

    def entity_tokens(self) -> set[str]:
        toks = set(self.entity) | self.aliases
        if self.target:
            toks |= set(self.params[self.target].entity)
        return toks

    def desc_tokens(self) -> set[str]:
        return {w for w in words(self.description) if w not in _DESC_STOP} - {self.verb}


def _classify(t: ToolInfo) -> None:
    base = t.base
    desc = t.description.lower()
    ids = [p for p in t.params.values() if p.is_id]
    required_ids = [p for p in ids if p.required]
    others = [p for p in t.params.values() if not p.is_id]
    words_ = base.split("_")
    if base.startswith("check_in"):
        t.verb = "check in"
    elif base.startswith("confirm_pickup"):
        t.verb = "confirm pickup"
    else:
        t.verb = words_[0]
    if words_[0] == "authorize":
        t.kind = "auth"
    elif words_[0] == "get" and base.endswith("_profile"):
        t.kind = "profile"
    elif words_[0] in ("get", "fetch", "view", "show") and required_ids:
        t.kind = "get"
    elif base.startswith("list_"):
        t.kind = "list"
    elif words_[0] in ("search", "find", "browse", "lookup"):
        t.kind = "search"
    elif base.startswith("count_"):
        t.kind = "count"
    elif words_[0] in ("total", "sum"):
        t.kind = "total"
    elif re.search(r"\bthe new [a-z ]+ starts as\b", desc) or words_[0] in (
        "book", "create", "enroll", "submit", "purchase", "request", "open", "make", "add", "register", "schedule",
    ):  # fmt: skip
        t.kind = "create"
    elif any(p.new_value for p in others):
        t.kind = "update"
    else:
        t.kind = "transition"
    # the record's entity
    rest = [w for w in words_[1:] if w not in ("my", "of", "for", "in", "details", "all")]
    if t.kind in ("get", "update", "transition") and required_ids:
        t.target = required_ids[0].name
        if len(required_ids) > 1:  # the one the name talks about
            best = max(required_ids, key=lambda p: len(set(p.entity) & set(name_words("_".join(rest)))))
            t.target = best.name
    if t.kind == "create":
        m = re.search(r"\bthe new ([a-z ]+?) starts as\b", desc)
        t.entity = name_words(m.group(1).replace(" ", "_")) if m else name_words("_".join(rest))
    elif t.kind in ("update",) and "of" in words_:
        t.entity = name_words("_".join(words_[words_.index("of") + 1 :]))
    else:
        t.entity = name_words("_".join(rest))
    if t.kind == "transition" and not required_ids and others:
        t.kind = "update"


def index_tools(tools: list[dict]) -> list[ToolInfo]:
    out = []
    for t in tools:
        f = t.get("function", t)
        schema = f.get("parameters") or {}
        req = set(schema.get("required") or [])
        params = {n: Param(n, s or {}, n in req) for n, s in (schema.get("properties") or {}).items()}
        name = f["name"]
        domain, _, base = name.rpartition("__")
        info = ToolInfo(name=name, description=str(f.get("description") or ""), params=params, domain=domain, base=base)
        _classify(info)
        out.append(info)
    # A list/count/write tool borrows the record's full name from the get tool of the same
    # entity: list_my_rides works on ride requests when get_ride takes a ride_request_id.
    gets = [t for t in out if t.kind == "get" and t.target]
    for t in out:
        if t.kind in ("auth", "profile", "get") or t.target:
            continue
        same = [
            g
            for g in gets
            if g.domain == t.domain and t.entity and set(t.entity) <= set(g.entity) | set(g.params[g.target].entity)
        ]
        if same:
            fewest = min(len(set(g.entity) - set(t.entity)) for g in same)
            for g in same:
                if len(set(g.entity) - set(t.entity)) == fewest:
                    t.aliases |= set(g.params[g.target].entity)
    return out


def tool_schema_value_ok(p: Param, value: Any, bounds: bool = True) -> bool:
    """``value`` fits ``p``'s type, enum and (with ``bounds``) its minimum / maximum."""
    if p.enum is not None and value not in p.enum:
        return False
    if p.type == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return False
    elif p.type == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
    elif p.type == "string" and not isinstance(value, str):
        return False
    if bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = p.schema.get("minimum"), p.schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return False
    return True


def describe(value: Any) -> str:  # pragma: no cover - debugging aid
    return repr(value)
