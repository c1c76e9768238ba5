"""Tool descriptions of a blueprint, two phrasings per kind of tool; the request's seeded RNG picks one."""

from __future__ import annotations

from typing import Any

PHRASES = {
    "authorize": [
        "Verify the {core} by their {pk} and bind this session to them. Must be called before any other tool.",
        "Authenticate the {core} with their {pk}; every other tool works on this {core}'s behalf.",
    ],
    "profile": [
        "Return the authorized {core}'s own profile record.",
        "Look up the profile of the authorized {core} (only their own record).",
    ],
    "search": [
        "Search {plural} by optional filters; returns up to 50 matches sorted by ID.",
        "Find {plural}, optionally filtered; results are sorted by ID and capped at 50.",
    ],
    "read": ["Get the details of one {thing} by its ID.", "Fetch a single {thing} by ID."],
    "list": [
        "List the authorized {core}'s {plural}, optionally filtered.",
        "Show the {plural} that belong to the authorized {core}; filters are optional.",
    ],
    "get_own": [
        "Get one of the authorized {core}'s {plural} by ID.",
        "Fetch {a_thing} of the authorized {core} by its ID.",
    ],
    "transition": [
        "{Action} one of the authorized {core}'s {plural}. Allowed only while its {column} is {from_}; "
        "sets {column} to {to}.",
        "{Action} {a_thing} of the authorized {core} (only when {column} is {from_}); the {column} becomes {to}.",
    ],
    "edit": [
        "{Verb} {a_thing} of the authorized {core}: change {fields}. Allowed only while its {column} is {from_}.",
        "Change {fields} of one of the authorized {core}'s {plural} ({column} must be {from_}).",
    ],
    "delete": [
        "Remove {a_thing} of the authorized {core} (allowed while {column} is {from_}).",
        "Delete one of the authorized {core}'s {plural} when its {column} is {from_}.",
    ],
    "total": [
        "Compute the {agg} of {column} over the authorized {core}'s {plural}, optionally filtered by {filter}.",
        "Return the {agg} of {column} across the authorized {core}'s {plural}; may be filtered by {filter}.",
    ],
    "count": [
        "Count the authorized {core}'s {plural}, optionally by {filter}.",
        "Return how many {plural} the authorized {core} has, optionally filtered by {filter}.",
    ],
}


def say(rng, kind: str, **kw: Any) -> str:
    """One of the phrasings of ``kind``, filled in."""
    return rng.choice(PHRASES[kind]).format(**kw)


def or_join(values: list[str]) -> str:
    """``["a", "b", "c"]`` -> "a, b or c"."""
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
