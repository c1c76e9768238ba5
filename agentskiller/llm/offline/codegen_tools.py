"""The offline provider's tool-code writer (step s09).

Size: over 400 lines because one writer per tool kind plus the shared lookup helpers, so every generated toolkit has one style.

Writes the ``servers/{domain}/tools.py`` a careful programmer would write: one plain, typed
function per blueprint tool on the runtime API (``ctx.table`` / ``ctx.require_user`` /
``ctx.new_id`` / ``ctx.now``), with the kind semantics of :mod:`agentskiller.models.blueprint`
as straight-line code. Shared pieces are written once: a lookup helper per table (get, "not
found", "not yours"), the enum types and value tuples at the top of the module. It is *not*
an interpreter that reads the blueprint at run time: the module only knows the literals it
was written with, exactly like model-written code.

Signatures follow the blueprint parameters so that the runtime loader builds exactly the
s05 tool list from them: required parameters first, optional ones typed ``T | None = None``;
an enum parameter is typed with a ``Literal`` alias, which the runtime's argument validation
enforces before the tool runs (so the body does not check it again). The code is laid out
the way ``ruff format`` lays it out (120 columns, double quotes, its bracket splitting), so
the generated file passes ``ruff format --check`` and ``ruff check`` with the repo's settings.
The output is deterministic (no RNG, sorted iteration where order is not given) and the code
never touches files, the clock or the network.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from ...models.blueprint import Blueprint, Column, Relationship, Tool, ToolParam
from ...models.catalog import pascal_case, primary_key_for, snake_case
from ...models.policy_rules import PolicyRule, derive_rules
from .codegen_data import number_literal
from .phrasing import plural

#: blueprint parameter type -> Python annotation
PY_TYPES = {"string": "str", "date": "str", "datetime": "str", "integer": "int", "number": "float", "boolean": "bool"}

#: at most this many records from a search, as the blueprint says
SEARCH_LIMIT = 50

#: the repo's ruff line length; every emitted line stays within it
LINE_LENGTH = 120
INDENT = "    "

#: local variable names of the tool bodies -> the fallback when a parameter already has the name
LOCALS = {
    "user": "session_user",
    "record": "current",
    "rows": "matches",
    "changes": "updates",
    "values": "numbers",
    "value": "result",
}


# ----------------------------------------------------------------------------- literals
def py_str(text: str) -> str:
    """A string literal quoted the way ruff format quotes it: double quotes, unless the text
    holds more double than single quotes."""
    literal = repr(text)  # single quotes, unless the text holds ' and no "
    if literal.startswith('"') or text.count('"') > text.count("'"):
        return literal
    return '"' + literal[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'


def py_value(value: Any) -> str:
    """A Python literal for a JSON-like value, in ruff format's style."""
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return number_literal(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_value(k)}: {py_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def fstring_text(text: str) -> str:
    """``text`` made safe inside the literal part of a generated double-quoted f-string."""
    return text.replace("\\", "\\\\").replace('"', "'").replace("{", "{{").replace("}", "}}").replace("\n", " ")


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


def bracketed(
    head: str, items: list[str], tail: str, indent: int, brackets: str = "()", display: bool = False
) -> list[str]:
    """``head(items)tail`` laid out as ruff format does: on one line if it fits; else, for a call,
    subscript or signature, the items on one indented line if that fits; else (and always for a
    list / tuple / dict display) one item per line with a trailing comma."""
    pad, (open_, close) = INDENT * indent, brackets
    one = f"{pad}{head}{open_}{', '.join(items)}{close}{tail}"
    if len(one) <= LINE_LENGTH or not items:
        return [one]
    inner = f"{pad}{INDENT}{', '.join(items)}"
    if not display and (len(inner) <= LINE_LENGTH or len(items) == 1):
        return [f"{pad}{head}{open_}", inner, f"{pad}{close}{tail}"]
    return [f"{pad}{head}{open_}", *(f"{pad}{INDENT}{it}," for it in items), f"{pad}{close}{tail}"]


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap (a word longer than ``width`` gets a line of its own)."""
    out, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


def example_id(value: Any) -> str | None:
    """The shape of a real key with its digits zeroed (``PAT-017`` -> ``PAT-000``): an example
    for a docstring that shows the format without naming a real person's record."""
    if not isinstance(value, str) or not re.search(r"\d", value):
        return None
    return re.sub(r"\d", "0", value)


def words(name: str) -> str:
    """``PrescriptionFill`` -> ``prescription fill``."""
    return snake_case(name).replace("_", " ")


def _or(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


# ---------------------------------------------------------------------------- signature
def ordered_params(tool: Tool) -> list[ToolParam]:
    """Required parameters first (Python needs defaults last), blueprint order otherwise."""
    return [p for p in tool.parameters if p.required] + [p for p in tool.parameters if not p.required]


class _Writer:
    """Emits the code of one tool module for one blueprint."""

    def __init__(
        self,
        blueprint: Blueprint,
        table_keys: dict[str, str] | None,
        id_examples: dict[str, Any] | None,
        rules: list[PolicyRule],
    ) -> None:
        self.bp = blueprint
        #: tool -> the policy rules its code keeps
        self.rules: dict[str, list[PolicyRule]] = {}
        for r in rules:
            if r.tool:
                self.rules.setdefault(r.tool, []).append(r)
        self.core = blueprint.core_entity
        # Primary keys: relationships declare theirs; entities follow <snake>_id, but the
        # data's own table files win when the step passes them (table_keys).
        self.keys: dict[str, str] = {e: primary_key_for(e) for e in blueprint.entities}
        self.keys.update({r.name: r.primary_key for r in blueprint.relationships})
        self.keys.update(table_keys or {})
        self.core_key = self.keys[self.core]
        self.examples = {t: ex for t, v in (id_examples or {}).items() if (ex := example_id(v))}
        #: Literal aliases: values -> name, and tuples of allowed values checked in a body
        self.aliases: dict[tuple, str] = {}
        self.value_sets: dict[tuple, str] = {}
        #: tables that get a lookup helper -> whether some call checks the owner / some does not
        self.lookups: dict[str, dict[str, bool]] = {}
        self.uses: set[str] = set()  # module helpers the tools call: _is_date, _is_datetime, _is_number
        self.lines: list[str] = []

    # ------------------------------------------------------------------ schema facts
    def key_of(self, table: str) -> str:
        return self.keys.get(table) or primary_key_for(table)

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
        return next((c.name for c in rel.columns if c.references == self.core), None)

    def checks_owner(self, tool: Tool) -> bool:
        return bool(tool.requires_auth and self.owner_column(tool.table))

    def references(self, table: str) -> dict[str, str]:
        rel = self.relationship(table)
        return rel.foreign_keys() if rel else {}

    def key_param(self, tool: Tool) -> ToolParam:
        pk = self.keys.get(tool.table)
        return next((p for p in tool.parameters if p.column == pk or p.name == pk), tool.parameters[0])

    def column_meta(self, table: str, column: str | None) -> Column | None:
        rel = self.relationship(table)
        return rel.column(column) if (rel and column) else None

    def key_type(self, table: str) -> str:
        """The annotation of ``table``'s primary key, from its column or a parameter carrying it."""
        col = self.column_meta(table, self.key_of(table))
        if col is not None:
            return PY_TYPES.get(col.type, "str")
        for t in self.bp.tools:
            for p in t.parameters:
                if t.table == table and p.type != "array" and (p.column or p.name) == self.key_of(table):
                    return PY_TYPES.get(p.type, "str")
        return "str"

    def local(self, tool: Tool, name: str) -> str:
        """A body variable's name, moved aside when a parameter of the tool already has it."""
        taken = {p.name for p in tool.parameters}
        if name not in taken:
            return name
        alt = LOCALS[name]
        while alt in taken:
            alt += "_"
        return alt

    # ------------------------------------------------------------------- module names
    def type_name(self, tool: Tool, p: ToolParam) -> str:
        """The ``Literal`` alias of an enum parameter, one per distinct value set."""
        scalar = (p.items or "string") if p.type == "array" else p.type
        values = tuple(_coerce(v, scalar) for v in p.enum or [])
        if values not in self.aliases:
            table, column = pascal_case(words(tool.table)), pascal_case(words(p.column or p.name))
            base = column if column.startswith(table) else table + column
            name, n = base, 2
            while name in self.aliases.values():
                name, n = f"{base}{n}", n + 1
            self.aliases[values] = name
        return self.aliases[values]

    def value_set(self, table: str, column: str, values: list[Any]) -> str:
        """The tuple constant of a column's allowed values (checked in a body)."""
        key = tuple(values)
        if key not in self.value_sets:
            base = f"{snake_case(table)}_{plural(snake_case(column))}".upper()
            name, n = base, 2
            while name in self.value_sets.values():
                name, n = f"{base}_{n}", n + 1
            self.value_sets[key] = name
        return self.value_sets[key]

    def lookup(self, table: str, owner: bool) -> str:
        """The name of ``table``'s lookup helper, noting whether this call checks the owner."""
        use = self.lookups.setdefault(table, {"owner": False, "plain": False})
        use["owner" if owner else "plain"] = True
        return f"_get_{snake_case(table)}"

    def annotation(self, tool: Tool, p: ToolParam) -> str:
        """``list[str]``, ``int | None``, or the ``Literal`` alias of an enum (so the tool list
        built from the signature carries the enum)."""
        base = PY_TYPES.get((p.items or "string") if p.type == "array" else p.type, "str")
        if p.enum:
            base = self.type_name(tool, p)
        if p.type == "array":
            base = f"list[{base}]"
        return base if p.required else f"{base} | None"

    # -------------------------------------------------------------------------- emit
    def emit(self, line: str = "", indent: int = 0) -> None:
        self.lines.append((INDENT * indent + line) if line else "")

    def emit_raise(self, message: str, indent: int) -> None:
        """``raise ToolError(f"...")``; ``message`` is the f-string's inside. A message too long
        for one line becomes implicitly concatenated parts, one a line (ruff format keeps those)."""
        lines = bracketed("raise ToolError", [_fstring(message)], "", indent)
        if max(map(len, lines)) <= LINE_LENGTH:
            self.lines += lines
            return
        pad = INDENT * (indent + 1)
        self.emit("raise ToolError(", indent)
        self.lines += [pad + _fstring(part) for part in _split_message(message, LINE_LENGTH - len(pad) - 3)]
        self.emit(")", indent)

    # ------------------------------------------------------------------------ docstring
    def docstring(self, tool: Tool) -> None:
        """Google style: the blueprint description, one ``Args`` line per parameter (the loader
        reads the parameter descriptions from there, an example ID where the format helps), and
        what comes back."""
        lines = wrap(tool.description, LINE_LENGTH - len(INDENT) - 3) or [tool.name]
        params = ordered_params(tool)
        if params:
            lines += ["", "Args:"]
            for p in params:
                lines += self.arg_lines(tool, p)
        if tool.returns.strip():
            lines += ["", "Returns:"]
            lines += [INDENT + ln for ln in wrap(tool.returns, LINE_LENGTH - 2 * len(INDENT))]
        text = [_doc_text(ln) for ln in lines]
        if len(text) == 1:
            self.emit(f'"""{text[0]}{" " if text[0].endswith(chr(34)) else ""}"""', 1)
            return
        self.emit(f'"""{text[0]}', 1)
        for ln in text[1:]:
            self.emit(ln, 1)
        self.emit('"""', 1)

    def arg_lines(self, tool: Tool, p: ToolParam) -> list[str]:
        desc = " ".join(p.description.split())
        ex = self.examples.get(self.id_table(tool, p) or "")
        if ex:
            stop = "." if desc.endswith(".") else ""
            desc = f"{desc.rstrip('.')}, such as {ex!r}{stop}"
        chunks = wrap(f"{p.name}: {desc}", LINE_LENGTH - 2 * len(INDENT))
        # a continuation line must not read as the next parameter ("word: ...") to the loader
        out = [chunks[0]]
        for chunk in chunks[1:]:
            if re.match(r"^\w+\s*(\([^)]*\))?\s*:", chunk):
                out[-1] += " " + chunk
            else:
                out.append(chunk)
        return [INDENT + out[0]] + [2 * INDENT + c for c in out[1:]]

    def id_table(self, tool: Tool, p: ToolParam) -> str | None:
        """The table whose key ``p`` carries, if any."""
        col = p.column or p.name
        if col == self.keys.get(tool.table):
            return tool.table
        ref = self.references(tool.table).get(col)
        if ref:
            return ref
        return next((t for t in self.bp.tables if self.keys.get(t) == col), None)

    # ----------------------------------------------------------------------- validation
    def rule(self, tool: Tool, kind: str, param: str | None = None) -> PolicyRule | None:
        return next((r for r in self.rules.get(tool.name, []) if r.kind == kind and r.param == param), None)

    def validate_param(self, tool: Tool, p: ToolParam) -> None:
        """The policy's rules about one value that the signature cannot express: an enum the
        parameter's type does not carry, a numeric range, a format, non-empty text, a time
        relative to now (each skipped when an optional parameter is None)."""
        enum, rng = self.rule(tool, "enum", p.name), self.rule(tool, "range", p.name)
        lo, hi = (rng.minimum, rng.maximum) if rng else (None, None)
        fmt = self.rule(tool, "format", p.name)
        kind = fmt.format if fmt else None
        guard = "" if p.required else f"{p.name} is not None and "
        if enum and not p.enum:
            allowed = self.value_set(tool.table, p.column or p.name, list(enum.values or []))
            bad = f"any(v not in {allowed} for v in {p.name})" if p.type == "array" else f"{p.name} not in {allowed}"
            self.emit(f"if {guard}{bad}:", 1)
            self.emit_raise(f"invalid {p.name}: {{{p.name}!r}}; allowed: {{', '.join({allowed})}}", 2)
        if self.rule(tool, "not_empty", p.name) and p.type == "string":
            self.emit(f"if {guard}not {p.name}.strip():", 1)
            self.emit_raise(f"{p.name} must not be empty", 2)
        if p.type in ("integer", "number") and (lo is not None or hi is not None):
            if lo is not None and hi is not None:
                cond, need = (
                    f"not {number_literal(lo)} <= {p.name} <= {number_literal(hi)}",
                    f"between {number_literal(lo)} and {number_literal(hi)}",
                )
            elif lo is not None:
                cond, need = f"{p.name} < {number_literal(lo)}", f"at least {number_literal(lo)}"
            else:
                cond, need = f"{p.name} > {number_literal(hi)}", f"at most {number_literal(hi)}"
            self.emit(f"if {guard}{cond}:", 1)
            self.emit_raise(f"{p.name} must be {need}, got {{{p.name}!r}}", 2)
        if kind and p.type != "array":
            self.uses.add(f"_is_{kind}")
            shape = {
                "date": "an ISO 8601 date (YYYY-MM-DD)",
                "datetime": "an ISO 8601 date and time (YYYY-MM-DDTHH:MM:SSZ)",
                "email": "an email address",
                "phone": "a phone number",
            }[kind]
            self.emit(f"if {guard}not _is_{kind}({p.name}):", 1)
            self.emit_raise(f"{p.name} must be {shape}, got {{{p.name}!r}}", 2)
        when = self.rule(tool, "time", p.name)
        if when is not None and kind in ("date", "datetime"):
            # ISO dates compare in calendar order; date-times are compared as instants
            later = when.when == "future"
            if kind == "date":
                test = f"{p.name} <= ctx.now[:10]" if later else f"{p.name} >= ctx.now[:10]"
            else:
                self.uses.add("_instant")
                op = "<=" if later else ">="
                test = f"_instant({p.name}) {op} _instant(ctx.now)"
            self.emit(f"if {guard}{test}:", 1)
            side = "after" if later else "before"
            self.emit_raise(f"{p.name} must lie {side} the current time ({{ctx.now}}), got {{{p.name}!r}}", 2)

    def check_references(self, tool: Tool, params: list[ToolParam]) -> None:
        """ID parameters (foreign keys, filters that name a record) must name existing records:
        the lookup helper refuses others. One a bound check looks up anyway is left to it."""
        required = {p.name for p in tool.parameters if p.required}
        bounded = {r.via for r in self.rules.get(tool.name, []) if r.kind == "bound" and r.param in required}
        for p in params:
            rule = self.rule(tool, "exists", p.name)
            if rule is None or p.type == "array" or (p.required and (p.column or p.name) in bounded):
                continue
            call = f"{self.lookup(rule.table or '', owner=False)}(ctx, {p.name})"
            if p.required:
                self.emit(call, 1)
            else:
                self.emit(f"if {p.name} is not None:", 1)
                self.emit(call, 2)

    def bound_checks(self, tool: Tool, record: str | None) -> None:
        """A value at most an attribute of the record its row references (``guests`` at most the
        room type's ``max_occupancy``): from the foreign-key argument, else the current record."""
        for r in self.rules.get(tool.name, []):
            if r.kind != "bound":
                continue
            value = next(p for p in tool.parameters if p.name == r.param)
            via = next((p for p in tool.parameters if (p.column or p.name) == r.via), None)
            entity, attr = (r.limit or ".").split(".", 1)
            if via is not None and via.required:
                source = via.name
            elif via is not None and record:
                source = f"{via.name} if {via.name} is not None else {record}[{py_str(r.via or '')}]"
            elif record:
                source = f"{record}[{py_str(r.via or '')}]"
            else:
                source = via.name if via is not None else "None"
            indent = 1
            if not value.required:
                self.emit(f"if {value.name} is not None:", 1)
                indent = 2
            var = snake_case(entity)
            if var in {p.name for p in tool.parameters} or var in LOCALS:
                var += "_record"
            self.emit(f"{var} = {self.lookup(entity, owner=False)}(ctx, {source})", indent)
            self.emit(f"if {value.name} > {var}[{py_str(attr)}]:", indent)
            self.emit_raise(
                f"{value.name} must be at most the {fstring_text(words(entity))}'s {fstring_text(attr)} "
                f"({{{var}[{attr!r}]}}), got {{{value.name}!r}}",
                indent + 1,
            )

    def preconditions(self, tool: Tool, key: ToolParam, record: str) -> None:
        for cond in sorted(tool.preconditions, key=lambda c: c.column):
            values = [py_value(v) for v in cond.values]
            current = f"{record}.get({py_str(cond.column)})"
            inside = f"{record}.get({cond.column!r})"  # within a double-quoted f-string (Python 3.11)
            test = f"{current} != {values[0]}" if len(values) == 1 else f"{current} not in ({', '.join(values)})"
            self.emit(f"if {test}:", 1)
            need = fstring_text(_or([repr(v) for v in cond.values]))
            self.emit_raise(
                f"{fstring_text(words(tool.table))} {{{key.name}}} has {fstring_text(cond.column)} "
                f"{{{inside}!r}}; this action needs {fstring_text(cond.column)} {need}",
                2,
            )

    def window_checks(self, tool: Tool, record: str) -> None:
        """A check-in opens ``within_hours`` before the record's time and closes at it: refused
        outside ``0 <= record[column] - ctx.now <= within_hours`` hours (a date: its whole day)."""
        for r in self.rules.get(tool.name, []):
            if r.kind != "window" or not r.column:
                continue
            col = self.column_meta(tool.table, r.column)
            dated = col is not None and col.type == "date"
            helper = "_day_within_hours" if dated else "_within_hours"
            self.uses.update({helper, "_instant", "_is_date" if dated else "_is_datetime"})
            hours = number_literal(r.within_hours if r.within_hours is not None else 24)
            value = f"{record}.get({py_str(r.column)})"
            inside = f"{record}.get({r.column!r})"  # within a double-quoted f-string (Python 3.11)
            self.emit(f"if not {helper}({value}, ctx.now, {hours}):", 1)
            thing = fstring_text(words(tool.table))
            when = (
                f"day ({{{inside}}}) and closes when that day ends"
                if dated
                else f"scheduled time ({{{inside}}}) and closes at that time"
            )
            self.emit_raise(f"check-in opens {hours} hours before the {thing}'s {when}; it is now {{ctx.now}}", 2)

    # ----------------------------------------------------------------------------- kinds
    def tool_function(self, tool: Tool) -> None:
        params = ordered_params(tool)
        sig = ["ctx: Context"] + [
            f"{p.name}: {self.annotation(tool, p)}" + ("" if p.required else " = None") for p in params
        ]
        ret = "list[dict]" if tool.kind == "search" else "dict"
        self.emit()
        self.emit()
        self.emit("@tool")
        self.lines += bracketed(f"def {tool.name}", sig, f" -> {ret}:", 0)
        self.docstring(tool)
        if tool.requires_auth and tool.kind != "authorize":
            if self.owner_column(tool.table):
                self.emit(f"{self.local(tool, 'user')} = ctx.require_user()", 1)
            else:  # no ownership to check, but the policy still demands a session
                self.emit("ctx.require_user()", 1)
        for p in params:
            self.validate_param(tool, p)
        getattr(self, f"kind_{tool.kind}")(tool)

    def owned_lookup(self, tool: Tool, key: ToolParam) -> str:
        """``_get_x(ctx, key, user)`` (``user`` only where the record must be the user's)."""
        owner = self.checks_owner(tool)
        args = ["ctx", key.name] + ([self.local(tool, "user")] if owner else [])
        return f"{self.lookup(tool.table, owner)}({', '.join(args)})"

    def kind_authorize(self, tool: Tool) -> None:
        key = self.key_param(tool)
        self.emit(f"{self.lookup(self.core, owner=False)}(ctx, {key.name})", 1)
        self.emit(f"ctx.authorize({key.name})", 1)
        self.emit(f'return {{"authorized": True, {py_str(self.core_key)}: {key.name}}}', 1)

    def kind_read(self, tool: Tool) -> None:
        key = self.key_param(tool)
        self.emit(f"return {self.owned_lookup(tool, key)}", 1)

    def scoped_rows(self, tool: Tool) -> str:
        """All rows of the tool's table the user may see (sorted by primary key), then the
        equality filters (membership for arrays); None means no filter."""
        rows = self.local(tool, "rows")
        self.check_references(tool, ordered_params(tool))  # a filter that names a record needs one
        self.emit(f"{rows} = ctx.table({py_str(tool.table)}).all()", 1)
        owner = self.owner_column(tool.table)
        if self.checks_owner(tool):
            self.emit(f"{rows} = [r for r in {rows} if r.get({py_str(owner or '')}) == {self.local(tool, 'user')}]", 1)
        for p in ordered_params(tool):
            if not p.column:
                continue
            col = py_str(p.column)
            test = f"r.get({col}) in {p.name}" if p.type == "array" else f"r.get({col}) == {p.name}"
            if p.required:
                self.emit(f"{rows} = [r for r in {rows} if {test}]", 1)
            else:
                self.emit(f"if {p.name} is not None:", 1)
                self.emit(f"{rows} = [r for r in {rows} if {test}]", 2)
        return rows

    def kind_search(self, tool: Tool) -> None:
        rows = self.scoped_rows(tool)
        self.emit(f"return {rows}[:MAX_RESULTS]", 1)

    def kind_compute(self, tool: Tool) -> None:
        rows = self.scoped_rows(tool)
        agg = tool.aggregate or "count"
        if agg == "count" or not tool.aggregate_column:
            self.emit(f'return {{"value": len({rows}), "count": len({rows})}}', 1)
            return
        self.uses.add("_is_number")
        col = py_str(tool.aggregate_column)
        values, value = self.local(tool, "values"), self.local(tool, "value")
        self.emit(f"{values} = [r[{col}] for r in {rows} if _is_number(r.get({col}))]", 1)
        if agg == "sum":
            self.emit(f"{value} = round(sum({values}), 6)", 1)
        elif agg == "avg":
            self.emit(f"{value} = round(sum({values}) / len({values}), 6) if {values} else None", 1)
        else:
            self.emit(f"{value} = {agg}({values}) if {values} else None", 1)
        self.emit(f'return {{"value": {value}, "count": len({rows})}}', 1)

    def kind_create(self, tool: Tool) -> None:
        table, pk = tool.table, self.keys[tool.table]
        params = ordered_params(tool)
        self.check_references(tool, params)
        self.bound_checks(tool, None)
        items = {pk: f"ctx.new_id({py_str(table)})"}
        owner = self.owner_column(table)
        if owner and owner != pk and tool.requires_auth:
            items[owner] = self.local(tool, "user")
        # the policy fixes the effect columns: they win over a parameter for the same column
        for p in params:
            if p.column:
                items.setdefault(p.column, py_value(tool.effects[p.column]) if p.column in tool.effects else p.name)
        for col, val in sorted(tool.effects.items()):
            items.setdefault(col, py_value(val))
        rel = self.relationship(table)
        for col in rel.columns if rel else []:
            items.setdefault(col.name, _default_expr(col))
        record = self.local(tool, "record")
        self.lines += bracketed(
            f"{record} = ", [f"{py_str(k)}: {v}" for k, v in items.items()], "", 1, "{}", display=True
        )
        self.emit(f"return ctx.table({py_str(table)}).insert({record})", 1)

    def kind_update(self, tool: Tool) -> None:
        key = self.key_param(tool)
        values = [p for p in ordered_params(tool) if p is not key]
        record = self.load_for_write(tool, key)
        self.check_references(tool, values)
        self.bound_checks(tool, record)
        fixed = {p.column: p.name for p in values if p.column and p.required}
        fixed.update({col: py_value(val) for col, val in sorted(tool.effects.items())})
        optional = [p for p in values if p.column and not p.required and p.column not in fixed]
        update = f"ctx.table({py_str(tool.table)}).update"
        entries = [f"{py_str(c)}: {v}" for c, v in fixed.items()]
        if not optional and not fixed:  # nothing the call could change
            self.emit_raise("nothing to update: give at least one new value", 1)
            return
        if not optional:
            self.lines += bracketed(f"return {update}", [key.name, "{" + ", ".join(entries) + "}"], "", 1)
            return
        changes = self.local(tool, "changes")
        self.lines += bracketed(f"{changes} = ", entries, "", 1, "{}", display=True)
        for p in optional:
            self.emit(f"if {p.name} is not None:", 1)
            self.emit(f"{changes}[{py_str(p.column or '')}] = {p.name}", 2)
        if not fixed:
            self.emit(f"if not {changes}:", 1)
            self.emit_raise("nothing to update: give at least one new value", 2)
        self.emit(f"return {update}({key.name}, {changes})", 1)

    def kind_delete(self, tool: Tool) -> None:
        key = self.key_param(tool)
        self.load_for_write(tool, key)
        self.emit(f"ctx.table({py_str(tool.table)}).delete({key.name})", 1)
        self.emit(f'return {{"deleted": True, {py_str(self.keys[tool.table])}: {key.name}}}', 1)

    def load_for_write(self, tool: Tool, key: ToolParam) -> str | None:
        """The record an update / delete acts on (the user's), and its preconditions; returns
        the variable holding it when a later check needs it."""
        needs = tool.preconditions or any(
            (r.kind == "bound" and not any(p.required and (p.column or p.name) == r.via for p in tool.parameters))
            or r.kind == "window"
            for r in self.rules.get(tool.name, [])
        )
        if needs:
            record = self.local(tool, "record")
            self.emit(f"{record} = {self.owned_lookup(tool, key)}", 1)
            self.preconditions(tool, key, record)
            self.window_checks(tool, record)
            return record
        self.emit(self.owned_lookup(tool, key), 1)
        return None

    # ------------------------------------------------------------------------- helpers
    def not_found(self, table: str, key: str) -> str:
        return f"unknown {fstring_text(self.key_of(table))}: {{{key}}}"

    def lookup_helper(self, table: str, use: dict[str, bool]) -> None:
        """``_get_<table>(ctx, key[, user])``: the record, or a ToolError when it does not exist
        (or, given ``user``, is not theirs)."""
        key, owner = self.key_of(table), self.owner_column(table) if use["owner"] else None
        name, ktype = f"_get_{snake_case(table)}", self.key_type(table)
        thing = words(table)
        params = ["ctx: Context", f"{key}: {ktype}"]
        if owner:
            utype = self.key_type(self.core)
            params.append(f"user: {utype} | None = None" if use["plain"] else f"user: {utype}")
        self.emit()
        self.emit()
        self.lines += bracketed(f"def {name}", params, " -> dict:", 0)
        if owner:
            whose = "with ``user``, only if it is theirs" if use["plain"] else "only if it is ``user``'s"
            self.emit(f'"""The {thing} ``{key}``; {whose}."""', 1)
        else:
            self.emit(f'"""The {thing} ``{key}``, which must exist."""', 1)
        self.emit(f"record = ctx.table({py_str(table)}).get({key})", 1)
        if owner:
            # another person's record is refused exactly like a missing one (the privacy rule)
            guard = "user is not None and " if use["plain"] else ""
            self.emit(f"if record is None or {guard}record.get({py_str(owner)}) != user:", 1)
        else:
            self.emit("if record is None:", 1)
        self.emit_raise(self.not_found(table, key), 2)
        self.emit("return record", 1)

    def value_helpers(self) -> None:
        if "_is_date" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _is_date(value: str) -> bool:")
            self.emit('"""An ISO 8601 calendar date, YYYY-MM-DD."""', 1)
            self.emit("try:", 1)
            self.emit("_dt.date.fromisoformat(value)", 2)
            self.emit("except ValueError:", 1)
            self.emit("return False", 2)
            self.emit("return len(value) == 10  # fromisoformat also takes the basic form YYYYMMDD", 1)
        if "_is_datetime" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _is_datetime(value: str) -> bool:")
            self.emit(
                '"""An ISO 8601 date and time, YYYY-MM-DDTHH:MM:SS with Z or an offset; a date alone is not one."""', 1
            )
            self.emit('if len(value) < 19 or value[10] != "T":', 1)
            self.emit("return False", 2)
            self.emit("try:", 1)
            self.emit('_dt.datetime.fromisoformat(value.replace("Z", "+00:00"))', 2)
            self.emit("except ValueError:", 1)
            self.emit("return False", 2)
            self.emit("return True", 1)
        if "_instant" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _instant(value: str) -> _dt.datetime:")
            self.emit('"""A date-time as an instant (UTC when it names no zone), so times compare correctly."""', 1)
            self.emit('moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))', 1)
            self.emit("return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)", 1)
        if "_within_hours" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _within_hours(value: object, now: str, hours: float) -> bool:")
            self.emit(
                '"""Whether the date-time ``value`` lies from ``now`` up to ``hours`` later (both ends included)."""', 1
            )
            self.emit("if not isinstance(value, str) or not _is_datetime(value):", 1)
            self.emit("return False", 2)
            self.emit("start = _instant(now)", 1)
            self.emit("return start <= _instant(value) <= start + _dt.timedelta(hours=hours)", 1)
        if "_day_within_hours" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _day_within_hours(value: object, now: str, hours: float) -> bool:")
            self.emit(
                '"""Whether the day ``value`` (YYYY-MM-DD, counted whole) meets ``now`` to ``hours`` later."""', 1
            )
            self.emit("if not isinstance(value, str) or not _is_date(value):", 1)
            self.emit("return False", 2)
            self.emit("start = _instant(now)", 1)
            self.emit(
                "return start.date() <= _dt.date.fromisoformat(value) <= (start + _dt.timedelta(hours=hours)).date()", 1
            )
        if "_is_email" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _is_email(value: str) -> bool:")
            self.emit('"""name@domain.tld, without spaces."""', 1)
            self.emit('name, at, domain = value.partition("@")', 1)
            self.emit('return bool(name) and bool(at) and "." in domain.strip(".") and " " not in value', 1)
        if "_is_phone" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _is_phone(value: str) -> bool:")
            self.emit('"""At least 7 digits; otherwise only spaces, dashes, dots, brackets and a leading +."""', 1)
            self.emit('body = value[1:] if value.startswith("+") else value', 1)
            self.emit(
                'return sum(c.isdigit() for c in body) >= 7 and all(c.isdigit() or c in " -.()" for c in body)', 1
            )
        if "_is_number" in self.uses:
            self.emit()
            self.emit()
            self.emit("def _is_number(value: object) -> bool:")
            self.emit('"""A number in the data (bool is an int to Python, not here)."""', 1)
            self.emit("return isinstance(value, (int, float)) and not isinstance(value, bool)", 1)

    # -------------------------------------------------------------------------- module
    def module(self) -> str:
        bp = self.bp
        for t in bp.tools:  # the tools first: they decide which helpers and constants exist
            self.tool_function(t)
        tools, self.lines = self.lines, []
        self.emit(f'"""MCP tools of the {bp.domain} domain.')
        self.emit()
        for ln in wrap(bp.description, 96):
            self.emit(_doc_text(ln))
        self.emit()
        for ln in wrap(f"Core user: {self.core} ({self.core_key}). Tables: {', '.join(bp.tables)}.", 96):
            self.emit(ln)
        self.emit("All state goes through the tool context; no files, clock or network.")
        self.emit('"""')
        self.emit()
        if self.uses & {"_is_date", "_is_datetime", "_instant"}:
            self.emit("import datetime as _dt")
        # a value tuple with the values of an alias is read off the alias, not written twice
        derived = {name: self.aliases[values] for values, name in self.value_sets.items() if values in self.aliases}
        if self.aliases:
            self.emit("from typing import Literal, get_args" if derived else "from typing import Literal")
        if self.uses & {"_is_date", "_is_datetime", "_instant"} or self.aliases:
            self.emit()
        self.emit("from agentskiller.runtime.api import Context, ToolError, tool")
        groups: list[list[str]] = [[], [], []]
        if any(t.kind == "search" for t in bp.tools):
            groups[0].append(f"MAX_RESULTS = {SEARCH_LIMIT}  # a search returns at most this many records")
        for values, name in self.aliases.items():
            groups[1] += bracketed(f"{name} = Literal", [py_value(v) for v in values], "", 0, "[]")
        for values, name in self.value_sets.items():
            if name in derived:
                groups[2].append(f"{name} = get_args({derived[name]})")
                continue
            groups[2] += bracketed(f"{name} = ", [py_value(v) for v in values], "", 0, "()", display=True)
        for group in filter(None, groups):
            self.emit()
            self.lines += group
        self.value_helpers()
        # blueprint order, so the helpers read like the schema
        order = {t: i for i, t in enumerate(bp.tables)}
        for table in sorted(self.lookups, key=lambda t: (order.get(t, len(order)), t)):
            self.lookup_helper(table, self.lookups[table])
        self.lines += tools
        return "\n".join(self.lines).rstrip("\n") + "\n"


def _fstring(text: str) -> str:
    """A double-quoted literal of ``text`` (an f-string's inside): f-prefixed only if it has a field."""
    return ("f" if re.search(r"(?<!{){(?!{)", text) else "") + f'"{text}"'


def _split_message(text: str, width: int) -> list[str]:
    """``text`` cut at spaces outside ``{...}`` fields into parts of at most ``width`` characters
    (where the words allow); each part but the last keeps its trailing space."""
    words, depth, cur = [], 0, ""
    for ch in text:
        cur += ch
        depth += (ch == "{") - (ch == "}")
        if ch == " " and depth == 0:
            words.append(cur)
            cur = ""
    words.append(cur)
    parts = [""]
    for w in filter(None, words):
        if parts[-1] and len(parts[-1]) + len(w) > width:  # w keeps its trailing space
            parts.append("")
        parts[-1] += w
    return parts


def _doc_text(line: str) -> str:
    """One line of text made safe inside a generated docstring."""
    return line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _default_expr(col: Column) -> str:
    """Value for a column a create tool neither takes nor fixes."""
    if col.nullable:
        return "None"
    if col.enum:
        return py_value(col.enum[0])
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
    blueprint: Blueprint | dict,
    *,
    table_keys: dict[str, str] | None = None,
    id_examples: dict[str, Any] | None = None,
    rules: list[PolicyRule | dict] | None = None,
) -> str:
    """Python source of ``servers/{domain}/tools.py`` for ``blueprint``.

    ``table_keys``: table -> primary key as the data files have it (wins over the naming rule);
    ``id_examples``: table -> one real key, shown in docstrings with its digits zeroed;
    ``rules``: the policy's rules the code keeps (by default, the blueprint's own).
    """
    bp = (
        blueprint
        if isinstance(blueprint, Blueprint)
        else Blueprint.model_validate({k: v for k, v in blueprint.items() if k not in ("status", "reason", "meta")})
    )
    for t in bp.tools:
        for p in t.parameters:
            if keyword.iskeyword(p.name) or p.name == "ctx":
                raise ValueError(f"tool {t.name}: parameter name {p.name!r} cannot be a Python parameter")
    kept = (
        [r if isinstance(r, PolicyRule) else PolicyRule.model_validate(r) for r in rules]
        if rules is not None
        else derive_rules(bp, {})
    )
    return _Writer(bp, table_keys, id_examples, kept).module()


__all__ = ["PY_TYPES", "SEARCH_LIMIT", "ordered_params", "write_tools_module"]
