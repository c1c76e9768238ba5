"""The composed part of the offline catalogue: archetypes x subjects (``catalog/composed.yaml``).

A subject (physiotherapy, bicycle care, tax advice ...) names its person, three entities (a
place, a staff member, an offering) and the words of its trade; an archetype (booking,
ordering, membership, case management) is a way of doing business: two relationship
templates and two domain ideas, written once with placeholders. :func:`compose` crosses every
subject with every archetype into raw catalogue data in exactly the shape of ``topics.yaml``
and ``entities.yaml``, so :func:`..catalog.load_catalog` builds and checks it on the same path
as the hand-listed part. Pure data in, data out: no RNG, the order is the file's order, so
the result is the same in every process.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from agentskiller.models.catalog import Strict, snake_case
from agentskiller.yamlload import safe_load

from .phrasing import article, plural, spoken

COMPOSED_FILE = Path(__file__).with_name("catalog") / "composed.yaml"


class PlaceSpec(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,39}$")
    description: str
    name_attr: str = Field(pattern=r"^[a-z][a-z0-9_]*_name$")
    feature: dict[str, str]


class StaffSpec(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,39}$")
    description: str
    specialties: list[str] = Field(min_length=2)


class OfferingSpec(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,39}$")
    description: str
    name_attr: str = Field(pattern=r"^[a-z][a-z0-9_]*_name$")
    categories: list[str] = Field(min_length=2)
    #: rows ``[name, category]`` of real names
    vocabulary: list[tuple[str, str]] = Field(min_length=8)


class Subject(Strict):
    area: str
    person: str
    prefix: str = Field(pattern=r"^[A-Z][A-Za-z]{1,7}$")
    label: str
    description: str
    place: PlaceSpec
    staff: StaffSpec
    offering: OfferingSpec
    price: tuple[float, float]
    fee: tuple[float, float]
    reasons: list[str] = Field(min_length=2)
    issues: list[str] = Field(min_length=2)
    tiers: list[str] = Field(min_length=2)


class Archetype(Strict):
    topic_description: str
    relationships: list[dict[str, Any]] = Field(min_length=1)
    domains: list[dict[str, Any]] = Field(min_length=1)


class ComposedSpec(Strict):
    areas: dict[str, dict[str, Any]]
    archetypes: dict[str, Archetype]
    subjects: dict[str, Subject]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def placeholders(subject: Subject) -> dict[str, str]:
    """The values of the placeholders an archetype's strings may use (see composed.yaml)."""
    place, staff, offering = spoken(subject.place.name), spoken(subject.staff.name), spoken(subject.offering.name)
    persons = plural(spoken(subject.person))
    return {
        "P": subject.prefix,
        "p": snake_case(subject.prefix),
        "label": subject.label,
        "Label": _cap(subject.label),
        "person": spoken(subject.person),
        "persons": persons,
        "Persons": _cap(persons),
        "place": place,
        "places": plural(place),
        "a_place": article(place),
        "staff": staff,
        "staffs": plural(staff),
        "a_staff": article(staff),
        "offering": offering,
        "offerings": plural(offering),
        "a_offering": article(offering),
        "Place": subject.place.name,
        "Staff": subject.staff.name,
        "Offering": subject.offering.name,
    }


def _fill(value: Any, values: dict[str, str]) -> Any:
    """``value`` with every placeholder filled (recursively); an unknown one is an error."""
    if isinstance(value, str):
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        unknown = names - set(values)
        if unknown:
            raise ValueError(f"composed catalogue: unknown placeholder(s) {sorted(unknown)} in {value!r}")
        return value.format(**values)
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _column(col: dict[str, Any], subject: Subject) -> dict[str, Any]:
    """A template column with ``enum_from`` / ``range_from`` resolved from the subject."""
    out = {k: v for k, v in col.items() if k not in ("enum_from", "range_from")}
    if "enum_from" in col:
        out["enum"] = list(getattr(subject, col["enum_from"]))
    if "range_from" in col:
        lo, hi = getattr(subject, col["range_from"])
        out["minimum"], out["maximum"] = lo, hi
    return out


def _entities(subject: Subject) -> dict[str, dict[str, Any]]:
    """The subject's place, staff and offering in the shape of ``entities.yaml`` entries."""
    place, staff, off = subject.place, subject.staff, subject.offering
    lo, hi = subject.price
    return {
        place.name: {
            "description": place.description,
            "attributes": [
                {
                    "name": place.name_attr,
                    "type": "string",
                    "format": "company",
                    "description": f"Name of the {spoken(place.name)}",
                },
                {"name": "city", "type": "string", "format": "city", "description": "City where it is located"},
                {
                    "name": "street_address",
                    "type": "string",
                    "format": "street_address",
                    "description": "Street address",
                },
                {"name": "phone", "type": "string", "format": "phone", "description": "Front desk phone"},
                {
                    "name": "rating",
                    "type": "number",
                    "minimum": 1,
                    "maximum": 5,
                    "description": "Average customer rating",
                },
                {"name": place.feature["name"], "type": "boolean", "description": place.feature["description"]},
            ],
        },
        staff.name: {
            "description": staff.description,
            "attributes": [
                {
                    "name": "full_name",
                    "type": "string",
                    "format": "person_name",
                    "description": f"Name of the {spoken(staff.name)}",
                },
                {
                    "name": "specialty",
                    "type": "string",
                    "enum": list(staff.specialties),
                    "description": "Main specialty",
                },
                {
                    "name": "years_of_experience",
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 40,
                    "description": "Years in the trade",
                },
                {"name": "accepts_new_clients", "type": "boolean", "description": "Whether new clients are taken on"},
            ],
        },
        off.name: {
            "description": off.description,
            "attributes": [
                {
                    "name": off.name_attr,
                    "type": "string",
                    "format": "title",
                    "description": f"Name of the {spoken(off.name)}",
                },
                {"name": "category", "type": "string", "enum": list(off.categories), "description": "Category"},
                {
                    "name": "list_price",
                    "type": "number",
                    "format": "money",
                    "minimum": lo,
                    "maximum": hi,
                    "description": "List price in USD",
                },
                {"name": "is_available", "type": "boolean", "description": "Whether it can be booked or bought now"},
            ],
            "vocabulary": [{off.name_attr: n, "category": c} for n, c in off.vocabulary],
        },
    }


def _topic(subject: Subject, archetype: Archetype) -> dict[str, Any]:
    """One subject x archetype topic in the shape of a ``topics.yaml`` entry."""
    values = placeholders(subject)
    rels = []
    for raw in archetype.relationships:
        rel = _fill(raw, values)
        rel["columns"] = [_column(c, subject) for c in rel["columns"]]
        rels.append(rel)
    return {
        "area": subject.area,
        "description": f"{subject.description} " + _fill(archetype.topic_description, values),
        "person": subject.person,
        "entities": [subject.place.name, subject.staff.name, subject.offering.name],
        "relationships": rels,
        "domains": _fill(archetype.domains, values),
    }


@lru_cache(maxsize=1)
def load_spec() -> ComposedSpec:
    return ComposedSpec.model_validate(safe_load(COMPOSED_FILE.read_text(encoding="utf-8")))


def compose(spec: ComposedSpec | None = None) -> dict[str, Any]:
    """``{"areas", "topics", "entities"}``: raw catalogue data, subjects x archetypes in file
    order (topic ``<subject>_<archetype>``). Raises ValueError on a name used twice."""
    spec = spec or load_spec()
    topics: dict[str, dict[str, Any]] = {}
    entities: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for sname, subject in spec.subjects.items():
        for ename, ent in _entities(subject).items():
            if ename in entities:
                errors.append(f"subject {sname}: entity {ename} already made by another subject")
            entities[ename] = ent
        for aname, archetype in spec.archetypes.items():
            topics[f"{sname}_{aname}"] = _topic(subject, archetype)
    if errors:
        raise ValueError("composed catalogue is inconsistent:\n  " + "\n  ".join(errors))
    return {"areas": dict(spec.areas), "topics": topics, "entities": entities}
