"""English helpers shared by the offline provider's writers (blueprints, templates, queries, policies).

Three ways to turn an identifier into words, each for the names it is used on:
:func:`words` tokenises a snake_case tool name, :func:`spoken` reads an entity or table name
(CamelCase or snake_case) as a phrase, :func:`camel_words` splits a PascalCase name at every
capital.
"""

from __future__ import annotations

import re

from agentskiller.models.catalog import snake_case

#: column names that hold money; writers phrase their values as amounts
MONEY_RE = re.compile(r"amount|price|fare|fee|cost|balance|copay|paid|deposit|payment|charge")


def plural(noun: str) -> str:
    """``category`` -> ``categories``, ``branch`` -> ``branches``, ``ride`` -> ``rides``."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|sh|ch|x|z)$", noun):
        return noun + "es"
    return noun + "s"


def words(name: str) -> list[str]:
    """The lowercase words of a name split at underscores and punctuation:
    ``cancel_my_ride`` -> ``["cancel", "my", "ride"]`` (CamelCase stays one word)."""
    return [w for w in re.split(r"[_\W]+", name.lower()) if w]


def spoken(name: str) -> str:
    """An entity or table name as a person says it: ``DentalClinic`` / ``dental_clinic`` -> "dental clinic"."""
    return snake_case(name).replace("_", " ")


def camel_words(name: str) -> str:
    """A PascalCase name split before every capital: ``RideRequest`` -> "ride request"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def article(noun: str) -> str:
    """``noun`` with its indefinite article: "an appointment", "a ride"."""
    return ("an " if re.match(r"[aeiou]", noun) else "a ") + noun
