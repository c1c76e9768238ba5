"""The database state of one environment: tables of records keyed by primary key.

Table files (written by s06) look like::

    {"table": "Appointment", "primary_key": "appointment_id",
     "records": [{...}, ...], "meta": {...}}

A :class:`State` holds the tables under their *physical* names (identical to the logical
names in a single domain; namespaced in a fused pair), the ID counters of
:meth:`new_id`, the authorized person per service (``auth``: domain -> key; ``user`` is the
person the last authorization named) and the tools that succeeded in this episode
(``succeeded``, in order: what a pair's ordering Bridge Rules check). ``hash()`` covers the
tables only: two episodes that end with the same data are equal however the user got
authorized. That is no loophole: every authorization rule is enforced when a call is made
(a member's tool without that member's own authorization, a second person, a step before
the one it depends on are refused), so a call that breaks one never changes the tables and
the end state differs from the golden one.

Writes go through :meth:`_write`, which keeps an undo journal while a call is open
(:meth:`begin` / :meth:`commit` / :meth:`rollback`): a tool call that fails leaves the
state exactly as before, like a database transaction would.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["State", "StateError", "load_table_file", "TableDiff"]

_MISSING = object()


class StateError(ValueError):
    """A table file is malformed (duplicate or missing primary keys, bad shape)."""


def _sort_key(k: Any) -> tuple[int, Any]:
    return (0, k) if isinstance(k, (int, float)) and not isinstance(k, bool) else (1, str(k))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_table_file(path: str | Path) -> tuple[str, str, list[dict]]:
    """Read one table file -> (table name, primary key, records)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise StateError(f"{path}: a table file is an object with a 'records' list")
    pk = data.get("primary_key")
    if not isinstance(pk, str) or not pk:
        raise StateError(f"{path}: 'primary_key' is missing")
    return str(data.get("table") or Path(path).stem), pk, data["records"]


class TableDiff(dict):
    """``{"added": [pk], "removed": [pk], "changed": [pk]}`` for one table."""


class State:
    def __init__(
        self,
        tables: Mapping[str, Mapping[Any, dict]] | None = None,
        primary_keys: Mapping[str, str] | None = None,
        counters: Mapping[str, int] | None = None,
        user: Any = None,
        auth: Mapping[str, Any] | None = None,
        succeeded: list[str] | None = None,
    ) -> None:
        self.tables: dict[str, dict[Any, dict]] = {k: dict(v) for k, v in (tables or {}).items()}
        self.primary_keys: dict[str, str] = dict(primary_keys or {})
        self.counters: dict[str, int] = dict(counters or {})
        self.user = user
        #: domain -> the person that domain's authorization tool bound (a pair has two)
        self.auth: dict[str, Any] = dict(auth or {})
        #: exposed names of the tool calls that succeeded in this episode, in order
        self.succeeded: list[str] = list(succeeded or [])
        self._journal: list[tuple[str, Any, Any]] | None = None
        self._saved: tuple[dict[str, int], Any, dict[str, Any]] | None = None
        self._table_json: dict[str, str] = {}  # table -> canonical JSON text cache

    # ------------------------------------------------------------------ building
    def add_table(self, name: str, primary_key: str, records: list[dict], source: str = "") -> None:
        if name in self.tables:
            raise StateError(f"table {name} loaded twice")
        rows: dict[Any, dict] = {}
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise StateError(f"{source or name}: record {i} is not an object")
            pk = rec.get(primary_key)
            if pk is None or isinstance(pk, (dict, list, float, bool)):
                raise StateError(f"{source or name}: record {i} has no usable {primary_key!r}")
            if pk in rows:
                raise StateError(f"{source or name}: duplicate {primary_key} {pk!r}")
            rows[pk] = rec
        self.tables[name] = rows
        self.primary_keys[name] = primary_key

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path]) -> State:
        """``files``: physical table name -> table file."""
        state = cls()
        for name, path in files.items():
            _, pk, records = load_table_file(path)
            state.add_table(name, pk, records, source=str(path))
        return state

    def primary_key(self, table: str) -> str:
        try:
            return self.primary_keys[table]
        except KeyError:
            from .api import ToolError

            raise ToolError(f"unknown table: {table}") from None

    def copy(self) -> State:
        new = State(copy.deepcopy(self.tables), self.primary_keys, self.counters, self.user, self.auth, self.succeeded)
        new._table_json = dict(self._table_json)
        return new

    # ------------------------------------------------------------------ writes
    def _write(self, table: str, pk: Any, rec: dict | None) -> None:
        rows = self.tables[table]
        if self._journal is not None:
            self._journal.append((table, pk, rows.get(pk, _MISSING)))
        if rec is None:
            rows.pop(pk, None)
        else:
            rows[pk] = rec
        self._table_json.pop(table, None)

    def new_id(self, table: str, prefix: str) -> str:
        rows = self.tables.get(table, {})
        n = self.counters.get(table, 0)
        while True:  # skip values already used by the data, so IDs never collide
            n += 1
            candidate = f"{prefix}_n{n:05d}"
            if candidate not in rows:
                break
        self.counters[table] = n
        return candidate

    def begin(self) -> None:
        self._journal = []
        self._saved = (dict(self.counters), self.user, dict(self.auth))

    def commit(self) -> list[str]:
        """Close the call; return the tables whose content really changed."""
        changed = self._changed_in_journal()
        self._journal, self._saved = None, None
        return changed

    def rollback(self) -> None:
        for table, pk, old in reversed(self._journal or []):
            if old is _MISSING:
                self.tables[table].pop(pk, None)
            else:
                self.tables[table][pk] = old
            self._table_json.pop(table, None)
        if self._saved is not None:
            self.counters, self.user, self.auth = self._saved
        self._journal, self._saved = None, None

    def _changed_in_journal(self) -> list[str]:
        first_old: dict[tuple[str, Any], Any] = {}
        for table, pk, old in self._journal or []:
            first_old.setdefault((table, pk), old)
        changed = set()
        for (table, pk), old in first_old.items():
            now = self.tables[table].get(pk, _MISSING)
            if (old is _MISSING) != (now is _MISSING) or (old is not _MISSING and _dumps(old) != _dumps(now)):
                changed.add(table)
        return sorted(changed)

    # ------------------------------------------------------------------ comparing
    def canonical(self) -> dict[str, list[dict]]:
        """Tables as JSON: ``{table: [records sorted by primary key]}``, names sorted."""
        return {
            name: [self.tables[name][k] for k in sorted(self.tables[name], key=_sort_key)]
            for name in sorted(self.tables)
        }

    def _table_text(self, name: str) -> str:
        text = self._table_json.get(name)
        if text is None:
            rows = self.tables[name]
            text = _dumps([rows[k] for k in sorted(rows, key=_sort_key)])
            self._table_json[name] = text
        return text

    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`canonical` (tables only: not who is
        authorized, not the ID counters, not the calls made); equal to ``agentskiller.io.sha256_json(state.canonical())``.
        The JSON text is cached per table, so a call that touches one table re-serializes
        only that table."""
        body = ",".join(_dumps(name) + ":" + self._table_text(name) for name in sorted(self.tables))
        return hashlib.sha256(("{" + body + "}").encode("utf-8")).hexdigest()

    def table_hashes(self) -> dict[str, str]:
        return {
            name: hashlib.sha256(self._table_text(name).encode("utf-8")).hexdigest() for name in sorted(self.tables)
        }

    def diff(self, other: State) -> dict[str, TableDiff]:
        """Which tables/primary keys differ from ``other`` (``self`` is the newer state).
        Tables present on one side only count as all added / all removed."""
        out: dict[str, TableDiff] = {}
        for name in sorted(set(self.tables) | set(other.tables)):
            mine, theirs = self.tables.get(name, {}), other.tables.get(name, {})
            if name in self.tables and name in other.tables and self._table_text(name) == other._table_text(name):
                continue
            added = sorted((k for k in mine if k not in theirs), key=_sort_key)
            removed = sorted((k for k in theirs if k not in mine), key=_sort_key)
            changed = sorted((k for k in mine if k in theirs and _dumps(mine[k]) != _dumps(theirs[k])), key=_sort_key)
            if added or removed or changed:
                out[name] = TableDiff(added=added, removed=removed, changed=changed)
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in sorted(self.tables.items()))
        return f"State({sizes}; user={self.user!r})"
