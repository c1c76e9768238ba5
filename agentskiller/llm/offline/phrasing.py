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


#: vowel letters that sound like a consonant ("a unit", "a user", "a one-way ride") and a
#: silent h ("an hour")
_CONSONANT_SOUND = re.compile(r"^(uni|use|usu|uti|eu|one|once)", re.I)
_VOWEL_SOUND = re.compile(r"^(hour|honest|honor|honour|heir)", re.I)


def article(noun: str) -> str:
    """``appointment`` -> ``an appointment``, ``ride`` -> ``a ride``, ``unit`` -> ``a unit``."""
    vowel = bool(re.match(r"[aeiou]", noun, re.I)) and not _CONSONANT_SOUND.match(noun)
    return ("an " if vowel or _VOWEL_SOUND.match(noun) else "a ") + noun
