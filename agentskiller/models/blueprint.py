"""MCP server blueprints (step s04): the contract every later step builds on.

A blueprint describes one *domain*: a core person entity (the user who talks to the
assistant), 1-3 peripheral entities, 1-3 relationship tables that the core entity takes
part in, and the tools of its MCP server. Each tool declares its ``kind`` and the tables it
reads and writes; the contract tests (s09), the tool graph checks (s08) and the offline
provider's code writer rely on these declarations.

Tool semantics by kind (what the code must do; the policy states the same in prose):

* ``authorize``: one per blueprint. Parameter: the core entity's primary key. Fails with a
  tool error when no such record exists; otherwise binds the session to that user.
* ``read``: parameter: the primary key of ``table``. Returns that record. For a
  relationship table the record must belong to the authorized user (its core foreign key
  equals the user); for the core entity table it must be the user's own record.
* ``search``: optional filter parameters, each bound to a ``column`` of ``table``
  (equality). Relationship tables only return the user's own records. Returns a list
  sorted by primary key, at most 50 records.
* ``create``: inserts a record into relationship ``table``: new primary key from the
  runtime's ID generator, the core foreign key from the session, other columns from
  parameters (each bound to a ``column``) and ``effects`` (fixed values such as
  ``status: scheduled``). Referenced records must exist; enums and ranges are enforced.
* ``update``: parameter: primary key of ``table`` plus value parameters bound to columns;
  the record must be the user's and meet ``preconditions``; sets parameter values and
  ``effects``. Returns the updated record.
* ``delete``: parameter: primary key; ownership + ``preconditions``; removes the record.
* ``compute``: a read-only aggregate over the user's records of ``table``: ``aggregate``
  is ``count`` or ``sum``/``avg``/``min``/``max`` of a numeric ``aggregate_column``;
  optional filter parameters bound to columns. Returns ``{"value": ..., "count": n}``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from .catalog import Attribute, AttrType, Strict

ToolKind = Literal["authorize", "read", "search", "create", "update", "delete", "compute"]
ParamType = Literal["string", "integer", "number", "boolean", "date", "datetime", "array"]

#: OpenAI function names; tool names must still fit after a ``<prefix>__`` namespace.
OPENAI_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
DOMAIN_NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]{1,39}$")
READ_ONLY_KINDS = ("authorize", "read", "search", "compute")
WRITE_KINDS = ("create", "update", "delete")


class Column(Attribute):
    """A relationship-table column. ``references`` names the entity of a foreign key,
    whose column name must then be that entity's primary key (``<entity>_id``).

    ``at_most`` (``"Entity.attribute"``) bounds a numeric column by a column of the record the
    row references through its foreign key to ``Entity``: ``guests`` at most
    ``RoomType.max_occupancy``. The data, the policy and the tools all keep it."""

    references: str | None = None
    at_most: str | None = Field(default=None, pattern=r"^[A-Z][A-Za-z0-9]{0,39}\.[a-z][a-z0-9_]{0,47}$")


class Relationship(Strict):
    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,39}$")
    description: str
    primary_key: str
    columns: list[Column]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def foreign_keys(self) -> dict[str, str]:
        """column name -> referenced entity."""
        return {c.name: c.references for c in self.columns if c.references}


class Condition(Strict):
    """The record's ``column`` must hold one of ``values`` before the tool may act."""

    column: str
    values: list[Any]


class ToolParam(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    type: ParamType
    description: str
    required: bool = True
    enum: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: element type when ``type == "array"``
    items: AttrType | None = None
    #: the column of the tool's table this parameter filters on or sets
    column: str | None = None


class Tool(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    description: str
    kind: ToolKind
    #: the table the tool acts on (entity or relationship name)
    table: str
    reads: list[str]
    writes: list[str]
    requires_auth: bool = True
    parameters: list[ToolParam] = Field(default_factory=list)
    preconditions: list[Condition] = Field(default_factory=list)
    #: fixed column values a create/update sets, e.g. {"status": "cancelled"}
    effects: dict[str, Any] = Field(default_factory=dict)
    aggregate: Literal["count", "sum", "avg", "min", "max"] | None = None
    aggregate_column: str | None = None
    returns: str = ""


class Outline(Strict):
    """Stage 1 of s04: the shape of one domain before its detail is written."""

    domain: str
    topic: str
    description: str
    core_entity: str
    peripheral_entities: list[str]


class Blueprint(Strict):
    domain: str
    topic: str
    description: str
    core_entity: str
    peripheral_entities: list[str]
    relationships: list[Relationship]
    tools: list[Tool]

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    def relationship(self, name: str) -> Relationship | None:
        return next((r for r in self.relationships if r.name == name), None)

    @property
    def entities(self) -> list[str]:
        return [self.core_entity, *self.peripheral_entities]

    @property
    def tables(self) -> list[str]:
        return [*self.entities, *(r.name for r in self.relationships)]

    def authorize_tool(self) -> Tool:
        return next(t for t in self.tools if t.kind == "authorize")
