"""The API that generated tool code is written against.

Tool code (``servers/{domain}/tools.py``) imports only this module::

    from agentskiller.runtime.api import tool, ToolError, Context

A tool is a plain function whose first parameter is ``ctx: Context``; the remaining
parameters (with type hints and a docstring) become the tool's JSON parameters. Tool code
reaches the database only through ``ctx.table(...)``, the clock only through ``ctx.now``
and new keys only through ``ctx.new_id(...)``: that is what makes it deterministic and lets
the same code run in a single domain and, with table names mapped through the namespace,
inside a fused pair.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover - import for type checkers only
    from .state import State

__all__ = ["tool", "is_tool", "ToolError", "Context", "Table", "GENERATED_ID_RE"]

_TOOL_MARK = "__agentskiller_tool__"
F = TypeVar("F", bound=Callable[..., Any])

#: IDs made by :meth:`Context.new_id` look like ``appointment_n00001``. The evaluator
#: normalizes values matching this pattern when comparing end states.
GENERATED_ID_RE = re.compile(r"^[a-z][a-z0-9_]*_n\d{5,}$")


def tool(fn: F) -> F:
    """Mark ``fn`` as a tool. The function is returned unchanged (still callable)."""
    if not callable(fn):
        raise TypeError("@tool decorates functions")
    setattr(fn, _TOOL_MARK, True)
    return fn


def is_tool(obj: Any) -> bool:
    return callable(obj) and getattr(obj, _TOOL_MARK, False) is True


class ToolError(Exception):
    """A refusal or a failed precondition the assistant should see (unknown ID, not
    authorized, policy violation). Anything else a tool raises counts as a crash."""


def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") or "record"


def _clone(rec: Any) -> Any:
    # Records are JSON-like; deepcopy keeps nested lists/dicts from aliasing the state.
    return copy.deepcopy(rec)


class Table:
    """One table of the state, seen through a tool's namespace. Every record handed out
    is a copy: tool code cannot change the state except through insert/update/delete."""

    def __init__(self, state: State, logical: str, physical: str) -> None:
        self._state = state
        self.name = logical
        self.physical = physical
        self.primary_key = state.primary_key(physical)

    # -- reads ---------------------------------------------------------------------
    def _rows(self) -> dict[Any, dict]:
        return self._state.tables[self.physical]

    def _key(self, pk: Any) -> Any:
        """Resolve ``pk`` to the stored key; tolerates "7" vs 7 (LLM arguments)."""
        rows = self._rows()
        if pk in rows:
            return pk
        if isinstance(pk, str):
            try:
                as_int = int(pk)
            except ValueError:
                return pk
            return as_int if as_int in rows else pk
        if isinstance(pk, int) and not isinstance(pk, bool) and str(pk) in rows:
            return str(pk)
        return pk

    def get(self, pk: Any) -> dict | None:
        rec = self._rows().get(self._key(pk))
        return None if rec is None else _clone(rec)

    def all(self) -> list[dict]:
        """All records, sorted by primary key (stable order for deterministic results)."""
        rows = self._rows()
        return [_clone(rows[k]) for k in sorted(rows, key=_sort_key)]

    def find(self, **equal: Any) -> list[dict]:
        """Records whose columns equal every given value, sorted by primary key."""
        rows = self._rows()
        out = []
        for k in sorted(rows, key=_sort_key):
            rec = rows[k]
            if all(rec.get(col) == val for col, val in equal.items()):
                out.append(_clone(rec))
        return out

    def len(self) -> int:
        return len(self._rows())

    def __len__(self) -> int:
        return len(self._rows())

    def __contains__(self, pk: Any) -> bool:
        return self._key(pk) in self._rows()

    def __iter__(self) -> Iterator[dict]:
        return iter(self.all())

    # -- writes --------------------------------------------------------------------
    def insert(self, rec: dict) -> dict:
        """Insert a record. A missing/None primary key is filled with a new ID."""
        if not isinstance(rec, dict):
            raise ToolError(f"{self.name}: a record must be an object")
        rec = _clone(rec)
        pk = rec.get(self.primary_key)
        if pk is None:
            pk = self._state.new_id(self.physical, _snake(self.name))
            rec[self.primary_key] = pk
        if pk in self._rows():
            raise ToolError(f"{self.name}: {self.primary_key} {pk!r} already exists")
        self._state._write(self.physical, pk, rec)
        return _clone(rec)

    def update(self, pk: Any, changes: dict) -> dict:
        """Apply ``changes`` to one record and return the updated record."""
        key = self._key(pk)
        rows = self._rows()
        if key not in rows:
            raise ToolError(f"unknown {self.primary_key}: {pk}")
        if self.primary_key in changes and changes[self.primary_key] != key:
            raise ToolError(f"{self.name}: the primary key {self.primary_key} cannot change")
        rec = _clone(rows[key])
        rec.update(_clone(changes))
        self._state._write(self.physical, key, rec)
        return _clone(rec)

    def delete(self, pk: Any) -> dict:
        """Remove one record and return it."""
        key = self._key(pk)
        rows = self._rows()
        if key not in rows:
            raise ToolError(f"unknown {self.primary_key}: {pk}")
        old = _clone(rows[key])
        self._state._write(self.physical, key, None)
        return old

    def __repr__(self) -> str:
        return f"Table({self.name!r} -> {self.physical!r}, {len(self)} records)"


def _sort_key(k: Any) -> tuple[int, Any]:
    # Mixed int/str keys never happen within one table, but never crash if they do.
    return (0, k) if isinstance(k, (int, float)) and not isinstance(k, bool) else (1, str(k))


class Context:
    """What a tool sees: tables (through the namespace), the authorized user, the clock.

    ``namespace`` maps logical table names (as written in the tool code) to physical
    names in the state; identity for a single domain, ``Clinic_Appointment`` style in a
    fused pair. Authorization lives in the state per service (``state.auth[domain]``), so it
    survives between calls of one episode, and in a pair each member's tools see only
    their own member's authorization: ``DentalCareDesk__authorize_patient`` does not
    authorize a ``PharmacyCareLine`` tool. One person per conversation: authorizing one
    service as a different person than another service already authorized is refused
    (the Bridge Rules ``bridge.identity`` and ``bridge.authorization.<Domain>``).
    ``domain`` None (a bare context in tests) uses the shared ``state.user``.
    """

    def __init__(
        self,
        state: State,
        namespace: dict[str, str] | None = None,
        core_entity: str | None = None,
        now: str = "",
        user: str | None = None,
        domain: str | None = None,
    ) -> None:
        self.state = state
        self.namespace = dict(namespace or {})
        self.core_entity = core_entity
        self.now = now
        self.domain = domain
        if user is not None:
            state.user = user
            if domain is not None:
                state.auth[domain] = user

    def physical(self, name: str) -> str:
        if name in self.namespace:
            return self.namespace[name]
        if not self.namespace and name in self.state.tables:
            return name
        raise ToolError(f"unknown table: {name}")

    def table(self, name: str) -> Table:
        return Table(self.state, name, self.physical(name))

    @property
    def user(self) -> Any:
        """Primary key of the person this service authorized, or None."""
        if self.domain is None:
            return self.state.user
        return self.state.auth.get(self.domain)

    def authorize(self, user_id: Any) -> dict | None:
        """Bind this service to ``user_id``. When the core entity is known the record must
        exist (ToolError otherwise); returns that record. Refused when another service of
        the environment is authorized as a different person (one person per conversation)."""
        rec = None
        if self.core_entity:
            table = self.table(self.core_entity)
            rec = table.get(user_id)
            if rec is None:
                raise ToolError(f"unknown {table.primary_key}: {user_id}")
            user_id = rec[table.primary_key]
        if self.domain is not None:
            other = sorted(d for d, u in self.state.auth.items() if d != self.domain and u != user_id)
            if other:
                raise ToolError(
                    f"refused (bridge.identity): {other[0]} is authorized as {self.state.auth[other[0]]!r} in "
                    f"this conversation; both services serve one person, so {self.domain} cannot be "
                    f"authorized as {user_id!r}"
                )
            self.state.auth[self.domain] = user_id
        self.state.user = user_id
        return rec

    def require_user(self) -> Any:
        user = self.user
        if user is None:
            if self.domain is not None and self.state.auth:
                raise ToolError(
                    f"not authorized (bridge.authorization.{self.domain}): call {self.domain}'s own "
                    f"authorization tool first; another service's authorization does not count"
                )
            raise ToolError("not authorized: call the authorization tool first")
        return user

    def new_id(self, table: str) -> str:
        """A fresh primary key for ``table`` (logical name): ``<snake>_n00001``. The
        counter lives in the state, so replays give identical IDs."""
        return self.state.new_id(self.physical(table), _snake(table))
