"""One env as steps s14-s17 see it: member blueprints, the environment manifest, tables.

An env is a single domain or (later) a pair ``A+B`` with namespaced tables and tools. Every
lookup here goes through the env's manifest (``servers/.../report.json`` ->
``environment``) and the tool names the env advertises, so the same step code works for
both: a trajectory's tool name is resolved to (member domain, blueprint tool), a blueprint
table name to the physical table the runtime state holds.

Also here: the slot derivation shared by s14 (what the template must mention), s15 (which
values to choose) and the offline handlers, so the three can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller import artifacts
from agentskiller.artifacts import as_paths, require_blueprint
from agentskiller.models.blueprint import Blueprint, Tool
from agentskiller.models.tasks import Slot

SLOT_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")
NS_SEP = "__"  # namespaced tool names: <prefix>__<tool>
#: inputs of s14-s16 whose quarantine ends the env's task steps
TASK_INPUTS = ("server_report", "tool_graph", "blueprint", "policy_report", "templates", "instances", "tasks")


@dataclass
class ToolRef:
    name: str  # as advertised by the env (namespaced in a pair)
    domain: str
    tool: Tool
    table: str  # physical table name


@dataclass
class EnvView:
    env: str
    blueprints: dict[str, Blueprint]
    manifest: dict
    server_dirs: list[Path] = field(default_factory=list)
    _tools: dict[str, ToolRef] = field(default_factory=dict)

    # --------------------------------------------------------------- loading
    @classmethod
    def load(cls, env: str, blueprint: Any, server_report: Any) -> EnvView:
        bps = {}
        for p in as_paths(blueprint):
            bp = require_blueprint(p)
            bps[bp.domain] = bp
        reports = as_paths(server_report)
        manifest: dict = {}
        for p in reports:  # a pair has one manifest; several are merged defensively
            rep = artifacts.read(p)
            env_m = rep.get("environment") or (rep if "tables" in rep else {})
            if not manifest:
                manifest = dict(env_m)
            else:
                for key in ("tables", "namespace", "tools_modules", "tool_prefix"):
                    manifest.setdefault(key, {}).update(env_m.get(key) or {})
        view = cls(env=env, blueprints=bps, manifest=manifest, server_dirs=[p.parent for p in reports])
        view._index_tools()
        return view

    @property
    def domains(self) -> list[str]:
        return sorted(self.blueprints)

    @property
    def cross_domain(self) -> bool:
        return len(self.blueprints) > 1

    @property
    def core_entity(self) -> str:
        return self.manifest.get("core_entity") or next(iter(self.blueprints.values())).core_entity

    @property
    def simulation_time(self) -> str:
        return str(self.manifest.get("simulation_time") or "")

    def _prefix(self, domain: str) -> str | None:
        """The tool-name prefix of ``domain`` (manifest ``tool_prefix``; "" / None: bare)."""
        prefix = (self.manifest.get("tool_prefix") or {}).get(domain)
        if prefix is None and self.cross_domain:
            prefix = domain
        return prefix or None

    def table_name(self, domain: str, table: str) -> str:
        """Physical (state) name of blueprint table ``table`` of member ``domain``
        (manifest ``namespace``: domain -> {logical -> physical})."""
        mapped = ((self.manifest.get("namespace") or {}).get(domain) or {}).get(table)
        return mapped or table

    def _index_tools(self) -> None:
        for domain, bp in sorted(self.blueprints.items()):
            prefix = self._prefix(domain)
            for t in bp.tools:
                name = f"{prefix}{NS_SEP}{t.name}" if prefix else t.name
                self._tools[name] = ToolRef(name=name, domain=domain, tool=t, table=self.table_name(domain, t.table))

    def tool(self, name: str) -> ToolRef:
        ref = self._tools.get(name)
        if ref is None:
            raise KeyError(f"tool {name!r} is not a tool of env {self.env}")
        return ref

    def tool_names(self) -> list[str]:
        return list(self._tools)

    # ---------------------------------------------------------------- tables
    def table_paths(self) -> dict[str, Path]:
        """Physical table name -> file, from the manifest (paths relative to the server dir)."""
        tables = self.manifest.get("tables") or {}
        base = self.server_dirs[0] if self.server_dirs else Path(".")
        out: dict[str, Path] = {}
        items: Iterable = tables.items() if isinstance(tables, dict) else ((t.get("name"), t) for t in tables)
        for name, spec in items:
            rel = spec.get("path") if isinstance(spec, dict) else spec
            out[str(name)] = (base / str(rel)).resolve()
        return out

    def load_tables(self) -> dict[str, dict]:
        """Physical name -> {"primary_key", "records"} (records sorted by primary key)."""
        out = {}
        for name, path in sorted(self.table_paths().items()):
            data = artifacts.read(path)
            pk = data["primary_key"]
            out[name] = {"primary_key": pk, "records": sorted(data["records"], key=lambda r: str(r.get(pk)))}
        return out

    def is_relationship(self, domain: str, table: str) -> bool:
        return self.blueprints[domain].relationship(table) is not None

    def primary_key(self, domain: str, table: str) -> str:
        rel = self.blueprints[domain].relationship(table)
        if rel is not None:
            return rel.primary_key
        from agentskiller.models.catalog import primary_key_for

        return primary_key_for(table)

    def references(self, domain: str, table: str, column: str) -> str | None:
        rel = self.blueprints[domain].relationship(table)
        col = rel.column(column) if rel else None
        return col.references if col else None

    def core_fk(self, domain: str, table: str) -> str | None:
        """The column of relationship ``table`` that points at the core (user) entity."""
        rel = self.blueprints[domain].relationship(table)
        if rel is None:
            return None
        core = self.blueprints[domain].core_entity
        return next((c.name for c in rel.columns if c.references == core), None)


# ---------------------------------------------------------------------- slots
def linked_targets(links: list[dict] | None) -> dict[tuple[int, str], dict]:
    """(call index, parameter) -> the link that feeds it (``equal`` links: the argument is
    the source field's value at execution time, so it is no slot)."""
    return {
        (int(lk["to"]["call"]), lk["to"]["param"]): lk for lk in links or [] if lk.get("relation", "equal") == "equal"
    }


def linked_sources(view: EnvView, trajectory: list[str], links: list[dict] | None) -> set[tuple[str, str]]:
    """(physical table, column) of every link's source field: the user does not state them."""
    out = set()
    for lk in links or []:
        i = int(lk["from"]["call"])
        if 0 <= i < len(trajectory):
            out.add((view.tool(trajectory[i]).table, lk["from"]["field"]))
    return out


def trajectory_slots(view: EnvView, trajectory: list[str], links: list[dict] | None = None) -> list[Slot]:
    """The slots a template of ``trajectory`` may use, derived from the tool declarations.

    One ``record`` slot per record the trajectory acts on (keyed by table: reading and then
    cancelling an appointment is *one* appointment), one ``value`` slot per user-supplied
    parameter, and ``descriptor`` slots for the attributes of every record slot's table.
    A primary key that a create earlier in the trajectory produces is not a slot: it is
    resolved from that call's result at execution time. So is a parameter a ``link``
    feeds (the other service's result field, :mod:`agentskiller.steps.cross.links`), and the
    link's source field is no descriptor (the user does not know it).
    """
    fed = linked_targets(links)
    hidden = linked_sources(view, trajectory, links)
    slots: dict[str, Slot] = {}
    created: set[str] = set()  # physical tables a create earlier in the trajectory wrote
    meaning: dict[str, tuple[str, str]] = {}

    writer: dict[str, int] = {}  # value slot -> the write call that sets it

    def add(name: str, **kw: Any) -> str:
        key = (kw["table"], kw["column"])
        call = kw["calls"][0]
        writes = kw.pop("writes", False)
        # two write calls that set the same column set two different values (a booking's
        # date, then the new date it is moved to): they are two slots
        if name in slots and (meaning[name] != key or (writes and writer.get(name, call) != call)):
            alt = f"new_{name}"
            name = alt if alt not in slots else f"{kw['tool_name']}_{name}"
        if writes:
            writer.setdefault(name, call)
        kw.pop("tool_name", None)
        if name in slots:
            s = slots[name]
            s.calls.append(kw["calls"][0])
            s.required = s.required or kw.get("required", True)
        else:
            slots[name] = Slot(name=name, **kw)
            meaning[name] = key
        return name

    for i, tname in enumerate(trajectory):
        ref = view.tool(tname)
        t, dom = ref.tool, ref.domain
        pk = view.primary_key(dom, t.table)
        for prm in t.parameters:
            col = prm.column or prm.name
            if t.kind == "create" and col == pk:
                continue  # the runtime generates it
            if (i, prm.name) in fed:
                continue  # carried over from the other service's result
            if col == pk and t.kind != "search" and t.kind != "compute":
                if ref.table in created:
                    continue  # resolved from the create's result
                add(
                    prm.name,
                    kind="record",
                    table=ref.table,
                    column=pk,
                    calls=[i],
                    tool_name=t.name,
                    internal_id=view.is_relationship(dom, t.table),
                    required=prm.required,
                    description=prm.description,
                )
                continue
            target = view.references(dom, t.table, col)
            if target is not None and view.is_relationship(dom, t.table):
                ttable = view.table_name(dom, target)
                if target == view.blueprints[dom].core_entity:
                    continue  # the core foreign key comes from the session
                add(
                    prm.name,
                    kind="record",
                    table=ttable,
                    column=view.primary_key(dom, target),
                    calls=[i],
                    tool_name=t.name,
                    internal_id=False,
                    required=prm.required,
                    description=prm.description,
                )
                continue
            add(
                prm.name,
                kind="value",
                table=ref.table,
                column=col,
                calls=[i],
                tool_name=t.name,
                writes=t.kind in ("create", "update"),
                required=prm.required and t.kind not in ("search", "compute"),
                description=prm.description,
            )
        if t.kind == "create":
            created.add(ref.table)
    # descriptors: attributes of the records the user refers to
    for s in list(slots.values()):
        if s.kind != "record":
            continue
        for col in _table_columns(view, s.table):
            if col == s.column or (s.table, col) in hidden:
                continue
            name = f"{_logical(view, s.table)}.{col}"
            if name not in slots:
                slots[name] = Slot(
                    name=name,
                    kind="descriptor",
                    table=s.table,
                    column=col,
                    required=False,
                    description=f"{col} of the {_logical(view, s.table)} record",
                )
    return list(slots.values())


def _logical(view: EnvView, physical: str) -> str:
    for dom in view.domains:
        for t in view.blueprints[dom].tables:
            if view.table_name(dom, t) == physical:
                return t
    return physical


def _table_columns(view: EnvView, physical: str) -> list[str]:
    """Descriptor columns of a table: attributes a customer could name (no foreign keys)."""
    for dom in view.domains:
        bp = view.blueprints[dom]
        for rel in bp.relationships:
            if view.table_name(dom, rel.name) == physical:
                return [c.name for c in rel.columns if not c.references and c.name != rel.primary_key]
    path = view.table_paths().get(physical)
    if path and path.is_file():
        data = artifacts.read(path)
        recs = data.get("records") or []
        if recs:
            pk = data.get("primary_key")
            return [k for k in recs[0] if k != pk and not k.endswith("_id")]
    return []


def slot_names(text: str) -> list[str]:
    return SLOT_RE.findall(text or "")


def fill(text: str, values: dict[str, Any]) -> str:
    """Replace every ``{slot}`` with its value (unknown slots are left as they are)."""
    return SLOT_RE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text or "")
