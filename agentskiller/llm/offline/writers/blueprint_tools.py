"""The tools of one blueprint: entity tools (authorize, profile, search, read) and, per relationship
table, tools of every kind derived from its template's status lifecycle (create, read own, list own,
transitions, edit, delete, total, count). Descriptions are drawn from :mod:`.tool_phrases`.
"""

from __future__ import annotations

from typing import Any

from agentskiller.models.catalog import primary_key_for, snake_case

from ..catalog import RelationshipTemplate
from ..phrasing import article, plural, spoken
from .tool_names import fit_name
from .tool_phrases import or_join, say


def param_for(col: dict, *, required: bool = True, name: str | None = None, description: str | None = None) -> dict:
    """A tool parameter bound to column ``col``, with its type and bounds."""
    p: dict[str, Any] = {
        "name": name or col["name"],
        "type": col["type"],
        "description": description or col.get("description", col["name"]),
        "required": required,
        "column": col["name"],
    }
    for k in ("enum", "minimum", "maximum"):
        if col.get(k) is not None:
            p[k] = col[k]
    return p


def columns_of(rel: dict) -> dict[str, dict]:
    """A relationship table's columns by name."""
    return {c["name"]: c for c in rel["columns"]}


def entity_attrs(entities: dict, name: str) -> dict[str, dict]:
    """An entity's attributes by name (none for an entity the context lacks)."""
    ent = entities.get(name) or {}
    return {a["name"]: a for a in ent.get("attributes", [])}


class Builder:
    """Builds the tools of one blueprint; also the source of extra tools during repair."""

    def __init__(
        self,
        rng,
        domain: str,
        core: str,
        peripherals: list[str],
        entities: dict,
        templates: dict[str, RelationshipTemplate],
        relationships: list[dict],
    ) -> None:
        self.rng, self.domain, self.core, self.peripherals = rng, domain, core, peripherals
        self.entities, self.templates, self.relationships = entities, templates, relationships
        self.core_w = spoken(core)

    def name(self, raw: str) -> str:
        return fit_name(raw, self.domain)

    def tool(self, name: str, kind: str, table: str, description: str, params: list[dict], **extra: Any) -> dict:
        reads = [table] + [t for t in extra.pop("also_reads", []) if t != table]
        writes = [table] if kind in ("create", "update", "delete") else []
        t = {
            "name": self.name(name),
            "description": description,
            "kind": kind,
            "table": table,
            "reads": reads,
            "writes": writes,
            "requires_auth": kind != "authorize",
            "parameters": params,
        }
        t.update({k: v for k, v in extra.items() if v is not None})
        return t

    # -------------------------------------------------------------- entity tools
    def authorize(self) -> dict:
        pk = primary_key_for(self.core)
        attrs = entity_attrs(self.entities, self.core)
        col = attrs.get(pk, {"name": pk, "type": "string", "description": f"ID of the {self.core_w}"})
        return self.tool(
            f"authorize_{snake_case(self.core)}",
            "authorize",
            self.core,
            say(self.rng, "authorize", core=self.core_w, pk=pk),
            [param_for(col, description=f"The {self.core_w}'s ID")],
            returns=f"Confirmation that the session now acts for the {self.core_w}",
        )

    def profile(self) -> dict:
        pk = primary_key_for(self.core)
        col = entity_attrs(self.entities, self.core).get(pk, {"name": pk, "type": "string", "description": pk})
        return self.tool(
            f"get_{snake_case(self.core)}_profile",
            "read",
            self.core,
            say(self.rng, "profile", core=self.core_w),
            [param_for(col, description=f"The authorized {self.core_w}'s own ID")],
            returns=f"The {self.core_w} record",
        )

    def _filters(self, attrs: dict[str, dict], skip: set[str], n: int) -> list[dict]:
        enum_cols = [a for a in attrs.values() if a.get("enum") and a["name"] not in skip]
        other = [
            a
            for a in attrs.values()
            if a["name"] not in skip
            and not a.get("enum")
            and (a["type"] == "boolean" or a.get("format") in ("city", "company", "title", "person_name"))
        ]
        picks = enum_cols[:n]
        picks += other[: max(0, n - len(picks))]
        return [
            param_for(
                a,
                required=False,
                description=f"Only {a['description'][0].lower()}{a['description'][1:]} equal to this value",
            )
            for a in picks
        ]

    def search_entity(self, ent: str) -> dict:
        attrs = entity_attrs(self.entities, ent)
        filters = self._filters(attrs, {primary_key_for(ent)}, 2)
        return self.tool(
            f"search_{plural(snake_case(ent))}",
            "search",
            ent,
            say(self.rng, "search", plural=plural(spoken(ent))),
            filters,
            returns=f"A list of {spoken(ent)} records",
        )

    def read_entity(self, ent: str) -> dict:
        pk = primary_key_for(ent)
        col = entity_attrs(self.entities, ent).get(pk, {"name": pk, "type": "string", "description": pk})
        return self.tool(
            f"get_{snake_case(ent)}_details",
            "read",
            ent,
            say(self.rng, "read", thing=spoken(ent)),
            [param_for(col, description=f"ID of the {spoken(ent)}")],
            returns=f"The {spoken(ent)} record",
        )

    # -------------------------------------------------------- relationship tools
    def rel_tools(self, rel: dict, extras: bool) -> list[dict]:
        t = self.templates.get(rel["name"])
        cols = columns_of(rel)
        pk = rel["primary_key"]
        core_fk = primary_key_for(self.core)
        noun = t.noun if t else snake_case(rel["name"])
        thing, things = noun.replace("_", " "), plural(noun).replace("_", " ")
        status = cols.get(t.lifecycle.column if t else "status")
        kw = {"core": self.core_w, "thing": thing, "a_thing": article(thing), "plural": things}
        pk_param = param_for(cols[pk], description=f"ID of the {thing}")
        refs = [c for c in rel["columns"] if c.get("references") and c["name"] != core_fk]
        own = [
            c
            for c in rel["columns"]
            if not c.get("references") and c["name"] != pk and (status is None or c["name"] != status["name"])
        ]
        out: list[dict] = []
        # create
        if t is not None:
            cname = t.create.name or f"{t.create.verb}_{noun}"
            cdesc = (
                t.create.description + f" for the authorized {self.core_w}; the new {thing} starts as "
                f"{t.lifecycle.initial}."
            )
        else:
            cname, cdesc = f"create_{noun}", f"Create {article(thing)} for the authorized {self.core_w}."
        params = [param_for(c, description=f"ID of the {spoken(c['references'])}") for c in refs]
        params += [param_for(c, required=not c.get("nullable", False)) for c in own]
        effects = {status["name"]: t.lifecycle.initial} if (t and status) else {}
        out.append(
            self.tool(
                cname,
                "create",
                rel["name"],
                cdesc,
                params,
                effects=effects,
                also_reads=[c["references"] for c in refs] + [self.core],
                returns=f"The new {thing} record",
            )
        )
        # read own record, list own records
        out.append(
            self.tool(
                f"get_{noun}",
                "read",
                rel["name"],
                say(self.rng, "get_own", **kw),
                [pk_param],
                returns=f"The {thing} record",
            )
        )
        filters = []
        if status is not None:
            filters.append(param_for(status, required=False, description=f"Only {things} with this status"))
        if refs:
            filters.append(
                param_for(
                    refs[0], required=False, description=f"Only {things} for this {spoken(refs[0]['references'])}"
                )
            )
        out.append(
            self.tool(
                f"list_my_{plural(noun)}",
                "search",
                rel["name"],
                say(self.rng, "list", **kw),
                filters,
                returns=f"A list of {thing} records",
            )
        )
        if t is None:
            return out
        col = t.lifecycle.column
        for tr in t.lifecycle.transitions:
            out.append(
                self.tool(
                    f"{tr.action}_{noun}",
                    "update",
                    rel["name"],
                    say(
                        self.rng,
                        "transition",
                        Action=tr.action.replace("_", " ").capitalize(),
                        column=col,
                        from_=or_join(tr.from_),
                        to=tr.to,
                        **kw,
                    ),
                    [pk_param],
                    preconditions=[{"column": col, "values": list(tr.from_)}],
                    effects={col: tr.to},
                    returns=f"The updated {thing} record",
                )
            )
        if t.edit is not None:
            eparams = [
                param_for(
                    cols[c],
                    required=len(t.edit.columns) == 1,
                    description=f"New value: {cols[c]['description'][0].lower()}{cols[c]['description'][1:]}",
                )
                for c in t.edit.columns
                if c in cols
            ]
            out.append(
                self.tool(
                    f"{t.edit.verb}_{noun}",
                    "update",
                    rel["name"],
                    say(
                        self.rng,
                        "edit",
                        Verb=t.edit.verb.replace("_", " ").capitalize(),
                        fields=or_join([c.replace("_", " ") for c in t.edit.columns]),
                        column=col,
                        from_=or_join(t.edit.from_),
                        **kw,
                    ),
                    [pk_param, *eparams],
                    preconditions=[{"column": col, "values": list(t.edit.from_)}],
                    returns=f"The updated {thing} record",
                )
            )
        if t.delete is not None:
            out.append(
                self.tool(
                    f"{t.delete.verb}_{noun}",
                    "delete",
                    rel["name"],
                    say(self.rng, "delete", column=col, from_=or_join(t.delete.from_), **kw),
                    [pk_param],
                    preconditions=[{"column": col, "values": list(t.delete.from_)}],
                    returns=f"The removed {thing} record",
                )
            )
        status_filter = (
            [param_for(status, required=False, description=f"Only {things} with this status")] if status else []
        )
        if t.total is not None:
            out.append(
                self.tool(
                    t.total.name,
                    "compute",
                    rel["name"],
                    say(
                        self.rng,
                        "total",
                        agg=t.total.aggregate,
                        column=t.total.column.replace("_", " "),
                        filter="status",
                        **kw,
                    ),
                    status_filter,
                    aggregate=t.total.aggregate,
                    aggregate_column=t.total.column,
                    returns='{"value": number, "count": integer}',
                )
            )
        if extras or t.total is None:
            out.append(
                self.tool(
                    f"count_my_{plural(noun)}",
                    "compute",
                    rel["name"],
                    say(self.rng, "count", filter="status", **kw),
                    status_filter,
                    aggregate="count",
                    returns='{"value": integer, "count": integer}',
                )
            )
        return out

    def all_tools(self, extras: bool) -> list[dict]:
        tools = [self.authorize(), self.profile()]
        for p in self.peripherals:
            tools.append(self.search_entity(p))
            tools.append(self.read_entity(p))
        for rel in self.relationships:
            tools += self.rel_tools(rel, extras)
        return tools
