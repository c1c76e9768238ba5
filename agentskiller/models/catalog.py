"""Topics, the entity catalogue and the entity graph (steps s01-s03)."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AttrType = Literal["string", "integer", "number", "boolean", "date", "datetime"]

#: entity names (PascalCase, at most 40 characters) and attribute names (snake_case, at most 48);
#: always used with fullmatch
PASCAL_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,39}")
SNAKE_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def ascii_fold(name: str) -> str:
    """``Café`` -> ``Cafe``: accents folded, other non-ASCII characters dropped, so that distinct
    names stay distinct where they can (``Café`` and ``Caf`` do not collide)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "ignore").decode()


def snake_case(name: str) -> str:
    """``DentalClinic`` -> ``dental_clinic``; ``HTTPServer`` -> ``http_server``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", ascii_fold(name))
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def pascal_case(name: str) -> str:
    """``dental clinic`` / ``dental_clinic`` -> ``DentalClinic``."""
    parts = re.split(r"[^A-Za-z0-9]+", ascii_fold(name))
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def primary_key_for(entity: str) -> str:
    """Canonical primary-key / foreign-key column name of an entity: ``<snake>_id``."""
    return f"{snake_case(entity)}_id"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attribute(Strict):
    """A typed column. ``enum``/``minimum``/``maximum``/``format`` bound its values."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    type: AttrType
    description: str
    enum: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: semantic hint for generators: uuid, person_name, email, phone, address, city,
    #: company, text, code, url, ... (free text a model may also use)
    format: str | None = None
    nullable: bool = False


class Entity(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,39}$")
    description: str
    is_person: bool
    #: always ``primary_key_for(name)``; listed first in ``attributes`` with type string
    primary_key: str
    attributes: list[Attribute]
    topics: list[str] = Field(default_factory=list)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


class EntityLink(Strict):
    source: str  # a person entity
    target: str
    relationship: str = "related_to"
    description: str = ""


class EntityGraph(Strict):
    nodes: list[str]
    persons: list[str]
    links: list[EntityLink]

    def neighbours(self, person: str) -> list[str]:
        out = [link.target for link in self.links if link.source == person]
        out += [link.source for link in self.links if link.target == person]
        seen: list[str] = []
        for n in out:
            if n != person and n not in seen:
                seen.append(n)
        return seen
