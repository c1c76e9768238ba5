"""The blueprint of one outline: relationship tables from the topic's templates (a generic request
table for a peripheral no template covers) and the tools :class:`.blueprint_tools.Builder` derives."""

from __future__ import annotations

from agentskiller.models.catalog import snake_case

from ..catalog import Catalog, RelationshipTemplate, Topic
from ..phrasing import article, spoken
from ..provider import OfflineRequest
from .blueprint_tools import Builder
from .tool_names import unique


def relationship_dict(t: RelationshipTemplate, core: str) -> dict:
    """A template as the blueprint's relationship table (columns of the core's view of it)."""
    return {
        "name": t.name,
        "description": t.description,
        "primary_key": t.primary_key,
        "columns": [
            c.model_dump(exclude_none=True, exclude_defaults=True) | {"type": c.type} for c in t.table_columns(core)
        ],
    }


def keep_known_bounds(rel: dict, entities: dict) -> dict:
    """``rel`` without the ``at_most`` bounds whose attribute the request's entities lack (s02
    may drop an entity's later attributes; a bound on a missing attribute would be rejected)."""
    for col in rel["columns"]:
        ent, _, attr = (col.get("at_most") or "").partition(".")
        attrs = {a.get("name") for a in entities.get(ent, {}).get("attributes", [])}
        if col.get("at_most") and attr not in attrs:
            del col["at_most"]
    return rel


def fallback_template(core: str, peripheral: str) -> RelationshipTemplate:
    """A generic request table for an outline the catalogue does not know (another
    provider's world): still a realistic lifecycle, never ``entity_1``."""
    noun = f"{snake_case(peripheral)}_request"
    return RelationshipTemplate.model_validate(
        {
            "name": f"{peripheral}Request",
            "noun": noun,
            "description": f"A request by the {spoken(core)} about {article(spoken(peripheral))}.",
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
            "create": {"verb": "submit", "description": f"Submit a request about {article(spoken(peripheral))}"},
            "lifecycle": {
                "initial": "submitted",
                "transitions": [{"action": "cancel", "from": ["submitted", "confirmed"], "to": "cancelled"}],
            },
            "edit": {"verb": "update", "columns": ["requested_for", "notes"], "from": ["submitted"]},
        }
    )


def templates_for(cat: Catalog, outline: dict, max_rel: int) -> list[RelationshipTemplate]:
    """The outline's relationship templates: its domain idea's, else the person's that fit; every
    peripheral covered (a fallback table if need be); at most ``max_rel``."""
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
    chosen += [fallback_template(core, p) for p in peri if p not in covered]
    return chosen[:max_rel]


def setup_builder(req: OfflineRequest, outline: dict) -> tuple[Builder, list[RelationshipTemplate]]:
    """A builder for ``outline`` within the request's limits, and the templates of its tables."""
    ctx = req.context
    limits = ctx.get("limits", {})
    cat: Catalog = req.catalog
    core = outline["core_entity"]
    peripherals = list(outline["peripheral_entities"])[: int(limits.get("max_peripheral", 3))]
    outline = {**outline, "peripheral_entities": peripherals}
    temps = templates_for(cat, outline, int(limits.get("max_relationships", 3)))
    rels = [keep_known_bounds(relationship_dict(t, core), ctx.get("entities", {})) for t in temps]
    b = Builder(
        req.rng, outline["domain"], core, peripherals, ctx.get("entities", {}), {t.name: t for t in temps}, rels
    )
    return b, temps


def build_blueprint(req: OfflineRequest) -> dict:
    """A first blueprint for the request's outline (a Blueprint dict)."""
    outline = req.context["outline"]
    b, _ = setup_builder(req, outline)
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
