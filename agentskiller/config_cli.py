"""Typed values for nested ``--config`` overrides.

Snakemake parses ``--config key=value`` with YAML's BaseLoader, so inside a nested value
(``--config llm='{provider: openai, api_key_env: null}'``) every scalar arrives as a string:
``null`` becomes ``"null"``, ``20`` becomes ``"20"``. :func:`coerce` walks the config beside the
config schema and turns such strings into the type the schema asks for. A string is only
converted where the schema does not take a string at that place (``null`` also where the
schema takes a string or null), so values from config files are never changed.
"""

from __future__ import annotations

import re
from typing import Any

_NULLS = {"null", "~", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE", "yes", "on"}
_FALSE = {"false", "False", "FALSE", "no", "off"}
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _types(schema: dict) -> set[str]:
    t = schema.get("type", [])
    return {t} if isinstance(t, str) else set(t)


def _scalar(value: str, types: set[str]) -> Any:
    if "null" in types and value in _NULLS:
        return None
    if "string" in types:
        return value
    if "boolean" in types and value in _TRUE | _FALSE:
        return value in _TRUE
    if "integer" in types and _INT.fullmatch(value):
        return int(value)
    if "number" in types and _FLOAT.fullmatch(value):
        return float(value)
    return value


def coerce(value: Any, schema: dict) -> Any:
    """``value`` with string scalars converted to the types ``schema`` expects (recursively)."""
    if isinstance(value, str):
        return _scalar(value, _types(schema))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else {})
            out[k] = coerce(v, sub)
        return out
    if isinstance(value, list):
        items = schema.get("items", {})
        return [coerce(v, items if isinstance(items, dict) else {}) for v in value]
    return value
