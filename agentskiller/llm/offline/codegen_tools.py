"""The offline provider's tool-code writer (step s09).

Writes the ``servers/{domain}/tools.py`` a code model would write: one plain, typed function
per blueprint tool, on the runtime API (``ctx.table`` / ``ctx.require_user`` /
``ctx.new_id`` / ``ctx.now``), with the kind semantics spelled out in
:mod:`agentskiller.models.blueprint` as straight-line code: ownership checks, preconditions,
enum / range / date validation, foreign-key existence checks, effects. It is *not* an
interpreter that reads the blueprint at run time: the emitted module only knows the
literals it was written with, exactly like model-written code.

Signatures follow the blueprint parameters so that the runtime loader builds exactly the
s05 tool list from them: required parameters first, optional ones typed ``T | None = None``.
The output is deterministic (no RNG, sorted iteration where order is not given) and the
code never touches files, the clock or the network.

One module past 400 lines: a single ``_Writer`` emits every tool kind, and the kinds share its
validation, ownership and precondition snippets.
"""

from __future__ import annotations

import keyword
from typing import Any

from ...models.blueprint import Blueprint, Relationship, Tool, ToolParam
from .codegen_data import number_literal

#: blueprint parameter type -> Python annotation
PY_TYPES = {"string": "str", "date": "str", "datetime": "str", "integer": "int", "number": "float", "boolean": "bool"}

#: at most this many records from a search, as the blueprint says
SEARCH_LIMIT = 50


def annotation(param: ToolParam) -> str:
    """The Python annotation of one parameter (``list[str]``, ``int | None``,
    ``Literal['a', 'b']`` for an enum, so the tool list built from it carries the enum)."""
    scalar = (param.items or "string") if param.type == "array" else param.type
    base = PY_TYPES.get(scalar, "str")
    if param.enum:
        base = f"Literal[{', '.join(repr(_coerce(v, scalar)) for v in param.enum)}]"
    if param.type == "array":
        base = f"list[{base}]"
    return base if param.required else f"{base} | None"


def _coerce(value: object, scalar: str) -> object:
    """Enum values in the parameter's own type (the tool list's enum is typed)."""
    try:
        if scalar == "integer":
            return int(value)  # type: ignore[arg-type]
        if scalar == "number":
            return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    return value if scalar != "string" else str(value)


def ordered_params(tool: Tool) -> list[ToolParam]:
    """Required parameters first (Python needs defaults last), blueprint order otherwise."""
    return [p for p in tool.parameters if p.required] + [p for p in tool.parameters if not p.required]


def docstring(tool: Tool) -> str:
    """Google-style docstring: the blueprint description, then one ``Args`` line per
    parameter (the loader takes parameter descriptions from there)."""
    lines = [tool.description.strip()]
    params = ordered_params(tool)
    if params:
        lines += ["", "Args:"]
        lines += [f"    {p.name}: {' '.join(p.description.split())}" for p in params]
    if tool.returns:
        lines += ["", "Returns:", f"    {' '.join(tool.returns.split())}"]
    body = "\n".join(("    " + ln) if ln else "" for ln in lines)
    body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'    """{body.lstrip()}\n    """'


class _Writer:
    """Emits the code of one tool module for one blueprint."""

    def __init__(
        self,
        blueprint: Blueprint,
        policy_sections: dict[str, str] | None = None,
        table_keys: dict[str, str] | None = None,
    ) -> None:
        self.bp = blueprint
        self.policy = policy_sections or {}
        self.core = blueprint.core_entity
        # Primary keys: relationships declare theirs; entities follow <snake>_id, but the
        # data's own table files win when the step passes them (table_keys).
        from ...models.catalog import primary_key_for

        self.keys: dict[str, str] = {e: primary_key_for(e) for e in blueprint.entities}
        self.keys.update({r.name: r.primary_key for r in blueprint.relationships})
        self.keys.update(table_keys or {})
        self.core_key = self.keys[self.core]
        self.lines: list[str] = []

    # ------------------------------------------------------------------ helpers
    def emit(self, line: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + line) if line else "")

    def relationship(self, table: str) -> Relationship | None:
        return self.bp.relationship(table)

    def owner_column(self, table: str) -> str | None:
        """The column that ties a record of ``table`` to the authorized user: the core
        foreign key of a relationship, the primary key of the core table, None otherwise."""
        if table == self.core:
            return self.core_key
        rel = self.relationship(table)
        if rel is None:
            return None
        for col in rel.columns:
            if col.references == self.core:
                return col.name
        return None

    def references(self, table: str) -> dict[str, str]:
        rel = self.relationship(table)
        return rel.foreign_keys() if rel else {}

    def key_param(self, tool: Tool) -> ToolParam:
        pk = self.keys.get(tool.table)
        for p in tool.parameters:
            if p.column == pk or p.name == pk:
                return p
        return tool.parameters[0]

    def column_of(self, param: ToolParam) -> str | None:
        return param.column

    def column_meta(self, table: str, column: str | None) -> Any:
        rel = self.relationship(table)
        return rel.column(column) if (rel and column) else None

    # ------------------------------------------------------------ validation
    def validate_param(self, tool: Tool, p: ToolParam, indent: int = 1) -> None:
        """Enum, range and date checks for one parameter (skipped when it is None)."""
        col = self.column_meta(tool.table, p.column)
        enum = p.enum or (col.enum if col is not None else None)
        lo = p.minimum if p.minimum is not None else (col.minimum if col is not None else None)
        hi = p.maximum if p.maximum is not None else (col.maximum if col is not None else None)
        kind = p.type if p.type != "array" else (p.items or "string")
        checks: list[tuple[str, list[str]]] = []
        if enum:
            allowed = tuple(enum)
            cond = (
                f"any(v not in {allowed!r} for v in {p.name})" if p.type == "array" else f"{p.name} not in {allowed!r}"
            )
            checks.append(
                (
                    cond,
                    [
                        f'raise ToolError(f"invalid {p.name}: {{{p.name}!r}}; allowed: '
                        f'{_lit(", ".join(map(str, allowed)))}")'
                    ],
                )
            )
        if p.type in ("integer", "number") and (lo is not None or hi is not None):
            num = f"isinstance({p.name}, bool) or not isinstance({p.name}, (int, float))"
            bounds = []
            if lo is not None:
                bounds.append(f"{p.name} < {number_literal(lo)}")
            if hi is not None:
                bounds.append(f"{p.name} > {number_literal(hi)}")
            rng = (
                f"{number_literal(lo) if lo is not None else '-inf'}..{number_literal(hi) if hi is not None else 'inf'}"
            )
            checks.append(
                (
                    f"{num} or {' or '.join(bounds)}",
                    [f'raise ToolError(f"{p.name} must be a number in {rng}, got {{{p.name}!r}}")'],
                )
            )
        if kind in ("date", "datetime") and p.type != "array":
            checks.append(
                (
                    f"not _valid_{kind}({p.name})",
                    [f'raise ToolError(f"{p.name} must be an ISO 8601 {kind}, got {{{p.name}!r}}")'],
                )
            )
        if not checks:
            return
        if not p.required:
            self.emit(f"if {p.name} is not None:", indent)
            indent += 1
        for cond, body in checks:
            self.emit(f"if {cond}:", indent)
            for b in body:
                self.emit(b, indent + 1)

    def check_references(self, tool: Tool, params: list[ToolParam], indent: int = 1) -> None:
        """Foreign-key parameters must name existing records."""
        refs = self.references(tool.table)
        for p in params:
            target = refs.get(p.column or "")
            if not target or target == self.core or p.type == "array":
                continue
            guard = "" if p.required else f"{p.name} is not None and "
            self.emit(f"if {guard}ctx.table({target!r}).get({p.name}) is None:", indent)
            self.emit(f'raise ToolError(f"unknown {p.column}: {{{p.name}}}")', indent + 1)

    def load_owned(self, tool: Tool, key: ToolParam, var: str = "record") -> None:
        """Fetch the record named by ``key`` and insist that it is the user's."""
        pk = self.keys[tool.table]
        self.emit(f"{var} = ctx.table({tool.table!r}).get({key.name})", 1)
        self.emit(f"if {var} is None:", 1)
        self.emit(f'raise ToolError(f"unknown {pk}: {{{key.name}}}")', 2)
        owner = self.owner_column(tool.table)
        if owner and tool.requires_auth:
            self.emit(f"if {var}.get({owner!r}) != user:", 1)
            self.emit(
                f'raise ToolError(f"{tool.table} {{{key.name}}} does not belong to the authorized '
                f'{self.core.lower()}")',
                2,
            )

    def preconditions(self, tool: Tool) -> None:
        pk = self.keys[tool.table]
        for cond in sorted(tool.preconditions, key=lambda c: c.column):
            allowed = tuple(cond.values)
            self.emit(f"if record.get({cond.column!r}) not in {allowed!r}:", 1)
            self.emit(
                f'raise ToolError(f"{tool.table} {{record[{pk!r}]}} has {cond.column} '
                f"{{record.get({cond.column!r})!r}}; this action needs one of: "
                f'{_lit(", ".join(map(str, allowed)))}")',
                2,
            )

    def filter_lines(self, tool: Tool) -> None:
        """Equality filters (membership for arrays) over ``rows``; None means no filter."""
        for p in ordered_params(tool):
            if not p.column:
                continue
            test = f"r.get({p.column!r}) in {p.name}" if p.type == "array" else f"r.get({p.column!r}) == {p.name}"
            if p.required:
                self.emit(f"rows = [r for r in rows if {test}]", 1)
            else:
                self.emit(f"if {p.name} is not None:", 1)
                self.emit(f"rows = [r for r in rows if {test}]", 2)

    def scoped_rows(self, tool: Tool) -> None:
        """All rows of the tool's table the user may see, sorted by primary key."""
        pk = self.keys[tool.table]
        owner = self.owner_column(tool.table)
        self.emit(f"rows = ctx.table({tool.table!r}).all()  # sorted by {pk}", 1)
        if owner and tool.requires_auth:
            self.emit(f"rows = [r for r in rows if r.get({owner!r}) == user]", 1)

    # ---------------------------------------------------------------- kinds
    def tool_function(self, tool: Tool) -> None:
        params = ordered_params(tool)
        sig = ", ".join(
            ["ctx: Context"] + [f"{p.name}: {annotation(p)}" + ("" if p.required else " = None") for p in params]
        )
        ret = "list[dict]" if tool.kind == "search" else "dict"
        self.emit("@tool")
        self.emit(f"def {tool.name}({sig}) -> {ret}:")
        self.lines.append(docstring(tool))
        for line in _policy_comment(self.policy.get(tool.name, "")):
            self.emit(line, 1)
        if tool.requires_auth and tool.kind != "authorize":
            if self.owner_column(tool.table):
                self.emit("user = ctx.require_user()", 1)
            else:  # no ownership to check, but the policy still demands a session
                self.emit("ctx.require_user()", 1)
        for p in params:
            self.validate_param(tool, p)
        getattr(self, f"kind_{tool.kind}")(tool)
        self.emit()
        self.emit()

    def kind_authorize(self, tool: Tool) -> None:
        key = self.key_param(tool)
        self.emit(f"record = ctx.table({self.core!r}).get({key.name})", 1)
        self.emit("if record is None:", 1)
        self.emit(f'raise ToolError(f"unknown {self.core_key}: {{{key.name}}}")', 2)
        self.emit(f"ctx.authorize({key.name})", 1)
        self.emit(f'return {{"authorized": True, {self.core_key!r}: {key.name}}}', 1)

    def kind_read(self, tool: Tool) -> None:
        key = self.key_param(tool)
        self.load_owned(tool, key)
        self.emit("return record", 1)

    def kind_search(self, tool: Tool) -> None:
        self.scoped_rows(tool)
        self.filter_lines(tool)
        self.emit(f"return rows[:{SEARCH_LIMIT}]", 1)

    def kind_compute(self, tool: Tool) -> None:
        self.scoped_rows(tool)
        self.filter_lines(tool)
        agg = tool.aggregate or "count"
        if agg == "count" or not tool.aggregate_column:
            self.emit('return {"value": len(rows), "count": len(rows)}', 1)
            return
        col = tool.aggregate_column
        self.emit(
            f"values = [r[{col!r}] for r in rows if isinstance(r.get({col!r}), (int, float)) "
            f"and not isinstance(r.get({col!r}), bool)]",
            1,
        )
        if agg == "sum":
            self.emit("value = round(sum(values), 6)", 1)
        elif agg == "avg":
            self.emit("value = round(sum(values) / len(values), 6) if values else None", 1)
        else:
            self.emit(f"value = {agg}(values) if values else None", 1)
        self.emit('return {"value": value, "count": len(rows)}', 1)

    def kind_create(self, tool: Tool) -> None:
        table, pk = tool.table, self.keys[tool.table]
        params = ordered_params(tool)
        self.check_references(tool, params)
        owner = self.owner_column(table)
        self.emit(f"table = ctx.table({table!r})", 1)
        self.emit(f"new_id = ctx.new_id({table!r})", 1)
        self.emit("record = {", 1)
        self.emit(f"{pk!r}: new_id,", 2)
        set_cols = {pk}
        if owner and owner != pk and tool.requires_auth:
            self.emit(f"{owner!r}: user,", 2)
            set_cols.add(owner)
        for p in params:
            if p.column and p.column not in set_cols:
                self.emit(f"{p.column!r}: {p.name},", 2)
                set_cols.add(p.column)
        for col, val in sorted(tool.effects.items()):
            if col not in set_cols:
                self.emit(f"{col!r}: {val!r},", 2)
                set_cols.add(col)
        self.emit("}", 1)
        # effects win over parameters for the same column (the policy fixes them)
        for col, val in sorted(tool.effects.items()):
            if any(p.column == col for p in params):
                self.emit(f"record[{col!r}] = {val!r}", 1)
        rel = self.relationship(table)
        for col in rel.columns if rel else []:
            if col.name in set_cols:
                continue
            self.emit(f"record[{col.name!r}] = {_default_expr(col)}", 1)
        self.emit("table.insert(record)", 1)
        self.emit("return table.get(new_id)", 1)

    def kind_update(self, tool: Tool) -> None:
        key = self.key_param(tool)
        table = tool.table
        self.load_owned(tool, key)
        self.preconditions(tool)
        values = [p for p in ordered_params(tool) if p is not key]
        self.check_references(tool, values)
        self.emit("changes = {}", 1)
        for p in values:
            if not p.column:
                continue
            if p.required:
                self.emit(f"changes[{p.column!r}] = {p.name}", 1)
            else:
                self.emit(f"if {p.name} is not None:", 1)
                self.emit(f"changes[{p.column!r}] = {p.name}", 2)
        for col, val in sorted(tool.effects.items()):
            self.emit(f"changes[{col!r}] = {val!r}", 1)
        if not tool.effects and not any(p.required and p.column for p in values):
            self.emit("if not changes:", 1)
            self.emit('raise ToolError("nothing to update: give at least one new value")', 2)
        self.emit(f"ctx.table({table!r}).update({key.name}, changes)", 1)
        self.emit(f"return ctx.table({table!r}).get({key.name})", 1)

    def kind_delete(self, tool: Tool) -> None:
        key = self.key_param(tool)
        pk = self.keys[tool.table]
        self.load_owned(tool, key)
        self.preconditions(tool)
        self.emit(f"ctx.table({tool.table!r}).delete({key.name})", 1)
        self.emit(f'return {{"deleted": True, {pk!r}: {key.name}}}', 1)

    # --------------------------------------------------------------- module
    def module(self) -> str:
        bp = self.bp
        self.emit(f'"""MCP tools of the {bp.domain} domain.')
        self.emit()
        for ln in _wrap(bp.description, 92):
            self.emit(ln)
        self.emit()
        self.emit(f"Core user: {self.core} ({self.core_key}). Tables: {', '.join(bp.tables)}.")
        self.emit("All state goes through the tool context; no files, clock or network.")
        self.emit('"""')
        self.emit()
        self.emit("import datetime as _dt")
        if any(p.enum for t in bp.tools for p in t.parameters):
            self.emit("from typing import Literal")
        self.emit()
        self.emit("from agentskiller.runtime.api import Context, ToolError, tool")
        self.emit()
        self.emit()
        self.emit("def _valid_date(value: object) -> bool:")
        self.emit("if not isinstance(value, str):", 1)
        self.emit("return False", 2)
        self.emit("try:", 1)
        self.emit("_dt.date.fromisoformat(value)", 2)
        self.emit("except ValueError:", 1)
        self.emit("return False", 2)
        self.emit("return len(value) == 10", 1)
        self.emit()
        self.emit()
        self.emit("def _valid_datetime(value: object) -> bool:")
        self.emit("if not isinstance(value, str):", 1)
        self.emit("return False", 2)
        self.emit("try:", 1)
        self.emit('_dt.datetime.fromisoformat(value.replace("Z", "+00:00"))', 2)
        self.emit("except ValueError:", 1)
        self.emit("return False", 2)
        self.emit("return True", 1)
        self.emit()
        self.emit()
        for t in bp.tools:
            self.tool_function(t)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"


def _lit(text: str) -> str:
    """``text`` made safe inside the literal part of a generated f-string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("{", "{{").replace("}", "}}").replace("\n", " ")


def _wrap(text: str, width: int) -> list[str]:
    out, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return [ln.replace('"""', "'''") for ln in out]


def _policy_comment(section: str, max_lines: int = 12) -> list[str]:
    """The tool's policy section as comments: the rules the code below enforces."""
    lines = []
    for raw in section.splitlines():
        s = raw.strip()
        if not s or s.startswith("<!--") or s.startswith("#"):
            continue
        lines.append(f"# Policy: {s}"[:110])
    return lines[:max_lines]


def _default_expr(col: Any) -> str:
    """Value for a column a create tool neither takes nor fixes."""
    if col.nullable:
        return "None"
    if col.enum:
        return repr(col.enum[0])
    if col.type == "date":
        return "ctx.now[:10]"
    if col.type == "datetime":
        return "ctx.now"
    if col.type in ("integer", "number"):
        return number_literal(col.minimum) if col.minimum is not None else "0"
    if col.type == "boolean":
        return "False"
    return "None"


def write_tools_module(
    blueprint: Blueprint | dict, policy_sections: dict[str, str] | None = None, table_keys: dict[str, str] | None = None
) -> str:
    """Python source of ``servers/{domain}/tools.py`` for ``blueprint``."""
    bp = (
        blueprint
        if isinstance(blueprint, Blueprint)
        else Blueprint.model_validate({k: v for k, v in blueprint.items() if k not in ("status", "reason", "meta")})
    )
    for t in bp.tools:
        for p in t.parameters:
            if keyword.iskeyword(p.name) or p.name == "ctx":
                raise ValueError(f"tool {t.name}: parameter name {p.name!r} cannot be a Python parameter")
    return _Writer(bp, policy_sections, table_keys).module()
