"""s02 entities: extract entities per topic batch, merge, dedupe, enforce key naming.

The model may spell types loosely (``int``), forget the primary key or call it ``id``;
this step fixes what it safely can (primary key ``<snake>_id``, type string, listed
first) and rejects what it cannot (names that are not entity names), recording why.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agentskiller import artifacts
from agentskiller.jobs import StepContext
from agentskiller.models.catalog import PASCAL_RE, SNAKE_RE, Attribute, Entity, pascal_case, primary_key_for, snake_case
from agentskiller.prompts import render

TYPE_ALIASES = {
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "double": "number",
    "number": "number",
    "decimal": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "str": "string",
    "string": "string",
    "text": "string",
    "uuid": "string",
    "date": "date",
    "datetime": "datetime",
    "timestamp": "datetime",
    "date-time": "datetime",
}


class RawAttribute(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    type: str = "string"
    description: str = ""
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    format: str | None = None
    nullable: bool = False


class RawEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    description: str = ""
    is_person: bool = False
    primary_key: str | None = None
    attributes: list[RawAttribute]
    topics: list[str] = []


class EntitiesAnswer(BaseModel):
    entities: list[RawEntity]


def _attribute(raw: RawAttribute) -> Attribute | None:
    name = snake_case(raw.name)
    if not SNAKE_RE.fullmatch(name or "-"):
        return None
    enum = [str(v) for v in raw.enum] if raw.enum else None
    return Attribute(
        name=name,
        type=TYPE_ALIASES.get(raw.type.lower().strip(), "string"),  # type: ignore[arg-type]
        description=raw.description or name.replace("_", " "),
        enum=enum,
        minimum=raw.minimum,
        maximum=raw.maximum,
        format=raw.format,
        nullable=raw.nullable,
    )


def normalize_entity(raw: RawEntity, entity_names: set[str]) -> tuple[Entity | None, str]:
    """(entity, "") or (None, reason). Enforces the primary key rule in code."""
    name = raw.name if PASCAL_RE.fullmatch(raw.name) else pascal_case(raw.name)
    if not name or not PASCAL_RE.fullmatch(name):
        return None, f"invalid entity name {raw.name!r}"
    attrs: list[Attribute] = []
    for a in raw.attributes:
        attr = _attribute(a)
        if attr is not None and all(x.name != attr.name for x in attrs):
            attrs.append(attr)
    pk = primary_key_for(name)
    current = next((a for a in attrs if a.name == pk), None)
    if current is None:
        # Rename an obvious stand-in: the declared key, ``id``, or an ``*_id`` that is not
        # another entity's key (a foreign key must stay a foreign key).
        others = {primary_key_for(n) for n in entity_names if n != name}
        current = (
            next(
                (
                    a
                    for a in attrs
                    if raw.primary_key and a.name == snake_case(raw.primary_key) and a.name not in others
                ),
                None,
            )
            or next((a for a in attrs if a.name == "id"), None)
            or next((a for a in attrs if a.name.endswith("_id") and a.name not in others), None)
        )
    if current is not None:
        attrs.remove(current)
    attrs.insert(
        0,
        Attribute(
            name=pk,
            type="string",
            format="uuid",
            description=(
                current.description if current else f"Unique identifier of the {snake_case(name).replace('_', ' ')}"
            ),
        ),
    )
    if len(attrs) < 2:
        return None, f"entity {name} has no attributes besides its key"
    return Entity(
        name=name,
        description=raw.description or name,
        is_person=raw.is_person,
        primary_key=pk,
        attributes=attrs,
        topics=list(raw.topics),
    ), ""


def merge(entities: list[Entity]) -> list[Entity]:
    """One entity per name: attributes unioned (first definition wins), topics unioned."""
    by_name: dict[str, Entity] = {}
    for e in entities:
        cur = by_name.get(e.name)
        if cur is None:
            by_name[e.name] = e.model_copy(deep=True)
            continue
        cur.is_person = cur.is_person or e.is_person
        cur.attributes += [a for a in e.attributes if cur.attribute(a.name) is None]
        cur.topics += [t for t in e.topics if t not in cur.topics]
    for e in by_name.values():
        e.topics.sort()
    return [by_name[n] for n in sorted(by_name)]


def run(ctx: StepContext) -> None:
    topics = artifacts.read(ctx.inputs["topics"])["topics"]
    size = ctx.cfg.entities.batch_size
    batches = [topics[i : i + size] for i in range(0, len(topics), size)]

    def ask(batch: list[dict]) -> EntitiesAnswer:
        context = {"topics": [{"name": t["name"], "description": t.get("description", "")} for t in batch]}
        messages = render("s02", "extract_entities", context, topics=", ".join(t["name"] for t in batch))
        return ctx.llm.generate(task="s02.extract_entities", messages=messages, schema=EntitiesAnswer, context=context)

    answers = ctx.llm.map(ask, batches)
    raws = [e for a in answers for e in a.entities]
    names = {r.name if PASCAL_RE.fullmatch(r.name) else pascal_case(r.name) for r in raws}
    good: list[Entity] = []
    rejected: list[dict] = []
    for raw in raws:
        ent, reason = normalize_entity(raw, names)
        if ent is None:
            rejected.append({"name": raw.name, "reason": reason})
        else:
            good.append(ent)
    merged = merge(good)
    if not any(e.is_person for e in merged):
        raise RuntimeError("s02 found no person entity; no domain can be built")
    ctx.log.info(
        "s02: %d entities (%d persons) from %d batch(es)", len(merged), sum(e.is_person for e in merged), len(batches)
    )
    ctx.write_json(
        "entities", {"entities": [e.model_dump(mode="json") for e in merged], "rejected": rejected}, "entities"
    )
