"""English helpers shared by the offline provider's writers (blueprints, templates, queries)."""

from __future__ import annotations

import re


def plural(noun: str) -> str:
    """``category`` -> ``categories``, ``branch`` -> ``branches``, ``ride`` -> ``rides``."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|sh|ch|x|z)$", noun):
        return noun + "es"
    return noun + "s"
