"""Load tool modules and describe their tools.

* :func:`load_tools_module` imports a ``tools.py`` from a file path under a unique module
  name (two domains' ``tools.py`` never shadow each other).
* :func:`collect_tools` returns the ``@tool`` functions in definition order.
* :func:`tool_spec` builds the OpenAI function spec **from the signature and docstring**:
  the code is the source of truth, and s09 compares it with ``tool_lists/{domain}.json``
  using :func:`compare_tool_lists`.
* :class:`ToolSet` binds the tools of an environment (prefix, namespace, argument
  validation) for :class:`~agentskiller.runtime.environment.Session` and the MCP server.

Supported parameter hints: ``str``, ``int``, ``float``, ``bool``, ``list[X]``,
``dict``, ``Literal[...]``, ``Optional[X]`` / ``X | None`` and
``Annotated[X, Field(description=..., ge=..., le=..., json_schema_extra=...)]``.
A parameter with a default is not required. Parameter descriptions come from
``Field(description=...)`` or a Google-style ``Args:`` section of the docstring.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import ConfigDict, create_model
from pydantic.fields import FieldInfo

from .api import Context, is_tool

__all__ = [
    "load_tools_module",
    "collect_tools",
    "tool_spec",
    "tool_specs_from_file",
    "compare_tool_lists",
    "BoundTool",
    "ToolSet",
    "ToolSignatureError",
]


class ToolSignatureError(TypeError):
    """A tool function cannot be described (unsupported hint, missing ctx)."""


# --------------------------------------------------------------------------- modules
def load_tools_module(path: str | Path, module_name: str | None = None) -> types.ModuleType:
    path = Path(path).resolve()
    if module_name is None:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        stem = re.sub(r"\W", "_", path.parent.name) or "tools"
        module_name = f"agentskiller_tools_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so dataclasses/pydantic models inside the module resolve.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def collect_tools(module: types.ModuleType) -> list[Callable[..., Any]]:
    """The module's own ``@tool`` functions, in definition order."""
    found = [
        obj for obj in vars(module).values() if is_tool(obj) and getattr(obj, "__module__", None) == module.__name__
    ]
    return sorted(found, key=lambda f: getattr(getattr(f, "__code__", None), "co_firstlineno", 0))


# --------------------------------------------------------------------------- docstrings
_SECTION_RE = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")


def split_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """-> (description without the sections, {param: description from Args:})."""
    text = inspect.cleandoc(doc or "")
    lines = text.splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    section = None
    current = None
    for line in lines:
        m = _SECTION_RE.match(line)
        if m:
            section = m.group(1)
            current = None
            continue
        if section is None:
            desc.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            pm = re.match(r"^\s+(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if pm:
                current = pm.group(1)
                params[current] = pm.group(2).strip()
            elif current and line.strip():
                params[current] = (params[current] + " " + line.strip()).strip()
    return "\n".join(desc).strip(), params


# --------------------------------------------------------------------------- schemas
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _literal_type(values: tuple) -> str:
    kinds = {_SCALARS.get(type(v)) for v in values}
    if len(kinds) != 1 or None in kinds:
        raise ToolSignatureError(f"Literal values must share one scalar type: {values}")
    return kinds.pop()


def _field_schema(info: FieldInfo) -> dict:
    out: dict[str, Any] = {}
    if info.description:
        out["description"] = info.description
    for meta in info.metadata:
        for attr, key in (
            ("ge", "minimum"),
            ("le", "maximum"),
            ("gt", "exclusiveMinimum"),
            ("lt", "exclusiveMaximum"),
            ("min_length", "minLength"),
            ("max_length", "maxLength"),
            ("pattern", "pattern"),
        ):
            val = getattr(meta, attr, None)
            if val is not None:
                out[key] = val
    if isinstance(info.json_schema_extra, dict):
        out.update(info.json_schema_extra)
    return out


def hint_schema(hint: Any) -> tuple[dict, bool]:
    """JSON schema of a parameter hint -> (schema, nullable)."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        schema, nullable = hint_schema(base)
        for extra in extras:
            if isinstance(extra, FieldInfo):
                schema.update(_field_schema(extra))
            elif isinstance(extra, str):
                schema.setdefault("description", extra)
        return schema, nullable
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise ToolSignatureError(f"unions other than Optional[X] are not supported: {hint}")
        schema, _ = hint_schema(args[0])
        return schema, True
    if origin is Literal:
        values = get_args(hint)
        return {"type": _literal_type(values), "enum": list(values)}, False
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}, False
    if hint is list or origin is list:
        args = get_args(hint)
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = hint_schema(args[0])[0]
        return schema, False
    if hint is dict or origin is dict:
        return {"type": "object"}, False
    if hint is Any:
        return {}, False
    raise ToolSignatureError(f"unsupported parameter type: {hint!r}")


def _tool_params(fn: Callable[..., Any]) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """Parameters after ``ctx`` and their resolved hints (string annotations evaluated)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolSignatureError(f"{fn.__name__}: cannot resolve type hints: {exc}") from exc
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].name != "ctx":
        raise ToolSignatureError(f"{fn.__name__}: the first parameter must be 'ctx: Context'")
    rest = params[1:]
    for p in rest:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise ToolSignatureError(f"{fn.__name__}: *args/**kwargs are not allowed ({p.name})")
        if p.name not in hints:
            raise ToolSignatureError(f"{fn.__name__}: parameter {p.name} has no type hint")
        if p.name.startswith("_"):
            raise ToolSignatureError(f"{fn.__name__}: parameter names cannot start with '_'")
    return rest, hints


def tool_spec(fn: Callable[..., Any], name: str | None = None) -> dict:
    """OpenAI function-tool spec from the signature and docstring."""
    rest, hints = _tool_params(fn)
    description, doc_params = split_docstring(fn.__doc__)
    properties: dict[str, dict] = {}
    required: list[str] = []
    for p in rest:
        schema, _nullable = hint_schema(hints[p.name])
        if "description" not in schema and p.name in doc_params:
            schema["description"] = doc_params[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif p.default is not None and _json_scalar(p.default):
            schema["default"] = p.default
        properties[p.name] = schema
    return {
        "type": "function",
        "function": {
            "name": name or fn.__name__,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _json_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def tool_specs_from_file(path: str | Path, prefix: str = "") -> list[dict]:
    module = load_tools_module(path)
    return [tool_spec(fn, _exposed(prefix, fn.__name__)) for fn in collect_tools(module)]


def _exposed(prefix: str, name: str) -> str:
    return f"{prefix}__{name}" if prefix else name


# --------------------------------------------------------------------------- comparing
def _norm_type(schema: dict) -> Any:
    """A comparable summary of a property schema: type, enum and item type. ``anyOf``
    with null (pydantic's Optional) reduces to the non-null branch."""
    if not isinstance(schema, dict):
        return None
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(branches) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(branches[0])
            return _norm_type(merged)
        return ("anyOf", tuple(sorted(repr(_norm_type(b)) for b in branches)))
    t = schema.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        t = rest[0] if len(rest) == 1 else tuple(sorted(rest))
    enum = schema.get("enum")
    items = _norm_type(schema["items"]) if t == "array" and isinstance(schema.get("items"), dict) else None
    return (t, tuple(sorted(map(repr, enum))) if enum else None, items)


def _as_function(entry: dict) -> dict:
    """Accept OpenAI ``{"type":"function","function":{...}}``, a bare function dict, or an
    MCP tool (``input_schema`` / ``inputSchema``)."""
    fn = entry.get("function", entry)
    params = fn.get("parameters") or fn.get("input_schema") or fn.get("inputSchema") or {}
    return {"name": fn.get("name"), "parameters": params}


def compare_tool_lists(expected: list[dict], actual: list[dict]) -> list[str]:
    """Differences between two tool lists: tool names, parameter names, parameter types
    (incl. enum values and array item types) and required flags. Descriptions, titles,
    defaults and order are ignored. Empty list == equivalent."""
    exp = {f["name"]: f for f in map(_as_function, expected)}
    act = {f["name"]: f for f in map(_as_function, actual)}
    problems: list[str] = []
    for name in sorted(set(exp) - set(act)):
        problems.append(f"missing tool: {name}")
    for name in sorted(set(act) - set(exp)):
        problems.append(f"unexpected tool: {name}")
    for name in sorted(set(exp) & set(act)):
        ep, ap = exp[name]["parameters"], act[name]["parameters"]
        eprops, aprops = ep.get("properties", {}) or {}, ap.get("properties", {}) or {}
        for p in sorted(set(eprops) - set(aprops)):
            problems.append(f"{name}: missing parameter {p}")
        for p in sorted(set(aprops) - set(eprops)):
            problems.append(f"{name}: unexpected parameter {p}")
        ereq, areq = set(ep.get("required", []) or []), set(ap.get("required", []) or [])
        for p in sorted(set(eprops) & set(aprops)):
            et, at = _norm_type(eprops[p]), _norm_type(aprops[p])
            if et != at:
                problems.append(f"{name}.{p}: type {_fmt(et)} expected, code has {_fmt(at)}")
            if (p in ereq) != (p in areq):
                want = "required" if p in ereq else "optional"
                problems.append(f"{name}.{p}: should be {want}")
    return problems


def _fmt(t: Any) -> str:
    if isinstance(t, tuple) and len(t) == 3:
        base, enum, items = t
        s = str(base)
        if enum:
            s += f" enum[{', '.join(enum)}]"
        if items:
            s += f" of {_fmt(items)}"
        return s
    return repr(t)


# --------------------------------------------------------------------------- binding
@dataclass
class BoundTool:
    """One tool of an environment: exposed name, function, domain context and validator."""

    name: str
    domain: str
    fn: Callable[..., Any]
    spec: dict
    namespace: dict[str, str]
    core_entity: str
    now: str
    _model: Any = None

    def context(self, state) -> Context:
        return Context(state, self.namespace, self.core_entity, self.now, domain=self.domain)

    @property
    def description(self) -> str:
        return self.spec["function"]["description"]

    def validate_arguments(self, arguments: dict) -> dict[str, Any]:
        """Lax pydantic validation from the signature (as the MCP SDK does): "7" -> 7 for
        int, Literal and Field constraints enforced, unknown keys ignored."""
        if not isinstance(arguments, dict):
            raise ValueError("arguments must be a JSON object")
        if self._model is None:
            rest, hints = _tool_params(self.fn)
            fields = {p.name: (hints[p.name], ... if p.default is inspect.Parameter.empty else p.default) for p in rest}
            self._model = create_model(
                f"{self.fn.__name__}_arguments",
                __config__=ConfigDict(extra="ignore", arbitrary_types_allowed=False),
                **fields,
            )
        validated = self._model.model_validate(arguments)
        return {k: getattr(validated, k) for k in type(validated).model_fields}


class ToolSet:
    """The tools of one environment, by exposed name (``<prefix>__<tool>`` in a pair)."""

    def __init__(self, tools: list[BoundTool]) -> None:
        self.tools: dict[str, BoundTool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ToolSignatureError(f"duplicate tool name: {t.name}")
            self.tools[t.name] = t

    @classmethod
    def from_environment(cls, env) -> ToolSet:
        m = env.manifest
        tools: list[BoundTool] = []
        for domain in m.domains:
            module = load_tools_module(env.module_paths[domain])
            prefix = m.tool_prefix.get(domain, "")
            namespace = m.namespace_for(domain)
            for fn in collect_tools(module):
                name = _exposed(prefix, fn.__name__)
                tools.append(
                    BoundTool(name, domain, fn, tool_spec(fn, name), namespace, m.core_entity, m.simulation_time)
                )
        return cls(tools)

    def get(self, name: str) -> BoundTool | None:
        return self.tools.get(name)

    def names(self) -> list[str]:
        return list(self.tools)

    def specs(self) -> list[dict]:
        return [t.spec for t in self.tools.values()]

    def __len__(self) -> int:
        return len(self.tools)

    def __iter__(self):
        return iter(self.tools.values())
