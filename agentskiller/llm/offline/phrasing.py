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


#: vowel letters that sound like a consonant ("a unit", "a user", "a one-way ride") and a
#: silent h ("an hour")
_CONSONANT_SOUND = re.compile(r"^(uni|use|usu|uti|eu|one|once)", re.I)
_VOWEL_SOUND = re.compile(r"^(hour|honest|honor|honour|heir)", re.I)


def article(noun: str) -> str:
    """``appointment`` -> ``an appointment``, ``ride`` -> ``a ride``, ``unit`` -> ``a unit``."""
    vowel = bool(re.match(r"[aeiou]", noun, re.I)) and not _CONSONANT_SOUND.match(noun)
    return ("an " if vowel or _VOWEL_SOUND.match(noun) else "a ") + noun
