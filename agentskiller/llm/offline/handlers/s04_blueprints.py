"""Offline answers for s04: domain outlines per person and the full blueprint per domain.

``s04.outlines`` picks domain ideas of the person's topics from the catalogue;
``s04.blueprint_detail`` turns an outline into a blueprint in the shape of
:class:`agentskiller.models.blueprint.Blueprint`: relationship tables from the topic's
templates (foreign keys ``<entity>_id``) and tools of every kind derived from each
template's status lifecycle. When the step reports problems (``req.feedback``, lines
``"[code] ..."``), the previous answer is read back from the conversation and repaired for
each named code, as a model following the feedback would.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentskiller.models.catalog import pascal_case, primary_key_for, snake_case

from ...extract import extract_json
from ..catalog import Catalog, RelationshipTemplate, Topic
from ..phrasing import article, plural
from ..provider import OfflineRequest, handler

MAX_TOOL_LEN = 48
PREPOSITIONS = ("in", "for", "of", "on", "to")


# ------------------------------------------------------------------ naming helpers
def words(name: str) -> str:
    return snake_case(name).replace("_", " ")


def fit_name(name: str, domain: str) -> str:
    """A snake_case tool name short enough for ``<domain>__<name>`` (64 chars) and 48 chars."""
    name = re.sub(r"[^a-z0-9_]+", "_", snake_case(name)).strip("_") or "tool"
    if not name[0].isalpha():
        name = "do_" + name
    limit = min(MAX_TOOL_LEN, 62 - len(domain))
    parts = name.split("_")
    # Drop the longest middle words first: the verb (first) and the object (last) carry the meaning.
    while len("_".join(parts)) > limit and len(parts) > 2:
        middle = max(range(1, len(parts) - 1), key=lambda i: (len(parts[i]), i))
        parts.pop(middle)
    return "_".join(parts)[:limit].rstrip("_")


def unique(name: str, taken: set[str], domain: str) -> str:
    base, n = name, 2
    while name in taken:
        name = fit_name(f"{base[: MAX_TOOL_LEN - 3]}_{n}", domain)
        n += 1
    taken.add(name)
    return name


# ----------------------------------------------------------------------- outlines
@handler("s04.outlines")
def outlines(req: OfflineRequest) -> dict:
    """Context: person {name, description, topics}, neighbours [{name, ...}], count,
    max_peripheral. Answer: {"outlines": [Outline, ...]}."""
    ctx = req.context
    cat: Catalog = req.catalog
    person = ctx["person"]["name"]
    neighbours = {n["name"] for n in ctx.get("neighbours", [])}
    count = int(ctx.get("count", 2))
    max_peripheral = int(ctx.get("max_peripheral", 3))
    by_topic: dict[str, list[dict]] = {}
    for tname in ctx["person"].get("topics", []):
        topic = cat.topics.get(tname)
        if topic is None or topic.person != person:
            continue
        for idea in topic.domains:
            peri = topic.peripherals_of(idea)
            if peri and set(peri) <= neighbours and len(peri) <= max_peripheral:
                by_topic.setdefault(tname, []).append(
                    {
                        "domain": idea.name,
                        "topic": tname,
                        "description": idea.description,
                        "core_entity": person,
                        "peripheral_entities": peri,
                    }
                )
    # Prefer one domain per topic (domains of one person in different topics make the
    # interesting cross-domain pairs), topics in a seeded order.
    topics = sorted(by_topic)
    req.rng.shuffle(topics)
    for t in topics:
        req.rng.shuffle(by_topic[t])
    chosen: list[dict] = []
    while len(chosen) < count and any(by_topic[t] for t in topics):
        for t in topics:
            if by_topic[t] and len(chosen) < count:
                chosen.append(by_topic[t].pop())
    return {"outlines": chosen}


# ---------------------------------------------------------------- blueprint builder
PHRASES = {
    "authorize": [
        "Verify the {core} by their {pk} and bind this session to them. Must be called before any other tool.",
        "Authenticate the {core} with their {pk}; every other tool works on this {core}'s behalf.",
    ],
    "profile": [
        "Return the authorized {core}'s own profile record.",
        "Look up the profile of the authorized {core} (only their own record).",
    ],
    "search": [
        "Search {plural} by optional filters; returns up to 50 matches sorted by ID.",
        "Find {plural}, optionally filtered; results are sorted by ID and capped at 50.",
    ],
    "read": ["Get the details of one {thing} by its ID.", "Fetch a single {thing} by ID."],
    "list": [
        "List the authorized {core}'s {plural}, optionally filtered.",
        "Show the {plural} that belong to the authorized {core}; filters are optional.",
    ],
    "get_own": [
        "Get one of the authorized {core}'s {plural} by ID.",
        "Fetch {a_thing} of the authorized {core} by its ID.",
    ],
    "transition": [
        "{Action} one of the authorized {core}'s {plural}. Allowed only while its {column} is {from_}; "
        "sets {column} to {to}.",
        "{Action} {a_thing} of the authorized {core} (only when {column} is {from_}); the {column} becomes {to}.",
    ],
    "edit": [
        "{Verb} {a_thing} of the authorized {core}: change {fields}. Allowed only while its {column} is {from_}.",
        "Change {fields} of one of the authorized {core}'s {plural} ({column} must be {from_}).",
    ],
    "delete": [
        "Remove {a_thing} of the authorized {core} (allowed while {column} is {from_}).",
        "Delete one of the authorized {core}'s {plural} when its {column} is {from_}.",
    ],
    "total": [
        "Compute the {agg} of {column} over the authorized {core}'s {plural}, optionally filtered by {filter}.",
        "Return the {agg} of {column} across the authorized {core}'s {plural}; may be filtered by {filter}.",
    ],
    "count": [
        "Count the authorized {core}'s {plural}, optionally by {filter}.",
        "Return how many {plural} the authorized {core} has, optionally filtered by {filter}.",
    ],
}


def _say(rng, kind: str, **kw: Any) -> str:
    return rng.choice(PHRASES[kind]).format(**kw)


def _or(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def param_for(col: dict, *, required: bool = True, name: str | None = None, description: str | None = None) -> dict:
    p: dict[str, Any] = {
        "name": name or col["name"],
        "type": col["type"],
        "description": description or col.get("description", col["name"]),
        "required": required,
        "column": col["name"],
    }
    for k in ("enum", "minimum", "maximum"):
        if col.get(k) is not None:
            p[k] = col[k]
    return p


def _columns(rel: dict) -> dict[str, dict]:
    return {c["name"]: c for c in rel["columns"]}


def _entity_attrs(entities: dict, name: str) -> dict[str, dict]:
    ent = entities.get(name) or {}
    return {a["name"]: a for a in ent.get("attributes", [])}


def relationship_dict(t: RelationshipTemplate, core: str) -> dict:
    return {
        "name": t.name,
        "description": t.description,
        "primary_key": t.primary_key,
        "columns": [
            c.model_dump(exclude_none=True, exclude_defaults=True) | {"type": c.type} for c in t.table_columns(core)
        ],
    }


def _fallback_template(core: str, peripheral: str) -> RelationshipTemplate:
    """A generic request table for an outline the catalogue does not know (another
    provider's world): still a realistic lifecycle, never ``entity_1``."""
    noun = f"{snake_case(peripheral)}_request"
    return RelationshipTemplate.model_validate(
        {
            "name": f"{peripheral}Request",
            "noun": noun,
            "description": f"A request by the {words(core)} about {article(words(peripheral))}.",
            "refs": [peripheral],
            "columns": [
                {
                    "name": "requested_for",
                    "type": "datetime",
                    "format": "future_datetime",
                    "description": "When the request should be served",
                },
                {
                    "name": "notes",
                    "type": "string",
                    "format": "text",
                    "description": "Details of the request",
                    "optional": True,
                },
                {
                    "name": "status",
                    "type": "string",
                    "enum": ["submitted", "confirmed", "completed", "cancelled"],
                    "description": "Request status",
                },
            ],
            "create": {"verb": "submit", "description": f"Submit a request about {article(words(peripheral))}"},
            "lifecycle": {
                "initial": "submitted",
                "transitions": [{"action": "cancel", "from": ["submitted", "confirmed"], "to": "cancelled"}],
            },
            "edit": {"verb": "update", "columns": ["requested_for", "notes"], "from": ["submitted"]},
        }
    )


def templates_for(cat: Catalog, outline: dict, max_rel: int) -> list[RelationshipTemplate]:
    core, peri = outline["core_entity"], list(outline["peripheral_entities"])
    topic: Topic | None = cat.topics.get(outline.get("topic", ""))
    chosen: list[RelationshipTemplate] = []
    if topic is not None:
        idea = next((d for d in topic.domains if d.name == outline["domain"]), None)
        names = idea.relationships if idea else []
        chosen = [topic.relationship(n) for n in names]  # type: ignore[misc]
        fitting = [r for r in topic.relationships if topic.person == core and set(r.refs) <= set(peri)]
        chosen = [r for r in chosen if r in fitting] or fitting
    if not chosen:  # outline from elsewhere: the person's templates anywhere that fit
        chosen = [r for _, r in cat.templates_for(core) if set(r.refs) <= set(peri)]
    covered = {x for r in chosen for x in r.refs}
    chosen += [_fallback_template(core, p) for p in peri if p not in covered]
    return chosen[:max_rel]


class Builder:
    """Builds the tools of one blueprint; also the source of extra tools during repair."""

    def __init__(
        self,
        rng,
        domain: str,
        core: str,
        peripherals: list[str],
        entities: dict,
        templates: dict[str, RelationshipTemplate],
        relationships: list[dict],
    ) -> None:
        self.rng, self.domain, self.core, self.peripherals = rng, domain, core, peripherals
        self.entities, self.templates, self.relationships = entities, templates, relationships
        self.core_w = words(core)

    def name(self, raw: str) -> str:
        return fit_name(raw, self.domain)

    def tool(self, name: str, kind: str, table: str, description: str, params: list[dict], **extra: Any) -> dict:
        reads = [table] + [t for t in extra.pop("also_reads", []) if t != table]
        writes = [table] if kind in ("create", "update", "delete") else []
        t = {
            "name": self.name(name),
            "description": description,
            "kind": kind,
            "table": table,
            "reads": reads,
            "writes": writes,
            "requires_auth": kind != "authorize",
            "parameters": params,
        }
        t.update({k: v for k, v in extra.items() if v is not None})
        return t

    # -------------------------------------------------------------- entity tools
    def authorize(self) -> dict:
        pk = primary_key_for(self.core)
        attrs = _entity_attrs(self.entities, self.core)
        col = attrs.get(pk, {"name": pk, "type": "string", "description": f"ID of the {self.core_w}"})
        return self.tool(
            f"authorize_{snake_case(self.core)}",
            "authorize",
            self.core,
            _say(self.rng, "authorize", core=self.core_w, pk=pk),
            [param_for(col, description=f"The {self.core_w}'s ID")],
            returns=f"Confirmation that the session now acts for the {self.core_w}",
        )

    def profile(self) -> dict:
        pk = primary_key_for(self.core)
        col = _entity_attrs(self.entities, self.core).get(pk, {"name": pk, "type": "string", "description": pk})
        return self.tool(
            f"get_{snake_case(self.core)}_profile",
            "read",
            self.core,
            _say(self.rng, "profile", core=self.core_w),
            [param_for(col, description=f"The authorized {self.core_w}'s own ID")],
            returns=f"The {self.core_w} record",
        )

    def _filters(self, attrs: dict[str, dict], skip: set[str], n: int) -> list[dict]:
        enum_cols = [a for a in attrs.values() if a.get("enum") and a["name"] not in skip]
        other = [
            a
            for a in attrs.values()
            if a["name"] not in skip
            and not a.get("enum")
            and (a["type"] == "boolean" or a.get("format") in ("city", "company", "title", "person_name"))
        ]
        picks = enum_cols[:n]
        picks += other[: max(0, n - len(picks))]
        return [
            param_for(
                a,
                required=False,
                description=f"Only {a['description'][0].lower()}{a['description'][1:]} equal to this value",
            )
            for a in picks
        ]

    def search_entity(self, ent: str) -> dict:
        attrs = _entity_attrs(self.entities, ent)
        filters = self._filters(attrs, {primary_key_for(ent)}, 2)
        return self.tool(
            f"search_{plural(snake_case(ent))}",
            "search",
            ent,
            _say(self.rng, "search", plural=plural(words(ent))),
            filters,
            returns=f"A list of {words(ent)} records",
        )

    def read_entity(self, ent: str) -> dict:
        pk = primary_key_for(ent)
        col = _entity_attrs(self.entities, ent).get(pk, {"name": pk, "type": "string", "description": pk})
        return self.tool(
            f"get_{snake_case(ent)}_details",
            "read",
            ent,
            _say(self.rng, "read", thing=words(ent)),
            [param_for(col, description=f"ID of the {words(ent)}")],
            returns=f"The {words(ent)} record",
        )

    # -------------------------------------------------------- relationship tools
    def rel_tools(self, rel: dict, extras: bool) -> list[dict]:
        t = self.templates.get(rel["name"])
        cols = _columns(rel)
        pk = rel["primary_key"]
        core_fk = primary_key_for(self.core)
        noun = t.noun if t else snake_case(rel["name"])
        thing, things = noun.replace("_", " "), plural(noun).replace("_", " ")
        status = cols.get(t.lifecycle.column if t else "status")
        kw = {"core": self.core_w, "thing": thing, "a_thing": article(thing), "plural": things}
        pk_param = param_for(cols[pk], description=f"ID of the {thing}")
        refs = [c for c in rel["columns"] if c.get("references") and c["name"] != core_fk]
        own = [
            c
            for c in rel["columns"]
            if not c.get("references") and c["name"] != pk and (status is None or c["name"] != status["name"])
        ]
        out: list[dict] = []
        # create
        if t is not None:
            cname = t.create.name or f"{t.create.verb}_{noun}"
            cdesc = (
                t.create.description + f" for the authorized {self.core_w}; the new {thing} starts as "
                f"{t.lifecycle.initial}."
            )
        else:
            cname, cdesc = f"create_{noun}", f"Create {article(thing)} for the authorized {self.core_w}."
        params = [param_for(c, description=f"ID of the {words(c['references'])}") for c in refs]
        params += [param_for(c, required=not c.get("nullable", False)) for c in own]
        effects = {status["name"]: t.lifecycle.initial} if (t and status) else {}
        out.append(
            self.tool(
                cname,
                "create",
                rel["name"],
                cdesc,
                params,
                effects=effects,
                also_reads=[c["references"] for c in refs] + [self.core],
                returns=f"The new {thing} record",
            )
        )
        # read own record, list own records
        out.append(
            self.tool(
                f"get_{noun}",
                "read",
                rel["name"],
                _say(self.rng, "get_own", **kw),
                [pk_param],
                returns=f"The {thing} record",
            )
        )
        filters = []
        if status is not None:
            filters.append(param_for(status, required=False, description=f"Only {things} with this status"))
        if refs:
            filters.append(
                param_for(refs[0], required=False, description=f"Only {things} for this {words(refs[0]['references'])}")
            )
        out.append(
            self.tool(
                f"list_my_{plural(noun)}",
                "search",
                rel["name"],
                _say(self.rng, "list", **kw),
                filters,
                returns=f"A list of {thing} records",
            )
        )
        if t is None:
            return out
        col = t.lifecycle.column
        for tr in t.lifecycle.transitions:
            out.append(
                self.tool(
                    f"{tr.action}_{noun}",
                    "update",
                    rel["name"],
                    _say(
                        self.rng,
                        "transition",
                        Action=tr.action.replace("_", " ").capitalize(),
                        column=col,
                        from_=_or(tr.from_),
                        to=tr.to,
                        **kw,
                    ),
                    [pk_param],
                    preconditions=[{"column": col, "values": list(tr.from_)}],
                    effects={col: tr.to},
                    returns=f"The updated {thing} record",
                )
            )
        if t.edit is not None:
            eparams = [
                param_for(
                    cols[c],
                    required=len(t.edit.columns) == 1,
                    description=f"New value: {cols[c]['description'][0].lower()}{cols[c]['description'][1:]}",
                )
                for c in t.edit.columns
                if c in cols
            ]
            out.append(
                self.tool(
                    f"{t.edit.verb}_{noun}",
                    "update",
                    rel["name"],
                    _say(
                        self.rng,
                        "edit",
                        Verb=t.edit.verb.replace("_", " ").capitalize(),
                        fields=_or([c.replace("_", " ") for c in t.edit.columns]),
                        column=col,
                        from_=_or(t.edit.from_),
                        **kw,
                    ),
                    [pk_param, *eparams],
                    preconditions=[{"column": col, "values": list(t.edit.from_)}],
                    returns=f"The updated {thing} record",
                )
            )
        if t.delete is not None:
            out.append(
                self.tool(
                    f"{t.delete.verb}_{noun}",
                    "delete",
                    rel["name"],
                    _say(self.rng, "delete", column=col, from_=_or(t.delete.from_), **kw),
                    [pk_param],
                    preconditions=[{"column": col, "values": list(t.delete.from_)}],
                    returns=f"The removed {thing} record",
                )
            )
        status_filter = (
            [param_for(status, required=False, description=f"Only {things} with this status")] if status else []
        )
        if t.total is not None:
            out.append(
                self.tool(
                    t.total.name,
                    "compute",
                    rel["name"],
                    _say(
                        self.rng,
                        "total",
                        agg=t.total.aggregate,
                        column=t.total.column.replace("_", " "),
                        filter="status",
                        **kw,
                    ),
                    status_filter,
                    aggregate=t.total.aggregate,
                    aggregate_column=t.total.column,
                    returns='{"value": number, "count": integer}',
                )
            )
        if extras or t.total is None:
            out.append(
                self.tool(
                    f"count_my_{plural(noun)}",
                    "compute",
                    rel["name"],
                    _say(self.rng, "count", filter="status", **kw),
                    status_filter,
                    aggregate="count",
                    returns='{"value": integer, "count": integer}',
                )
            )
        return out

    def all_tools(self, extras: bool) -> list[dict]:
        tools = [self.authorize(), self.profile()]
        for p in self.peripherals:
            tools.append(self.search_entity(p))
            tools.append(self.read_entity(p))
        for rel in self.relationships:
            tools += self.rel_tools(rel, extras)
        return tools


def _setup(req: OfflineRequest, outline: dict) -> tuple[Builder, list[RelationshipTemplate]]:
    ctx = req.context
    limits = ctx.get("limits", {})
    cat: Catalog = req.catalog
    core = outline["core_entity"]
    peripherals = list(outline["peripheral_entities"])[: int(limits.get("max_peripheral", 3))]
    outline = {**outline, "peripheral_entities": peripherals}
    temps = templates_for(cat, outline, int(limits.get("max_relationships", 3)))
    rels = [relationship_dict(t, core) for t in temps]
    b = Builder(
        req.rng, outline["domain"], core, peripherals, ctx.get("entities", {}), {t.name: t for t in temps}, rels
    )
    return b, temps


def build_blueprint(req: OfflineRequest) -> dict:
    outline = req.context["outline"]
    b, _ = _setup(req, outline)
    min_tools = int(req.context.get("limits", {}).get("min_tools", 8))
    tools = b.all_tools(extras=req.rng.random() < 0.5)
    # Optional detail lookups of peripherals are what a model would leave out first.
    optional = [t for t in tools if t["name"].endswith("_details")]
    req.rng.shuffle(optional)
    for t in optional:
        if len(tools) > min_tools + 4 and req.rng.random() < 0.5:
            tools.remove(t)
    taken: set[str] = set()
    for t in tools:
        t["name"] = unique(t["name"], taken, b.domain)
    return {
        "domain": outline["domain"],
        "topic": outline.get("topic", ""),
        "description": outline["description"],
        "core_entity": b.core,
        "peripheral_entities": b.peripherals,
        "relationships": b.relationships,
        "tools": tools,
    }


# ------------------------------------------------------------------------ repair
def codes_of(feedback: list[str]) -> set[str]:
    return {m.group(1) for line in feedback for m in [re.match(r"\s*\[([a-z_]+)\]", line)] if m}


def previous_answer(messages: list[dict]) -> dict | None:
    for m in reversed(messages):
        if m.get("role") == "assistant":
            try:
                data = extract_json(m.get("content") or "")
            except Exception:
                return None
            return data if isinstance(data, dict) else None
    return None


def repair(req: OfflineRequest, bp: dict) -> dict:
    """Fix every problem class named in ``req.feedback`` on the previous blueprint."""
    codes = codes_of(req.feedback)
    ctx = req.context
    outline = ctx["outline"]
    limits = ctx.get("limits", {})
    entities: dict = ctx.get("entities", {})
    bp = json.loads(json.dumps(bp))
    bp.setdefault("tools", [])
    bp.setdefault("relationships", [])
    core = bp.get("core_entity") or outline["core_entity"]

    if "server_name" in codes or "outline_mismatch" in codes:
        bp["domain"] = (
            outline["domain"]
            if "outline_mismatch" in codes
            else (pascal_case(re.sub(r"[^A-Za-z0-9]+", " ", bp.get("domain", ""))) or outline["domain"])[:40]
        )
    if "outline_mismatch" in codes:
        bp["core_entity"] = core = outline["core_entity"]
    domain = bp.get("domain") or outline["domain"]
    if "unknown_entity" in codes:
        bp["peripheral_entities"] = [p for p in bp.get("peripheral_entities", []) if p in entities and p != core]
        if core not in entities:
            bp["core_entity"] = core = outline["core_entity"]
    if "too_many_peripherals" in codes:
        keep = [p for p in bp.get("peripheral_entities", []) if p in entities][: int(limits.get("max_peripheral", 3))]
        bp["peripheral_entities"] = keep or list(outline["peripheral_entities"])[:1]
    if "too_many_relationships" in codes:
        max_rel = int(limits.get("max_relationships", 3))
        bp["relationships"] = bp["relationships"][:max_rel]
        if not bp["relationships"]:
            b, _ = _setup(req, outline)
            bp["relationships"] = b.relationships[:1]
    if "duplicate_table" in codes:
        seen = set([core, *bp.get("peripheral_entities", [])])
        rels = []
        for r in bp["relationships"]:
            if r["name"] not in seen:
                seen.add(r["name"])
                rels.append(r)
        bp["relationships"] = rels
    ents = [core, *bp.get("peripheral_entities", [])]
    for rel in bp["relationships"]:
        cols = rel.setdefault("columns", [])
        if "unknown_reference" in codes:
            rel["columns"] = cols = [c for c in cols if not c.get("references") or c["references"] in ents]
        if "fk_name" in codes:
            for c in cols:
                ref = c.get("references")
                if ref and c["name"] != primary_key_for(ref):
                    old, c["name"] = c["name"], primary_key_for(ref)
                    for t in bp["tools"]:
                        if t.get("table") == rel["name"]:
                            for p in t.get("parameters", []):
                                if p.get("column") == old:
                                    p["column"] = c["name"]
                                    if p.get("name") == old:
                                        p["name"] = c["name"]
        if "relationship_pk" in codes:
            pk = primary_key_for(rel["name"])
            seen_cols: set[str] = set()
            cols = [c for c in cols if not (c["name"] in seen_cols or seen_cols.add(c["name"]))]
            pkcol = next((c for c in cols if c["name"] in (pk, rel.get("primary_key"))), None)
            if pkcol is not None:
                cols.remove(pkcol)
            pkcol = {
                "name": pk,
                "type": "string",
                "format": "uuid",
                "description": (pkcol or {}).get("description", f"Unique identifier of the {words(rel['name'])}"),
            }
            rel["columns"] = cols = [pkcol, *cols]
            rel["primary_key"] = pk
        if "core_not_in_relationship" in codes and not any(c.get("references") == core for c in cols):
            cols.insert(
                1,
                {
                    "name": primary_key_for(core),
                    "type": "string",
                    "references": core,
                    "description": f"The {words(core)} this record belongs to",
                },
            )
        if "enum_value" in codes:
            rel["columns"] = [c for c in cols if c.get("enum") != []] + [
                {**c, "enum": None} for c in cols if c.get("enum") == []
            ]
            for c in rel["columns"]:
                if c.get("enum") is None:
                    c.pop("enum", None)
    # Tools: rebuild helpers against the (repaired) structure.
    temps = {
        t.name: t
        for t in templates_for(
            req.catalog, {**outline, "peripheral_entities": ents[1:]}, int(limits.get("max_relationships", 3))
        )
    }
    b = Builder(req.rng, domain, core, ents[1:], entities, temps, bp["relationships"])
    tables = {e: {a["name"]: a for a in entities.get(e, {}).get("attributes", [])} for e in ents}
    tables.update({r["name"]: _columns(r) for r in bp["relationships"]})
    rel_names = {r["name"] for r in bp["relationships"]}
    tools = bp["tools"]
    if "unknown_table" in codes:
        tools = [
            t
            for t in tools
            if t.get("table") in tables
            and not (t.get("kind") in ("create", "update", "delete") and t["table"] not in rel_names)
        ]
    if "authorize_count" in codes or "authorize_shape" in codes:
        others = [t for t in tools if t.get("kind") != "authorize"]
        auth = b.authorize()
        auth["name"] = unique(auth["name"], {t["name"] for t in others}, domain)
        tools = [auth, *others]
    if "aggregate" in codes:
        kept = []
        for t in tools:
            if t.get("kind") == "compute":
                cols = tables.get(t.get("table"), {})
                if t.get("table") not in rel_names:
                    continue
                col = cols.get(t.get("aggregate_column") or "")
                if t.get("aggregate") is None or (
                    t["aggregate"] != "count" and (col is None or col["type"] not in ("integer", "number"))
                ):
                    t["aggregate"], t["aggregate_column"] = "count", None
            kept.append(t)
        tools = kept
    for t in tools:
        cols = tables.get(t.get("table"), {})
        kind = t.get("kind")
        if "reads_writes" in codes:
            t["reads"] = [t["table"]] + [x for x in t.get("reads", []) if x in tables and x != t["table"]]
            t["writes"] = [t["table"]] if kind in ("create", "update", "delete") else []
            if kind not in ("update", "delete"):
                t["preconditions"] = []
            if kind not in ("create", "update"):
                t["effects"] = {}
        if "unbound_param" in codes:
            params = []
            for p in t.get("parameters", []):
                if p.get("column") is None and p.get("name") in cols:
                    p["column"] = p["name"]
                if p.get("column") in cols:
                    params.append(p)
            t["parameters"] = params
            t["preconditions"] = [c for c in t.get("preconditions", []) if c.get("column") in cols]
            t["effects"] = {k: v for k, v in (t.get("effects") or {}).items() if k in cols}
        if "param_type" in codes or "enum_value" in codes:
            for p in t.get("parameters", []):
                col = cols.get(p.get("column"))
                if col is None:
                    continue
                if "param_type" in codes and p.get("type") != col["type"]:
                    p["type"], p["items"] = col["type"], None
                if "enum_value" in codes and p.get("type") != "array":
                    if col.get("enum"):
                        p["enum"] = list(col["enum"])
                    else:
                        p.pop("enum", None)
        if "enum_value" in codes:
            conds = []
            for c in t.get("preconditions", []):
                enum = (cols.get(c.get("column")) or {}).get("enum")
                vals = [v for v in c.get("values", []) if enum is None or v in enum]
                if vals:
                    conds.append({**c, "values": vals})
            t["preconditions"] = conds
            t["effects"] = {
                k: v
                for k, v in (t.get("effects") or {}).items()
                if not (cols.get(k) or {}).get("enum") or v in cols[k]["enum"]
            }
        if "missing_pk_param" in codes and kind in ("read", "update", "delete"):
            pk = primary_key_for(t["table"])
            if pk in cols and not any(p.get("column") == pk and p.get("required", True) for p in t["parameters"]):
                t["parameters"] = [p for p in t["parameters"] if p.get("column") != pk]
                t["parameters"].insert(0, param_for(cols[pk], description=f"ID of the {words(t['table'])}"))
        if "create_incomplete" in codes and kind == "create" and t["table"] in rel_names:
            pk, core_fk = primary_key_for(t["table"]), primary_key_for(core)
            t["parameters"] = [p for p in t["parameters"] if p.get("column") not in (pk, core_fk)]
            given = {p.get("column") for p in t["parameters"]} | set(t.get("effects") or {})
            for c in next(r for r in bp["relationships"] if r["name"] == t["table"])["columns"]:
                if c["name"] not in given and c["name"] not in (pk, core_fk) and not c.get("nullable"):
                    if c.get("enum") and c["name"] == "status":
                        t.setdefault("effects", {})[c["name"]] = c["enum"][0]
                    else:
                        t["parameters"].append(param_for(c))
    if "tool_name" in codes or "duplicate_tool" in codes:
        taken: set[str] = set()
        for t in tools:
            t["name"] = unique(fit_name(t.get("name", "tool"), domain), taken, domain)
    min_tools = int(limits.get("min_tools", 8))
    if "too_few_tools" in codes or len(tools) < min_tools:
        have = {t["name"] for t in tools}
        for cand in b.all_tools(extras=True):
            if len(tools) >= min_tools:
                break
            if cand["name"] not in have:
                cand["name"] = unique(cand["name"], have, domain)
                tools.append(cand)
    bp["tools"] = tools
    return bp


@handler("s04.blueprint_detail")
def blueprint_detail(req: OfflineRequest) -> dict:
    """Context: outline, entities {name: Entity}, limits. Answer: a Blueprint dict."""
    if req.feedback:
        prev = previous_answer(req.messages)
        if prev is not None and codes_of(req.feedback):
            return repair(req, prev)
    return build_blueprint(req)
