"""Tool names that fit an MCP server: ``<domain>__<name>`` within 64 characters, unique per blueprint."""

from __future__ import annotations

import re

from agentskiller.models.catalog import snake_case

MAX_TOOL_LEN = 48


def fit_name(name: str, domain: str) -> str:
    """A snake_case tool name short enough for ``<domain>__<name>`` (64 chars) and 48 chars."""
    name = re.sub(r"[^a-z0-9_]+", "_", snake_case(name)).strip("_") or "tool"
    if not name[0].isalpha():
        name = "do_" + name
    limit = min(MAX_TOOL_LEN, 62 - len(domain))
    parts = name.split("_")
    # Drop the longest middle words first: the verb (first) and the object (last) carry the meaning.
    while len("_".join(parts)) > limit and len(parts) > 2:
        middle = max(range(1, len(parts) - 1), key=lambda i: (len(parts[i]), i))
        parts.pop(middle)
    return "_".join(parts)[:limit].rstrip("_")


def unique(name: str, taken: set[str], domain: str) -> str:
    """``name``, or ``name_2``, ``name_3``... if taken; the result is added to ``taken``. The
    stem is cut to leave room for the suffix, so a long name cannot lose it (and loop)."""
    base, n = name, 2
    limit = min(MAX_TOOL_LEN, 62 - len(domain))
    while name in taken:
        suffix = f"_{n}"
        name = fit_name(base, domain)[: limit - len(suffix)].rstrip("_") + suffix
        n += 1
    taken.add(name)
    return name
