"""The offline provider's bundled catalogue: realistic topics, entities and domain ideas.

The catalogue is data (``catalog/*.yaml`` in this package); this module only loads it into
typed objects and checks that it is self-consistent, so a typo in the YAML fails loudly at
load time instead of producing a broken blueprint three steps later. The offline handlers
of s01-s04 pick from it with the request's seeded RNG.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from agentskiller.models.blueprint import DOMAIN_NAME_RE, TOOL_NAME_RE, Column
from agentskiller.models.catalog import Attribute, Entity, Strict, primary_key_for, snake_case

from .phrasing import spoken

CATALOG_DIR = Path(__file__).with_name("catalog")


class Transition(Strict):
    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    to: str
    from_: list[str] = Field(alias="from")


class Lifecycle(Strict):
    column: str = "status"
    initial: str
    transitions: list[Transition]


class Edit(Strict):
    verb: str
    columns: list[str]
    from_: list[str] = Field(alias="from")


class Total(Strict):
    name: str
    aggregate: str
    column: str


class Delete(Strict):
    verb: str
    from_: list[str] = Field(alias="from")


class CreateSpec(Strict):
    verb: str
    description: str
    #: explicit tool name where ``<verb>_<noun>`` would read badly (enroll_in_course)
    name: str | None = None


class CatalogColumn(Attribute):
    #: a nullable column that a create call may leave out
    optional: bool = False


class RelationshipTemplate(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$")
    noun: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    refs: list[str]
    columns: list[CatalogColumn]
    create: CreateSpec
    lifecycle: Lifecycle
    edit: Edit | None = None
    total: Total | None = None
    delete: Delete | None = None

    def column(self, name: str) -> CatalogColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> str:
        return primary_key_for(self.name)

    def table_columns(self, core: str) -> list[Column]:
        """The full column list of the table: PK, core FK, peripheral FKs, own columns."""
        cols = [
            Column(
                name=self.primary_key,
                type="string",
                format="uuid",
                description=f"Unique identifier of the {self.noun.replace('_', ' ')}",
            )
        ]
        for ent in [core, *self.refs]:
            cols.append(
                Column(
                    name=primary_key_for(ent),
                    type="string",
                    references=ent,
                    description=f"The {spoken(ent)} this {self.noun.replace('_', ' ')} belongs to"
                    if ent == core
                    else f"The {spoken(ent)} involved",
                )
            )
        for c in self.columns:
            data = c.model_dump(exclude={"optional"}, exclude_none=True)
            if c.optional:
                data["nullable"] = True
            cols.append(Column(**data))
        return cols


class DomainIdea(Strict):
    name: str
    description: str
    relationships: list[str]


class Topic(Strict):
    name: str
    area: str
    description: str
    person: str
    entities: list[str]
    relationships: list[RelationshipTemplate]
    domains: list[DomainIdea]

    def relationship(self, name: str) -> RelationshipTemplate | None:
        return next((r for r in self.relationships if r.name == name), None)

    def peripherals_of(self, idea: DomainIdea) -> list[str]:
        out: list[str] = []
        for rel in idea.relationships:
            for ref in self.relationship(rel).refs:  # type: ignore[union-attr]
                if ref not in out:
                    out.append(ref)
        return out


class Area(Strict):
    name: str
    description: str
    related: list[str]


class Catalog(Strict):
    areas: dict[str, Area]
    topics: dict[str, Topic]
    entities: dict[str, Entity]

    @property
    def persons(self) -> list[str]:
        return [n for n, e in self.entities.items() if e.is_person]

    def topics_in_area(self, area: str) -> list[str]:
        return [t for t, topic in self.topics.items() if topic.area == area]

    def topics_of_entity(self, entity: str) -> list[str]:
        return [t for t, topic in self.topics.items() if entity == topic.person or entity in topic.entities]

    def templates_for(self, person: str) -> list[tuple[Topic, RelationshipTemplate]]:
        return [(t, r) for t in self.topics.values() if t.person == person for r in t.relationships]


def _entity(name: str, raw: dict[str, Any], is_person: bool) -> Entity:
    pk = primary_key_for(name)
    attrs = [Attribute(name=pk, type="string", format="uuid", description=f"Unique identifier of the {spoken(name)}")]
    attrs += [Attribute(**a) for a in raw["attributes"]]
    return Entity(name=name, description=raw["description"], is_person=is_person, primary_key=pk, attributes=attrs)


def _check(cat: Catalog) -> None:
    """Self-consistency of the data; raises ValueError naming every problem."""
    errors: list[str] = []
    for area in cat.areas.values():
        errors += [f"area {area.name}: unknown related area {r}" for r in area.related if r not in cat.areas]
    domain_names: set[str] = set()
    for t in cat.topics.values():
        if t.area not in cat.areas:
            errors.append(f"topic {t.name}: unknown area {t.area}")
        if t.person not in cat.entities or not cat.entities[t.person].is_person:
            errors.append(f"topic {t.name}: {t.person} is not a person entity")
        for e in t.entities:
            if e not in cat.entities:
                errors.append(f"topic {t.name}: unknown entity {e}")
        for r in t.relationships:
            where = f"topic {t.name} relationship {r.name}"
            errors += [f"{where}: ref {x} not among the topic's entities" for x in r.refs if x not in t.entities]
            status = r.column(r.lifecycle.column)
            if status is None or not status.enum:
                errors.append(f"{where}: lifecycle column {r.lifecycle.column} missing or without enum")
                continue
            values = [r.lifecycle.initial] + [v for tr in r.lifecycle.transitions for v in (tr.to, *tr.from_)]
            values += r.edit.from_ if r.edit else []
            values += r.delete.from_ if r.delete else []
            errors += [f"{where}: status value {v} not in {status.enum}" for v in values if v not in status.enum]
            if r.edit:
                errors += [f"{where}: edit column {c} unknown" for c in r.edit.columns if not r.column(c)]
            if r.total and (not r.column(r.total.column) or r.column(r.total.column).type not in ("integer", "number")):
                errors.append(f"{where}: total column {r.total.column} missing or not numeric")
            for c in r.columns:
                if c.enum is not None and not c.enum:
                    errors.append(f"{where}: column {c.name} has an empty enum")
        for d in t.domains:
            if not DOMAIN_NAME_RE.fullmatch(d.name) or d.name in domain_names:
                errors.append(f"topic {t.name}: domain name {d.name} invalid or duplicated")
            domain_names.add(d.name)
            unknown = [r for r in d.relationships if not t.relationship(r)]
            if unknown:
                errors.append(f"topic {t.name} domain {d.name}: unknown relationships {unknown}")
            elif not 1 <= len(t.peripherals_of(d)) <= 3:
                errors.append(f"topic {t.name} domain {d.name}: needs 1-3 peripherals")
    for e in cat.entities.values():
        for a in e.attributes:
            if a.enum is not None and not a.enum:
                errors.append(f"entity {e.name}: attribute {a.name} has an empty enum")
        if not TOOL_NAME_RE.fullmatch(f"search_{snake_case(e.name)}s"):
            errors.append(f"entity {e.name}: name too long for tool names")
    if errors:
        raise ValueError("offline catalogue is inconsistent:\n  " + "\n  ".join(errors))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Load and check ``catalog/*.yaml`` (cached: the data never changes in a process)."""
    ents = yaml.safe_load((CATALOG_DIR / "entities.yaml").read_text(encoding="utf-8"))
    tops = yaml.safe_load((CATALOG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    entities = {n: _entity(n, raw, True) for n, raw in ents["persons"].items()}
    entities.update({n: _entity(n, raw, False) for n, raw in ents["entities"].items()})
    topics = {n: Topic(name=n, **raw) for n, raw in tops["topics"].items()}
    for name, ent in entities.items():
        ent.topics = [t for t, topic in topics.items() if name == topic.person or name in topic.entities]
    areas = {n: Area(name=n, **raw) for n, raw in tops["areas"].items()}
    cat = Catalog(areas=areas, topics=topics, entities=entities)
    _check(cat)
    return cat
