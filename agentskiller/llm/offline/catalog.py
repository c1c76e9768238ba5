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

from pydantic import Field

from agentskiller.models.blueprint import DOMAIN_NAME_RE, TOOL_NAME_RE, Column
from agentskiller.models.catalog import Attribute, Entity, Strict, primary_key_for, snake_case
from agentskiller.yamlload import safe_load

from .compose import compose
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
    #: ``"Entity.attribute"``: the value may not exceed that attribute of the referenced record
    #: (carried into the blueprint column, see :class:`agentskiller.models.blueprint.Column`)
    at_most: str | None = None


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
    #: real names for name-like columns, one row per name, see :attr:`Catalog.vocabulary`
    vocabulary: list[dict[str, Any]] = Field(default_factory=list)

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
    #: table (entity or relationship) -> rows of real names and the values that go with them
    #: (``RoomType``: ``{room_name: Deluxe King, bed_configuration: king, max_occupancy: 2}``).
    #: A generated record takes one whole row, so its columns agree (a brand with its generic
    #: name); the first column of a row is the name itself.
    vocabulary: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)

    @property
    def persons(self) -> list[str]:
        return [n for n, e in self.entities.items() if e.is_person]

    def topics_in_area(self, area: str) -> list[str]:
        return [t for t, topic in self.topics.items() if topic.area == area]

    def topics_of_entity(self, entity: str) -> list[str]:
        return [t for t, topic in self.topics.items() if entity == topic.person or entity in topic.entities]

    def templates_for(self, person: str) -> list[tuple[Topic, RelationshipTemplate]]:
        return [(t, r) for t in self.topics.values() if t.person == person for r in t.relationships]

    def vocabulary_for(self, table: str) -> list[dict[str, Any]]:
        """The name vocabulary of one table (empty when the catalogue has none)."""
        return [dict(row) for row in self.vocabulary.get(table, [])]


def _entity(name: str, raw: dict[str, Any], is_person: bool) -> Entity:
    raw = {k: v for k, v in raw.items() if k != "vocabulary"}  # kept in Catalog.vocabulary
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
                errors += _bound_errors(cat, where, r, c)
            errors += _vocabulary_errors(where, r.columns, r.vocabulary)
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
        errors += _vocabulary_errors(f"entity {e.name}", e.attributes, cat.vocabulary.get(e.name, []))
        if not TOOL_NAME_RE.fullmatch(f"search_{snake_case(e.name)}s"):
            errors.append(f"entity {e.name}: name too long for tool names")
    if errors:
        raise ValueError("offline catalogue is inconsistent:\n  " + "\n  ".join(errors))


_NUMERIC = ("integer", "number")


def _bound_errors(cat: Catalog, where: str, r: RelationshipTemplate, c: CatalogColumn) -> list[str]:
    """An ``at_most`` bound names a numeric attribute of an entity the template references."""
    if c.at_most is None:
        return []
    ent, _, attr = c.at_most.partition(".")
    target = cat.entities[ent].attribute(attr) if ent in cat.entities else None
    if ent not in r.refs:
        return [f"{where}: column {c.name} at_most {c.at_most}: {ent} is not among the refs {r.refs}"]
    if target is None or target.type not in _NUMERIC or c.type not in _NUMERIC:
        return [f"{where}: column {c.name} at_most {c.at_most}: both sides must be numeric attributes"]
    return []


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float)}


def _vocabulary_errors(where: str, columns: list, rows: list[dict[str, Any]]) -> list[str]:
    """Vocabulary rows share their columns, hold valid values for them and repeat no name
    (the first column); every ``title`` column without an enum has a vocabulary."""
    cols = {c.name: c for c in columns}
    errors: list[str] = []
    keys = list(rows[0]) if rows else []
    for i, row in enumerate(rows):
        if list(row) != keys:
            errors.append(f"{where}: vocabulary row {i} has columns {list(row)}, not {keys}")
        for name, v in row.items():
            c = cols.get(name)
            ok = (
                c is not None
                and isinstance(v, _TYPES.get(c.type, ()))
                and not (isinstance(v, bool) and c.type != "boolean")
                and (c.enum is None or v in c.enum)
                and (c.minimum is None or isinstance(v, str | bool) or v >= c.minimum)
                and (c.maximum is None or isinstance(v, str | bool) or v <= c.maximum)
            )
            if not ok:
                errors.append(f"{where}: vocabulary row {i}: {name}={v!r} is not a valid value of a column")
    names = [row.get(keys[0]) for row in rows] if keys else []
    if len(set(names)) != len(names):
        errors.append(f"{where}: vocabulary repeats a name in {keys[0]}")
    errors += [
        f"{where}: title column {c.name} needs a vocabulary of real names"
        for c in columns
        if c.format == "title" and not c.enum and c.name not in keys
    ]
    return errors


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Load and check ``catalog/*.yaml``: the hand-listed topics and entities, then the composed
    ones (:mod:`.compose`) in areas of their own (cached: the data never changes in a process)."""
    ents = safe_load((CATALOG_DIR / "entities.yaml").read_text(encoding="utf-8"))
    tops = safe_load((CATALOG_DIR / "topics.yaml").read_text(encoding="utf-8"))
    extra = compose()  # archetypes x subjects, after the hand-listed part (see compose.py)
    clashes = [f"area {n}" for n in extra["areas"] if n in tops["areas"]]
    clashes += [f"topic {n}" for n in extra["topics"] if n in tops["topics"]]
    clashes += [f"entity {n}" for n in extra["entities"] if n in ents["persons"] or n in ents["entities"]]
    if clashes:
        raise ValueError("composed catalogue reuses hand-listed names: " + ", ".join(clashes))
    tops = {"areas": {**tops["areas"], **extra["areas"]}, "topics": {**tops["topics"], **extra["topics"]}}
    ents = {"persons": ents["persons"], "entities": {**ents["entities"], **extra["entities"]}}
    entities = {n: _entity(n, raw, True) for n, raw in ents["persons"].items()}
    entities.update({n: _entity(n, raw, False) for n, raw in ents["entities"].items()})
    topics = {n: Topic(name=n, **raw) for n, raw in tops["topics"].items()}
    for name, ent in entities.items():
        ent.topics = [t for t, topic in topics.items() if name == topic.person or name in topic.entities]
    areas = {n: Area(name=n, **raw) for n, raw in tops["areas"].items()}
    vocabulary = {
        n: raw["vocabulary"]
        for group in ("persons", "entities")
        for n, raw in ents[group].items()
        if raw.get("vocabulary")
    }
    vocabulary.update({r.name: r.vocabulary for t in topics.values() for r in t.relationships if r.vocabulary})
    cat = Catalog(areas=areas, topics=topics, entities=entities, vocabulary=vocabulary)
    _check(cat)
    return cat
